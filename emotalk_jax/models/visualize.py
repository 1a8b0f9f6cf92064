"""Pictures for checking preprocessing by eye: landmarks and face-graph edges drawn on frames, and
the three panels of `emotalk landmarks` (input with landmarks | aligned crop with the graph | the
edge map the
texture network receives)."""

import pathlib

import cv2
import numpy as np

from emotalk_jax.media import audio
from emotalk_jax.media import face
from emotalk_jax.media import landmarks as lm
from emotalk_jax.media import preprocess
from emotalk_jax.media import video_io
from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_maps


def draw_landmarks(image, landmarks_px, *, edges=True, radius=None):
  """Draws 68 landmarks (and the face graph's part edges) on a copy of an image.

  Args:
    image: [H, W, 3] uint8 RGB.
    landmarks_px: [68, 2] (x, y) in pixels of `image`.
    edges: also draw the graph edges along each face part.
    radius: point radius in pixels (default scales with the image).

  Returns:
    [H, W, 3] uint8 RGB.
  """
  out = np.ascontiguousarray(image, dtype=np.uint8).copy()
  scale = max(out.shape[:2]) / 256
  radius = radius or max(1, round(1.5 * scale))
  thickness = max(1, round(scale))
  shift = 4  # sub-pixel drawing: OpenCV takes fixed-point coordinates with `shift` fractional bits
  pts = np.round(np.asarray(landmarks_px, np.float64) * (1 << shift)).astype(np.int64)
  # per node
  colours = [tuple(map(float, landmark_maps.PART_COLOURS[p])) for p in face_graph.part_index()]
  if edges:
    for i, j in face_graph.part_edges():
      cv2.line(out, tuple(pts[i]), tuple(pts[j]), colours[i], thickness, cv2.LINE_AA, shift)
  for k in range(face_graph.NUM_NODES):
    cv2.circle(out, tuple(pts[k]), radius << shift, colours[k], -1, cv2.LINE_AA, shift)
  return out


def side_by_side(*images, height=None):
  """Concatenates RGB images horizontally after resizing each to a common height."""
  height = height or max(im.shape[0] for im in images)
  panels = []
  for im in images:
    if im.shape[0] != height:
      im = cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height),
                      interpolation=cv2.INTER_AREA)
    panels.append(im)
  return np.concatenate(panels, axis=1)


def _edge_panels(landmarks, size: int, batch: int = 32) -> np.ndarray:
  """[T, 68, 2] in [-1, 1] -> [T, S, S, 3] uint8 pictures of the edge maps the texture network
  sees."""
  out = [landmark_maps.to_rgb(landmark_maps.edge_map(landmarks[i:i + batch], size))
         for i in range(0, len(landmarks), batch)]
  return np.concatenate(out)


def _panels(image, image_landmarks_px, crop, crop_landmarks, edge_panel) -> np.ndarray:
  """One picture: input with landmarks | aligned crop with landmarks and graph edges | edge map."""
  size = crop.shape[0]
  return side_by_side(
      draw_landmarks(image, image_landmarks_px, edges=False),
      draw_landmarks(crop, lm.denormalize(crop_landmarks, size)),
      edge_panel, height=size)


def draw_image_landmarks(path, out, *, size: int = 256, face_index: int = 0) -> dict:
  """Writes a PNG: photo with landmarks | aligned crop with landmarks and edges | edge map."""
  image = video_io.read_image(path)
  aligned = face.align_face(image, str(path), size=size, face_index=face_index)
  points = face.transform_points(aligned.landmarks, face.invert(aligned.transform))
  crop_landmarks = lm.normalize(aligned.landmarks, size)
  picture = _panels(image, points, aligned.crop, crop_landmarks,
                    _edge_panels(crop_landmarks[None], size)[0])
  video_io.write_image(out, picture)
  return {"source": str(path), "size": size, "image_shape": list(image.shape)}


def draw_video_landmarks(path, out, *, size: int = 256, face_index: int = 0) -> dict:
  """Writes an MP4 (25 fps, with the input's sound) of the same three panels for every frame."""
  video = video_io.read_video(path)
  clip = preprocess.preprocess_decoded(video, size=size, face_index=face_index, progress=True)
  edges = _edge_panels(clip.landmarks, size)
  pictures = (_panels(f, p, c, l, e) for f, p, c, l, e in
              zip(video.frames, clip.image_landmarks, clip.frames, clip.landmarks, edges))
  video_io.write_video(out, pictures, fps=clip.fps, audio=clip.audio, audio_rate=audio.SAMPLE_RATE)
  return clip.summary()


def write_clip_video(clip: preprocess.Clip, path) -> pathlib.Path:
  """Writes the aligned crops with their landmarks and graph edges drawn, with the clip's sound."""
  pictures = (
      draw_landmarks(c, lm.denormalize(l, clip.size)) for c, l in zip(clip.frames, clip.landmarks))
  return video_io.write_video(path,
                              pictures,
                              fps=clip.fps,
                              audio=clip.audio,
                              audio_rate=audio.SAMPLE_RATE)

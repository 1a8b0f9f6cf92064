"""Pictures for checking preprocessing by eye: landmarks and face-graph edges drawn on frames."""

import cv2
import numpy as np

from emotalk_jax.models import face_graph
from emotalk_jax.models.landmark_maps import PART_COLOURS


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
  colours = [tuple(map(float, PART_COLOURS[p])) for p in face_graph.part_index()]  # per node
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
      im = cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height), interpolation=cv2.INTER_AREA)
    panels.append(im)
  return np.concatenate(panels, axis=1)

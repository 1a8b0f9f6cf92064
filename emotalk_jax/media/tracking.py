"""Landmark tracking through a video, temporal smoothing, and stable per-frame alignment.

Tracking runs dlib's (comparatively slow) face detector on a downscaled frame only every
`detect_every` frames or when the face is lost. In between, the previous frame's landmarks give the
box for the shape predictor, and each tracked shape is verified by `FaceDetector.score` (the HOG
detector's score for just
that face, upright and at a fixed size: ~1 ms), so a lost face triggers a re-detection at once; so
  does a
cut (a large change of a 32x32 thumbnail). Frames without a face get landmarks interpolated from
their neighbours and are counted.
"""

import dataclasses
import warnings

import cv2
import numpy as np
from scipy import ndimage

from emotalk_jax import errors
from emotalk_jax.media import face

# The per-frame check keeps tracked shapes on the face, so scheduled detections only guard against
# drift.
# Measured on six GRID, MEAD, HDTF and EDTalk clips: tracked landmarks differ from
# detect-every-frame ones
# by 0.5-1.0 px in the 256 crop (below the predictor's own frame-to-frame jitter, 0.8-1.5 px, which
# tracking leaves unchanged) for an interval of 5, 25 or 100 frames alike; 25 costs 4% of 100's
# speed.
DETECT_EVERY = 25
# Tracked shapes scoring below this are rejected. Measured on 13 real clips: real faces >= 0.75,
# non-faces <= -1.08; the detector's own threshold is 0, so this keeps faces a little past where the
# full
# detector gives up.
MIN_FACE_SCORE = face.MIN_FACE_SCORE
# A mean absolute change (0-255) of a frame's 32x32 thumbnail larger than this is a cut or a fast
# change: re-detect there. Measured: consecutive frames of the shared clips change by at most 27
# (fast
# in-the-wild clips; most below 15), joins of two different clips by 19 or more in 99% of pairs; a
# false
# alarm costs one detection.
_CUT_DIFF = 20.0
# Re-detection runs on a copy in which the tracked face is at least this wide (the detector's window
# is
# 80 px), up to full resolution; smaller faces also get the detector's upsampling pass.
_DETECT_FACE_PX = 100
# A detection farther than this (in face widths) from the tracked face is someone else.
_SAME_FACE_DIST = 0.5
# A tracked shape this far (mean point distance, in face widths) from a fresh detection's is
# replaced.
_MAX_DRIFT = 0.05

# Smoothing widths (Gaussian sigma in frames, zero phase so nothing lags). Measured on MEAD and HDTF
# clips:
# see `smooth_landmarks`.
SIGMA_RIGID = 1.5
SIGMA_MOUTH = 0.6
SIGMA_POSE = 2.0


@dataclasses.dataclass
class Track:
  """Landmarks of one face through a video.

  Attributes:
    landmarks: [T, 68, 2] float32 image pixels (raw predictor output; frames without a face filled
      in).
    detected: [T] bool, whether the face was found (detected or tracked) in each frame.
    num_filled: frames without a face, whose landmarks were interpolated (or held at the ends).
    num_detections: how many times the face detector ran.
    source: the file name used in messages.
  """
  landmarks: np.ndarray
  detected: np.ndarray
  num_filled: int
  num_detections: int
  source: str = "<video>"

  @property
  def num_frames(self) -> int:
    return len(self.landmarks)


def _fill(landmarks: np.ndarray, found: np.ndarray) -> np.ndarray:
  """Linear interpolation over frames without a face; the first/last found shape is held at the
  ends."""
  t = np.arange(len(landmarks))
  flat = landmarks.reshape(len(landmarks), -1)
  out = np.empty_like(flat)
  for k in range(flat.shape[1]):
    out[:, k] = np.interp(t, t[found], flat[found, k])
  return out.reshape(landmarks.shape)


def _thumbnail(frame: np.ndarray) -> np.ndarray:
  """[32, 32, 3] float32 miniature (strided first: 0.1 ms even for 1080p)."""
  step = max(1, max(frame.shape[:2]) // 128)
  return cv2.resize(frame[::step, ::step], (32, 32),
                    interpolation=cv2.INTER_AREA).astype(np.float32)


def track_landmarks(frames,
                    source="<video>",
                    detect_every: int = DETECT_EVERY,
                    face_index: int = 0,
                    detector: face.FaceDetector | None = None,
                    min_score: float = MIN_FACE_SCORE) -> Track:
  """Tracks one face's 68 landmarks through a video.

  The face followed is the `face_index`-th largest at the first detection; later detections pick the
  face nearest to where it was.

  Args:
    frames: [T, H, W, 3] uint8 RGB frames (an array or any iterable of frames).
    source: the file name used in warnings and errors.
    detect_every: run the detector at least every this many frames; 1 detects in every frame and
      does not track.
    face_index: which face when there are several at the first detection (0 = largest).
    detector: a `face.FaceDetector`; the shared default when None.
    min_score: tracked shapes whose `FaceDetector.score` is lower are treated as lost.

  Returns:
    A `Track` with raw (unsmoothed) landmarks.

  Raises:
    InputError: no face in any frame, or `face_index` out of range at the first detection.
  """
  if detect_every < 1:
    raise ValueError(f"detect_every must be at least 1, got {detect_every}")
  detector = detector or face.default_detector()
  shapes, found = [], []
  num_detections = 0
  prev = None         # Landmarks in the previous frame; None when the face was not found there.
  # Predictor box where the face was last seen (to follow it among several faces).
  last_box = None
  detect_size = None  # Re-detection's downscaled size (longest side) for the face being followed.
  small = True        # Whether re-detection needs the detector's upsampling pass.
  since_detection = 0
  thumbnail = None
  for t, frame in enumerate(frames):
    frame = np.asarray(frame)
    previous_thumbnail, thumbnail = thumbnail, _thumbnail(frame)
    cut = previous_thumbnail is not None and np.abs(thumbnail -
                                                    previous_thumbnail).mean() > _CUT_DIFF
    result = None
    if prev is not None and detect_every > 1:
      candidate = detector.landmarks(frame, face.predictor_box(prev))
      if detector.score(frame, candidate) >= min_score:
        result = candidate
    since_detection += 1
    if result is None or since_detection >= detect_every or cut:
      since_detection = 0
      num_detections += 1
      if last_box is None:
        boxes = face.search_faces(frame, detector, lower_threshold=False)
      else:
        boxes = detector.detect(frame, upsample=(0, 1) if small else (0,), detect_size=detect_size)
      chosen = None
      if boxes and last_box is None:
        if not 0 <= face_index < len(boxes):
          raise errors.InputError(source,
                                  f"frame {t}: " + face.face_index_problem(len(boxes), face_index))
        if len(boxes) > 1:
          warnings.warn(
              f"{source}: {len(boxes)} faces in frame {t}; following face {face_index} "
              f"({'the largest' if face_index == 0 else 'by decreasing size'}); pick another "
              f"with face_index (0..{len(boxes) - 1}, --face-index on the command line)",
              stacklevel=2)
        chosen = boxes[face_index]
      elif boxes:
        here = face.predictor_box(result) if result is not None else last_box
        dist = [np.hypot(*np.subtract(b.centre, here.centre)) / here.width for b in boxes]
        best = int(np.argmin(dist))
        if result is None:
          # A lost face is picked up again at the detection nearest to where it was last seen.
          chosen = boxes[best]
        elif dist[best] < _SAME_FACE_DIST:
          # The detector confirms the tracked face. Keep the tracked shape (no jump at detection
          # frames)
          # unless it has drifted from what a fresh start gives.
          fresh = face.refined_landmarks(detector, frame, boxes[best])
          if np.linalg.norm(fresh - result, axis=-1).mean() > _MAX_DRIFT * here.width:
            result = fresh
      if chosen is not None:
        result = face.refined_landmarks(detector, frame, chosen)
    if result is not None:
      last_box = face.predictor_box(result)
      # Re-detect on a copy just large enough to find this face without upsampling, where possible.
      longest = max(frame.shape[:2])
      detect_size = int(
          min(longest, max(detector.detect_size, longest * _DETECT_FACE_PX / last_box.width)))
      small = last_box.width * detect_size / longest < _DETECT_FACE_PX - 1
    prev = result
    shapes.append(result if result is not None else np.full((68, 2), np.nan, np.float32))
    found.append(result is not None)
  found = np.array(found, bool)
  if not found.any():
    raise errors.NoFaceError(source, f"no face found in any of its {len(found)} frames")
  landmarks = _fill(np.stack(shapes).astype(np.float32), found)
  return Track(landmarks=landmarks, detected=found, num_filled=int((~found).sum()),
               num_detections=num_detections, source=str(source))


def jitter(landmarks) -> float:
  """Mean frame-to-frame displacement of [T, N, 2] points, in their units (pixels)."""
  landmarks = np.asarray(landmarks, np.float64)
  if len(landmarks) < 2:
    return 0.0
  return float(np.linalg.norm(np.diff(landmarks, axis=0), axis=-1).mean())


def smooth_landmarks(landmarks,
                     sigma: float = SIGMA_RIGID,
                     mouth_sigma: float = SIGMA_MOUTH) -> np.ndarray:
  """Zero-phase Gaussian smoothing of [T, 68, 2] landmarks over time.

  A centred window has no lag; the mouth gets a narrower one so fast lip closures (p, b, m) keep
  their depth. Measured on three MEAD and three HDTF clips in the 256 crop (with `align_track`'s
  pose
  smoothing): jitter of the non-mouth points falls from 1.06 to 0.51 px a frame, all points from
  1.19 to 0.75 px, while the inner-lip gap (range ~22 px) loses 0.6 px at closures and 0.9 px at
  openings. A mouth sigma of 0.8 loses 0.9/1.3 px, and 1.5 (no separate mouth setting) 1.9/2.7 px.

  Args:
    landmarks: [T, 68, 2] pixels.
    sigma: Gaussian sigma in frames for jaw, brows, nose and eyes (0 disables).
    mouth_sigma: sigma for the 20 mouth points.

  Returns:
    [T, 68, 2] float32.
  """
  landmarks = np.asarray(landmarks, np.float32)
  out = landmarks.copy()
  rigid = np.setdiff1d(np.arange(68), face.MOUTH)
  for idx, s in ((rigid, sigma), (face.MOUTH, mouth_sigma)):
    if s > 0:
      out[:, idx] = ndimage.gaussian_filter1d(landmarks[:, idx],
                                              s,
                                              axis=0,
                                              mode="nearest",
                                              truncate=3.0)
  return out


def align_track(landmarks, size: int = 256, sigma: float = SIGMA_POSE) -> np.ndarray:
  """Per-frame alignment transforms whose pose is smoothed over time so the crop does not shake.

  Measured on three MEAD and three HDTF clips (landmarks already smoothed, 256 crop): with sigma 2
  the crop corners' frame-to-frame acceleration falls from 0.56 to 0.33 px, while the non-mouth
  landmarks' jitter inside the crop rises only from 0.47 to 0.51 px (the crop still follows the
  head); sigma 4 steadies the crop more (0.15 px) but lets the face wander in it (0.71 px).

  Args:
    landmarks: [T, 68, 2] image pixels.
    size: crop side in pixels.
    sigma: Gaussian sigma in frames for the crop's placement (0: per-frame fits).

  Returns:
    [T, 2, 3] float64 transforms (image px -> crop px).
  """
  transforms = face.align_transform(landmarks, size)
  if sigma <= 0 or len(transforms) < 2:
    return transforms
  # Smooth where the crop sits in the image (the inverse: crop px -> image px). Its four parameters
  # (s cos a, s sin a, tx, ty) combine linearly into similarities, so filtering them stays a
  # similarity.
  inverse = face.invert(transforms)
  params = np.stack([inverse[:, 0, 0], inverse[:, 1, 0], inverse[:, 0, 2], inverse[:, 1, 2]], -1)
  params = ndimage.gaussian_filter1d(params, sigma, axis=0, mode="nearest", truncate=3.0)
  a, b, tx, ty = params.T
  smoothed = np.stack([np.stack([a, -b, tx], -1), np.stack([b, a, ty], -1)], -2)
  return face.invert(smoothed)


@dataclasses.dataclass
class AlignedVideo:
  """Aligned face crops of a video.

  Attributes:
    crops: [T, S, S, 3] uint8 RGB crops.
    landmarks: [T, 68, 2] float32 landmarks in crop pixels (smoothed unless asked otherwise).
    transforms: [T, 2, 3] float64 image px -> crop px (for `face.paste_back`).
    track: the raw `Track`.
  """
  crops: np.ndarray
  landmarks: np.ndarray
  transforms: np.ndarray
  track: Track


def align_video(frames,
                source="<video>",
                size: int = 256,
                smooth: bool = True,
                track: Track | None = None,
                **track_kwargs) -> AlignedVideo:
  """Tracks, smooths and aligns a face through a video.

  Args:
    frames: [T, H, W, 3] uint8 RGB frames.
    source: the file name used in warnings and errors.
    size: crop side in pixels (e.g. 128 or 256).
    smooth: smooth landmarks and crop placement over time.
    track: a precomputed `Track` of these frames (else one is computed with `track_kwargs`).
    **track_kwargs: passed to `track_landmarks` (detect_every, face_index, detector, ...).

  Returns:
    An `AlignedVideo`.
  """
  frames = np.asarray(frames)
  if track is None:
    track = track_landmarks(frames, source=source, **track_kwargs)
  points = smooth_landmarks(track.landmarks) if smooth else track.landmarks
  transforms = align_track(points, size, sigma=SIGMA_POSE if smooth else 0.0)
  crops = np.stack([face.crop(f, m, size) for f, m in zip(frames, transforms)])
  return AlignedVideo(crops=crops,
                      landmarks=face.transform_points(points, transforms).astype(np.float32),
                      transforms=transforms,
                      track=track)

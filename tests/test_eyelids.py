"""Tests for blinks drawn as the upper lid closing over the eye (generate/eyelids.py)."""

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.generate import eyelids
from emotalk_jax.generate import full_resolution as fr
from emotalk_jax.media import face
from emotalk_jax.media import video_io

S = 128


@pytest.fixture(scope="module")
def demo():
  """(photo, aligned face, its landmarks in crop px): the demo photo, eyes open."""
  photo = video_io.read_image(bundled.DEMO_PHOTO)
  aligned = face.align_face(photo, "demo", size=S, border="replicate")
  return photo, aligned, aligned.landmarks.astype(np.float64)


def _inside(points, polygon) -> np.ndarray:
  """[H, W] bool: `points` [H, W, 2] inside the closed `polygon` [K, 2]."""
  flat = points.reshape(-1, 2)
  inside = [cv2.pointPolygonTest(polygon.astype(np.float32), tuple(map(float, p)), False) > 0
            for p in flat]
  return np.array(inside).reshape(points.shape[:2])


def _eye_polygons(landmarks):
  return [landmarks[36:42], landmarks[42:48]]


def _closing(demo, amount):
  _, aligned, landmarks = demo
  return eyelids.Closing(landmarks, amount, eyelids.lid_colours(aligned.crop, landmarks))


def test_open_eyes_read_the_frame_unchanged(demo):
  points = fr.crop_canvas(S, 2 * S).points
  for closing in (None, _closing(demo, 0.0)):
    moved, overlays = eyelids.close(points, closing)
    assert moved is points and overlays == []


def _painted(points, overlays) -> np.ndarray:
  """[H, W] the weight of the painted lid at each pixel of `points`."""
  weight = np.zeros(points.shape[:2], np.float32)
  for rows, cols, w, _ in overlays:
    weight[rows, cols] = np.maximum(weight[rows, cols], w[..., 0])
  return weight


def test_closing_covers_the_eye_from_the_top_and_touches_nothing_else(demo):
  """At the output's resolution (4x the crop), the pixels inside each eye's landmark outline show
  the lid (they read a point above the upper lid's landmarks, or are painted) more and more as the
  eye closes, nearly all of them when it is closed; outside the eyes' region no pixel moves or is
  painted."""
  _, _, landmarks = demo
  points = fr.crop_canvas(S, 4 * S).points
  eyes = _eye_polygons(landmarks)
  in_eye = [_inside(points, poly) for poly in eyes]
  near_eyes = np.zeros(points.shape[:2], bool)
  for poly in eyes:  # Each eye's box, widened by its width.
    (x0, y0), (x1, y1) = poly.min(0), poly.max(0)
    width = x1 - x0
    near_eyes |= ((points[..., 0] > x0 - 0.3 * width) & (points[..., 0] < x1 + 0.3 * width) &
                  (points[..., 1] > y0 - 1.2 * width) & (points[..., 1] < y1 + 0.3 * width))
  covered = []
  for amount in (0.25, 0.5, 0.75, 1.0):
    moved, overlays = eyelids.close(points, _closing(demo, amount))
    painted = _painted(points, overlays)
    lid = [
        mask & ((moved[..., 1] < np.interp(moved[..., 0], poly[[1, 2], 0], poly[[1, 2], 1])) |
                (painted > 0.5)) for mask, poly in zip(in_eye, eyes)
    ]
    covered.append([shown.sum() / mask.sum() for shown, mask in zip(lid, in_eye)])
    changed = np.any(moved != points, axis=-1) | (painted > 0)
    assert changed.any() and not (changed & ~near_eyes).any()
  covered = np.array(covered)  # [amounts, eyes]
  assert np.all(np.diff(covered, axis=0) > 0.1), covered  # Monotone: no pop mid-blink.
  assert np.all(covered[-1] > 0.9) and np.all(covered[0] < 0.5), covered


def test_the_lid_comes_down_whole(demo):
  """Closed, the column through the eye's middle shows the lid from the open eye's top to below its
  lower lid landmarks: first the gap under the crease (one row read, painted over), then the lid
  band read one output px per source px (moved, not stretched: lashes and skin stay sharp)."""
  _, _, landmarks = demo
  scale = 8
  points = fr.crop_canvas(S, scale * S).points
  moved, _ = eyelids.close(points, _closing(demo, 1.0))
  x = 0.5 * (landmarks[37, 0] + landmarks[38, 0])
  col = int(round((x + 0.5) * scale - 0.5))
  upper_y = 0.5 * (landmarks[37, 1] + landmarks[38, 1])
  lower_y = 0.5 * (landmarks[41, 1] + landmarks[40, 1])
  rows = np.arange(int(upper_y * scale), int((lower_y + 2.0) * scale))
  source_y = moved[rows, col, 1]
  lid = source_y < upper_y  # Rows that read the lid above the open eye.
  assert lid[0] and np.all(np.diff(lid.astype(int)) <= 0)  # From the top, in one piece.
  assert points[rows[lid.sum() - 1], col, 1] > lower_y  # Down past the lower lid's points.
  step = np.diff(source_y[lid]) * scale  # Source px per output px (1 / 8 crop px).
  whole, still = np.abs(step - 1.0) < 0.05, np.abs(step) < 0.05
  assert np.sum(~whole & ~still) <= 1, step  # The gap, then the band (one px between).
  assert np.flatnonzero(still).max() < np.flatnonzero(whole).min()
  band = eyelids.LID_BAND * (lower_y - upper_y)
  assert whole.sum() >= 0.8 * band * scale, (whole.sum(), band * scale)


def test_lid_colour_is_the_skin_not_a_dark_line(demo):
  """The painted lid's colour comes from the lid's skin: a dark line 1 px wide drawn along the lid
  band's top in a 256 crop (eyeliner, a lash, the crease's shadow) moves it by a few grey levels
  at most."""
  aligned = face.align_face(demo[0], "demo", size=256, border="replicate")
  landmarks = aligned.landmarks.astype(np.float64)
  clean = eyelids.lid_colours(aligned.crop, landmarks)
  lined = aligned.crop.copy()
  for eye in (landmarks[36:40], landmarks[42:46]):
    band = eyelids.LID_BAND * np.ptp(eye[:, 1])
    cv2.polylines(lined, [np.round(eye - [0.0, band]).astype(np.int32)], False, (20, 20, 20), 1)
  assert np.abs(eyelids.lid_colours(lined, landmarks) - clean).max() < 8.0


def test_dlib_reads_the_composed_eyes_narrower(demo):
  """The demo photo composed with no motion and its eyes closed: dlib's eye opening (lid points
  apart over the eye's width) falls by over a fifth (dlib, trained on open eyes, puts the upper lid
  points above a closed lid's lashes: 0.27 against 0.36 open here)."""
  photo, aligned, landmarks = demo
  canvas = fr.paste_canvas(photo.shape, aligned.transform, S)
  still = np.zeros((S, S, 2), np.float32), np.zeros((S, S, 3), np.float32)
  opening = {}
  for amount in (0.0, 1.0):
    frame = fr.compose(photo, aligned.transform, canvas, *still,
                       closing=_closing(demo, amount))
    points = face.face_landmarks(frame, f"closed {amount}")
    lids = np.linalg.norm(points[[37, 38, 43, 44]] - points[[41, 40, 47, 46]], axis=-1).mean()
    opening[amount] = lids / np.linalg.norm(points[[39, 45]] - points[[36, 42]], axis=-1).mean()
  assert opening[1.0] < 0.8 * opening[0.0], opening

"""Blinks drawn as the upper lid coming down over the eye, at the output's own resolution.

A blink is not a change of the eye's shape: the upper lid comes down in front of the eye, which
stays where it is. A warp of the face's landmarks cannot show that (bringing the lid points down
onto the lower lid squashes the eye into a slit and stretches the lid crease over it), nor can a
stretch of the skin above the lashes (it drags the crease, make-up and skin texture down in
streaks), because the lid's closed surface is hidden in the fold when the eye is open. So stage 2
renders the eyes open, and at each output pixel (`full_resolution.compose`):

* in each eye's frame (s along the line between its corners, 0 .. 1; t across it, in crop px, down
  positive) the upper lid's edge U(s) and the lower lid's D(s) are cubics through the corners and
  the two lid landmarks, widened a little (dlib's points sit inside the lash lines);
* with the eye closed by `amount`, the lid's edge comes down to M(s) = U + amount (D - U), and the
  lid above it (its band: the edge and LID_BAND of the eye's height of skin, lashes and eyeliner
  with it, short of the crease) comes down whole, as sharp as the photo; below M the eye shows as
  it was;
* the gap the band leaves under the crease (the lid's skin that the open eye hides in its fold) is
  painted in the photo's skin colour there (`lid_colours`: per stretch of the eye, the brightest
  third, so lashes, eyeliner and the crease's shadow do not count), faded into the skin around it.

Nothing changes where `amount` is 0, or at the eye's corners (where U = D).
"""

import dataclasses
from typing import Callable, Optional

import cv2
import numpy as np

from emotalk_jax.generate import feature_frame

# iBUG 68 points of each eye: corners, then the upper lid's and the lower lid's two points, each
# pair in the order the corners run.
EYES = ((36, 39, (37, 38), (41, 40)), (42, 45, (43, 44), (47, 46)))
# The lid's edges lie this far (x the eye's open height) outside dlib's lid points, and run on
# this far (x the eye's width) past its corner points.
LID_PAD, LID_EXTEND = 0.1, 0.1
# The lid between its edge and this far above it (x the eye's open height; short of the crease)
# comes down whole with the edge.
LID_BAND = 0.5
LASH_HEIGHT = 0.2  # The lashes' height over the lid's edge (x the eye's open height).
FEATHER_PX = 0.75  # Crop px over which the painted skin fades into the skin around it.
COLOUR_BINS = 12  # Lid colours along each eye.


@dataclasses.dataclass(frozen=True)
class _Eye(feature_frame.FeatureFrame):
  """One eye's frame (crop px) and lid edges (see the module docstring)."""
  upper: tuple  # (c0, c1) of U(s) = s (1 - s) (c0 + c1 s).
  lower: tuple  # The same for D(s).
  height: float  # The open eye's largest D - U, crop px.


def _lid_curve(s_points, t_points) -> tuple:
  """(c0, c1) with t(s) = s (1 - s) (c0 + c1 s): the cubic through the corners (0, 0) and (1, 0)
  and the two points (s_i, t_i)."""
  s_points = np.clip(s_points, 0.05, 0.95)
  ratio = t_points / (s_points * (1.0 - s_points))
  if abs(s_points[1] - s_points[0]) < 0.05:  # Points one above the other: a parabola.
    return float(ratio.mean()), 0.0
  c1 = (ratio[1] - ratio[0]) / (s_points[1] - s_points[0])
  return float(ratio[0] - c1 * s_points[0]), float(c1)


def _curve(coefficients, s):
  return s * (1.0 - s) * (coefficients[0] + coefficients[1] * s)


def _eyes(landmarks_px) -> list:
  """The two eyes' `_Eye`s of [68, 2] crop px landmarks (None for an eye with no opening)."""
  landmarks_px = np.asarray(landmarks_px, np.float64)
  eyes = []
  for inner, outer, upper, lower in EYES:
    start, end = landmarks_px[inner], landmarks_px[outer]
    width = float(np.linalg.norm(end - start))
    if width < 1e-3:
      eyes.append(None)
      continue
    along = (end - start) / width
    start = start - LID_EXTEND * width * along
    eye = _Eye(start, along, width * (1.0 + 2.0 * LID_EXTEND), (0.0, 0.0), (0.0, 0.0), 0.0)
    upper_curve = _lid_curve(*eye.local(landmarks_px[list(upper)]))
    lower_curve = _lid_curve(*eye.local(landmarks_px[list(lower)]))
    s_grid = np.linspace(0.0, 1.0, 33)
    height = float(np.max(_curve(lower_curve, s_grid) - _curve(upper_curve, s_grid)))
    if height <= 1e-3:
      eyes.append(None)
      continue
    pad = 4.0 * LID_PAD * height  # s (1 - s) is 1/4 at the middle.
    eyes.append(dataclasses.replace(eye, upper=(upper_curve[0] - pad, upper_curve[1]),
                                    lower=(lower_curve[0] + pad, lower_curve[1]), height=height))
  return eyes


def lid_colours(crop, landmarks_px) -> np.ndarray:
  """[2, COLOUR_BINS, 3] float32: each eye's skin colour along the top of its moving lid band.

  Args:
    crop: [S, S, 3] uint8, the aligned photo.
    landmarks_px: [68, 2] its landmarks in crop px.

  Per bin of s, the photo's lid skin around the band's top (t = U - LID_BAND x height), the lashes
  left out: the median of its brightest third (skin, not a lash, eyeliner or the crease's shadow),
  then smoothed along the eye (the skin that unfolds has no stripes).
  """
  colours = np.zeros((2, COLOUR_BINS, 3), np.float32)
  for k, eye in enumerate(_eyes(landmarks_px)):
    if eye is None:
      colours[k] = np.median(crop.reshape(-1, 3), axis=0)
      continue
    # [K, 8, 8]: 8 points along each bin, 8 up the skin from just over the lashes to as far above
    # the band's top as that is below it.
    s = np.broadcast_to((np.arange(COLOUR_BINS)[:, None, None] +
                         np.linspace(0.0, 1.0, 8)[None, None]) / COLOUR_BINS, (COLOUR_BINS, 8, 8))
    up = np.linspace(LASH_HEIGHT, 2.0 * LID_BAND - LASH_HEIGHT, 8)[None, :, None]
    t = _curve(eye.upper, s) - up * eye.height
    at = eye.point(s, t).reshape(COLOUR_BINS, -1, 2).astype(np.float32)
    samples = cv2.remap(np.ascontiguousarray(crop, np.float32), at[..., 0], at[..., 1],
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # [K, 64, 3]
    luma = samples @ np.array([0.299, 0.587, 0.114], np.float32)
    bright = luma >= np.quantile(luma, 2.0 / 3.0, axis=1, keepdims=True)
    colours[k] = [np.median(samples[b][bright[b]], axis=0) for b in range(COLOUR_BINS)]
    padded = np.concatenate([colours[k, :1], colours[k, :1], colours[k], colours[k, -1:],
                             colours[k, -1:]])  # Edges held.
    colours[k] = np.stack([np.convolve(padded[:, c], [0.1, 0.2, 0.4, 0.2, 0.1], "valid")
                           for c in range(3)], axis=-1)
  return colours


@dataclasses.dataclass(frozen=True)
class Closing:
  """The eyes of one frame, closed by `amount` (0 open .. 1 the lid's edge on the lower lid).

  Attributes:
    landmarks_px: [68, 2] the open frame's landmarks in crop px.
    amount: 0 .. 1.
    colours: the photo's `lid_colours`.
  """
  landmarks_px: np.ndarray
  amount: float
  colours: np.ndarray


def close(points, closing: Optional[Closing],
          to_points: Optional[Callable] = None) -> tuple[np.ndarray, list]:
  """Where an output frame reads its open-eyed frame, and the lids painted over it.

  Args:
    points: [H, W, 2] float32 (x, y) in crop px: where each output pixel reads the open frame.
    closing: the eyes' closing (None or amount 0: open).
    to_points: `to_points(box)` -> (rows, cols) slices of `points` holding the crop px box (x0, y0,
      x1, y1) (`Canvas.pixels_of`); None: all of `points` is searched.

  Returns:
    (points: `points` itself for open eyes, else a copy with the lashes' points moved down;
     overlays: [(rows, cols, weight [h, w, 1], colour [h, w, 3] grey levels)], the painted lids
     to blend into the frame's pixels at `[rows, cols]` by `weight`).
  """
  if closing is None or closing.amount <= 0.0:
    return points, []
  out = np.array(points, np.float32, copy=True)
  overlays = []
  for eye, colours in zip(_eyes(closing.landmarks_px), closing.colours):
    if eye is None:
      continue
    band = LID_BAND * eye.height
    s_grid = np.linspace(0.0, 1.0, 33)
    top = float(np.min(_curve(eye.upper, s_grid))) - band - FEATHER_PX
    bottom = float(np.max(_curve(eye.lower, s_grid)))
    rows, cols = to_points(eye.box(top, bottom)) if to_points else (slice(None), slice(None))
    region = out[rows, cols]
    if region.size == 0:
      continue
    s, t = eye.local(region)
    inside = (s > 0.0) & (s < 1.0)
    lid = _curve(eye.upper, s)
    drop = closing.amount * np.maximum(_curve(eye.lower, s) - lid, 0.0)
    band_top = lid - band
    # The lid band, moved down whole; the gap it leaves under the crease reads the band's top.
    moved = inside & (t >= band_top) & (t < lid + drop)
    source_t = np.maximum(t - drop, band_top)
    region[moved] = eye.point(s, source_t)[moved].astype(np.float32)
    # That gap painted in the skin's colour, faded into the skin above and the band below.
    weight = np.clip(np.minimum(t - band_top, band_top + drop - t) / FEATHER_PX + 0.5, 0.0, 1.0)
    weight = np.where(inside & (drop > 0.0), weight, 0.0)
    bins = np.clip(s * COLOUR_BINS - 0.5, 0.0, COLOUR_BINS - 1.0)
    colour = np.stack([np.interp(bins, np.arange(COLOUR_BINS), colours[:, c]) for c in range(3)],
                      axis=-1)
    overlays.append((rows, cols, weight[..., None].astype(np.float32), colour.astype(np.float32)))
  return out, overlays

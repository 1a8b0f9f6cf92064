"""The inside of an opening mouth, drawn at the output's own resolution from a real open mouth.

Most photos have closed lips, so nothing in them shows what an opening mouth reveals. Stage 2
paints it at its own 128 px from what its L1 training averages to: a soft light blob where teeth
might be, on a pink smear. Here the inside comes from a real mouth instead (`Exemplar`: by default
a frame of GRID speaker s4 with her upper teeth showing, `assets/mouth_interior.png`, CC BY 4.0),
its colours taken to the photo's (`_recoloured`: hue from the colour of the skin around each
mouth, `skin_colour`; brightness from the skin and the whites of the eyes, `eye_white_luma`), and
at each output pixel between a frame's inner lips (`full_resolution.compose`):

* in the mouth's frame (s along the line between the inner lips' corners, landmarks 60 and 64, 0 ..
  1; t across it in crop px, down positive) the upper and lower inner lips U(s) and D(s) are
  parabolas through the corners, fitted to the three inner-lip landmarks of each side, for the
  frame and the exemplar alike;
* the upper teeth hang from the upper lip and the lower ones stand on the lower lip: a pixel d
  below U in the upper half of the gap reads the exemplar d x k below its upper lip (k: the ratio
  of the two mouths' widths), at most down to the middle of the exemplar's gap, and the lower half
  likewise up from the lower lip, the two cross-fading over the middle `SEAM_BLEND` of the gap. A
  mouth open less than the exemplar hides the middle of the exemplar's (the teeth's edges go
  behind the lips); in one open wider, the drawing stops at the
  exemplar's middle and stage 2's own paint shows between the rows of teeth (the dark of the
  mouth and the tongue, which it paints well: it is the teeth that it blurs);
* it is blended in by how much further the mouth is open than the photo's (`RAMP`), so a frame
  whose mouth is as closed as the photo's keeps stage 2's lips, and faded over `FEATHER_PX` inside
  the lips' edges. A photo whose own mouth is open (`PHOTO_OPEN`: its teeth show, e.g. a smile)
  gets nothing drawn: the warp shows its own teeth, better than another person's.
"""

import dataclasses
import functools
import json
import pathlib
from typing import Callable, Optional

import cv2
import numpy as np

from emotalk_jax import bundled
from emotalk_jax.errors import InputError
from emotalk_jax.generate import feature_frame
from emotalk_jax.media import video_io

INNER_CORNERS = (60, 64)
UPPER_INNER = (61, 62, 63)
LOWER_INNER = (67, 66, 65)
OUTER_LIPS = tuple(range(48, 60))
# The drawn inside fades in as the mouth's opening (the largest D - U, x the mouth's width) grows
# from the photo's to this much more.
RAMP = 0.08
# Photos whose mouth is open this much (x its width) or more keep their own inside. Closed lips
# measure 0.00-0.02 (8 photos of ../shared/data/faces), parted dark lips 0.06, smiles with
# teeth 0.18-0.24.
PHOTO_OPEN = 0.1
FEATHER_PX = 0.75  # Crop px inside the lips' edges over which the drawn inside fades in.
MIDDLE_FADE = 2.0  # Exemplar px past its middle over which the drawing fades out.
SEAM_BLEND = 0.5  # The share of the gap, around its middle, over which the two halves cross-fade.
# The skin whose colour is matched: a ring around the outer lips, this far out (x their distance
# from the mouth's centre).
SKIN_RING = (1.25, 1.6)
# The whites of the eyes: this percentile of the luma inside the eye's six landmarks (the iris, the
# lids' edges and the lashes are darker).
EYE_WHITE_PERCENTILE = 85
EYE_LANDMARKS = (tuple(range(36, 42)), tuple(range(42, 48)))
# RGB -> (Y, Cb, Cr), BT.601.
_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                    [0.5, -0.418688, -0.081312]], np.float32)


@dataclasses.dataclass(frozen=True)
class _Mouth(feature_frame.FeatureFrame):
  """A mouth's frame (from inner corner 60 to 64) and inner lips (see the module docstring)."""
  upper: float  # c of U(s) = c s (1 - s), px.
  lower: float  # The same for D.

  def lips(self, s) -> tuple:
    """(U(s), D(s)) in px."""
    bump = s * (1.0 - s)
    return self.upper * bump, self.lower * bump

  def opening(self) -> float:
    """The largest D - U, x the width."""
    return (self.lower - self.upper) / (4.0 * self.width)


def _mouth(landmarks_px) -> Optional[_Mouth]:
  """The `_Mouth` of [68, 2] landmarks (or None for a mouth with no width). Each inner lip is the
  parabola through the corners nearest (least squares) its three landmarks: a line through them
  follows the small errors of stage 1's inner-lip points into a jagged, lopsided opening (left and
  right of one lip often differ by more than the lips are apart)."""
  landmarks_px = np.asarray(landmarks_px, np.float64)
  start, end = landmarks_px[INNER_CORNERS[0]], landmarks_px[INNER_CORNERS[1]]
  width = float(np.linalg.norm(end - start))
  if width < 1e-3:
    return None
  mouth = _Mouth(start, (end - start) / width, width, 0.0, 0.0)

  def parabola(points):
    s, t = mouth.local(landmarks_px[list(points)])
    bump = np.clip(s, 0.0, 1.0) * (1.0 - np.clip(s, 0.0, 1.0))
    return float(bump @ t / max(float(bump @ bump), 1e-6))

  return dataclasses.replace(mouth, upper=parabola(UPPER_INNER), lower=parabola(LOWER_INNER))


def skin_colour(image, landmarks_px) -> np.ndarray:
  """[3] float32: the colour of the skin around the mouth of `image` [H, W, 3] uint8 (landmarks
  [68, 2] px): over a ring around the outer lips (`SKIN_RING`), per channel the median of the
  brighter half (skin, not a beard's or the lips' shadow)."""
  lips = np.asarray(landmarks_px, np.float64)[list(OUTER_LIPS)]
  centre = lips.mean(0)
  scale = np.linspace(*SKIN_RING, 6)[:, None, None]
  at = (centre + scale * (lips - centre)).reshape(1, -1, 2).astype(np.float32)
  samples = cv2.remap(np.ascontiguousarray(image, np.float32), at[..., 0], at[..., 1],
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
  luma = samples @ np.array([0.299, 0.587, 0.114], np.float32)
  return np.median(samples[luma >= np.median(luma)], axis=0).astype(np.float32)


def eye_white_luma(image, landmarks_px) -> Optional[float]:
  """The luma of the whites of the eyes of `image` [H, W, 3] uint8 (landmarks [68, 2] px): the
  `EYE_WHITE_PERCENTILE` of both eyes' pixels, or None when the eyes cover fewer than 8 pixels
  (closed, or too small to tell)."""
  mask = np.zeros(np.shape(image)[:2], np.uint8)
  for eye in EYE_LANDMARKS:
    cv2.fillPoly(mask, [np.round(np.asarray(landmarks_px)[list(eye)]).astype(np.int32)], 1)
  luma = np.asarray(image, np.float32)[mask > 0] @ _TO_YCC[0]
  return float(np.percentile(luma, EYE_WHITE_PERCENTILE)) if luma.size >= 8 else None


@dataclasses.dataclass(frozen=True)
class Exemplar:
  """A real open mouth.

  Attributes:
    image: [h, w, 3] uint8, the mouth and skin around it.
    landmarks_px: [68, 2] float64 px of `image` (only the mouth's, 48-67, are used).
    eye_white_luma: the luma of the same face's eye whites (`eye_white_luma`), or None (unknown:
      the teeth's brightness then follows the skin's alone).
  """
  image: np.ndarray
  landmarks_px: np.ndarray
  eye_white_luma: Optional[float] = None


def load_exemplar(image_path, landmarks_path) -> Exemplar:
  """An `Exemplar` from a photo of an open mouth and a JSON {'landmarks': [[x, y]] x 20, the mouth's
  landmarks 48-67 in its px, optionally 'eye_white_luma': the luma of that face's eye whites}.

  Raises:
    InputError: a file is missing or unreadable, the landmarks are not 20 points inside the
      image, or 'eye_white_luma' is not a positive number.
  """
  image = video_io.read_image(image_path)
  try:
    meta = json.loads(pathlib.Path(landmarks_path).read_text())
    points = np.asarray(meta["landmarks"], np.float64)
    white = meta.get("eye_white_luma")
    white = None if white is None else float(white)
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise InputError(landmarks_path, f"not a mouth landmarks file ({e})") from e
  if white is not None and not 0.0 < white <= 255.0:
    raise InputError(landmarks_path, f"'eye_white_luma' must be in (0, 255], got {white}")
  height, width = image.shape[:2]
  if (points.shape != (20, 2) or not np.isfinite(points).all() or points.min() < 0 or
      (points[:, 0] > width - 1).any() or (points[:, 1] > height - 1).any()):
    raise InputError(landmarks_path, f"'landmarks' must be 20 [x, y] points inside the "
                     f"{width}x{height} image, got shape {points.shape}")
  landmarks = np.zeros((68, 2), np.float64)
  landmarks[48:68] = points
  mouth = _mouth(landmarks)
  if mouth is None or mouth.opening() <= 0.0:
    raise InputError(landmarks_path, "the exemplar's mouth is not open")
  return Exemplar(image, landmarks, white)


@functools.lru_cache(maxsize=1)
def default_exemplar() -> Exemplar:
  """The bundled exemplar (see `tools/make_demo_media.py`)."""
  return load_exemplar(bundled.MOUTH_EXEMPLAR, bundled.MOUTH_EXEMPLAR_LANDMARKS)


def _luma_ratio(skin_from, skin_to, white_from=None, white_to=None) -> float:
  """How much brighter the teeth of the face with skin `skin_to` [3] (eye whites' luma `white_to`)
  are than those of the face with `skin_from` (`white_from`).

  The skins' luma ratio carries the light but also the skin's own tone, which teeth do not share;
  the eye whites, white like teeth, carry the light alone but are a few pixels of a small face.
  Where both are known, the geometric mean of the two ratios, which of the three follows real
  teeth best (docs/results.md#the-mouths-inside-drawn-from-a-real-mouth).
  """
  ratio = float(skin_to @ _TO_YCC[0]) / max(float(skin_from @ _TO_YCC[0]), 1.0)
  if white_from and white_to:
    ratio = float(np.sqrt(ratio * white_to / white_from))
  return ratio


def _recoloured(image, skin_from, skin_to, luma_ratio: float) -> np.ndarray:
  """[h, w, 3] float32: `image` [h, w, 3] uint8 with the hue of skin `skin_from` [3] taken to that
  of `skin_to`, and everything else with it, but greys kept grey: the chroma plane (Cb + i Cr) is
  multiplied by the complex ratio of the skins' chromas (a rotation and a scale; a black-and-white
  photo's skin makes the teeth grey, not blue), and luma by `luma_ratio` (`_luma_ratio`)."""
  ycc = np.asarray(image, np.float32) @ _TO_YCC.T
  c_from = (skin_from @ _TO_YCC.T)[1:]
  c_to = (skin_to @ _TO_YCC.T)[1:]
  ratio = complex(*c_to) / complex(*c_from) if abs(complex(*c_from)) > 1.0 else 0.0
  chroma = (ycc[..., 1] + 1j * ycc[..., 2]) * ratio
  ycc = np.stack([ycc[..., 0] * luma_ratio, chroma.real, chroma.imag], axis=-1)
  return np.clip(ycc @ np.linalg.inv(_TO_YCC).T, 0.0, 255.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Interior:
  """A photo's mouth interior: the exemplar in the photo's colours.

  Attributes:
    image: [h, w, 3] float32, the exemplar's pixels in the photo's colours (`_recoloured`).
    mouth: the exemplar's `_Mouth`.
    photo_opening: the photo's own mouth opening (largest D - U, x the mouth's width).
  """
  image: np.ndarray
  mouth: _Mouth
  photo_opening: float


def interior(crop, landmarks_px, exemplar: Optional[Exemplar] = None) -> Interior:
  """The `Interior` for a photo.

  Args:
    crop: [S, S, 3] uint8, the aligned photo.
    landmarks_px: [68, 2] its landmarks in crop px.
    exemplar: the open mouth drawn from (default: `default_exemplar()`).
  """
  exemplar = exemplar or default_exemplar()
  skin_from = skin_colour(exemplar.image, exemplar.landmarks_px)
  skin_to = skin_colour(crop, landmarks_px)
  luma_ratio = _luma_ratio(skin_from, skin_to, exemplar.eye_white_luma,
                           eye_white_luma(crop, landmarks_px))
  image = _recoloured(exemplar.image, skin_from, skin_to, luma_ratio)
  photo = _mouth(landmarks_px)
  return Interior(image, _mouth(exemplar.landmarks_px),
                  0.0 if photo is None else max(photo.opening(), 0.0))


@dataclasses.dataclass(frozen=True)
class Opening:
  """The mouth of one frame.

  Attributes:
    landmarks_px: [68, 2] the frame's landmarks in crop px.
    interior: the photo's `Interior`.
  """
  landmarks_px: np.ndarray
  interior: Interior


def draw(points, opening: Optional[Opening], to_points: Optional[Callable] = None) -> list:
  """The inside of a frame's mouth, to paint over its pixels.

  Args:
    points: [H, W, 2] float32 (x, y) in crop px of each output pixel.
    opening: the frame's mouth (None: nothing drawn).
    to_points: `to_points(box)` -> (rows, cols) slices of `points` holding the crop px box (x0, y0,
      x1, y1) (`Canvas.pixels_of`); None: all of `points` is searched.

  Returns:
    [(rows, cols, weight [h, w, 1], colour [h, w, 3] grey levels)]: at most one overlay, to blend
    into the frame's pixels at `[rows, cols]` by `weight`.
  """
  mouth = None if opening is None else _mouth(opening.landmarks_px)
  if mouth is None:
    return []
  inside = opening.interior
  amount = np.clip((mouth.opening() - inside.photo_opening) / RAMP, 0.0, 1.0)
  if amount <= 0.0 or inside.photo_opening >= PHOTO_OPEN:
    return []
  box = mouth.box(min(mouth.upper, 0.0) / 4.0, max(mouth.lower, 0.0) / 4.0)
  rows, cols = to_points(box) if to_points else (slice(None), slice(None))
  region = np.asarray(points)[rows, cols]
  if region.size == 0:
    return []
  s, t = mouth.local(region)
  upper, lower = mouth.lips(s)
  below_upper, above_lower = t - upper, lower - t
  # The same place in the exemplar, from each lip (see the module docstring).
  ex = inside.mouth
  ex_upper, ex_lower = ex.lips(s)
  half = np.maximum(ex_lower - ex_upper, 0.0) / 2.0
  k = ex.width / mouth.width
  from_upper = np.maximum(below_upper, 0.0) * k  # Exemplar px from each lip.
  from_lower = np.maximum(above_lower, 0.0) * k
  at_upper = ex.point(s, ex_upper + np.minimum(from_upper, half))
  at_lower = ex.point(s, ex_lower - np.minimum(from_lower, half))
  image = inside.image
  # Exemplar px per output px: above 1 the exemplar is read from a copy shrunk to match (an
  # exemplar read sparsely aliases its teeth and their gaps into dots).
  shrink = k * float(np.linalg.norm(region[0, min(1, region.shape[1] - 1)] - region[0, 0]))
  scale = 1.0
  if shrink > 1.0:
    image = cv2.resize(image, None, fx=1.0 / shrink, fy=1.0 / shrink, interpolation=cv2.INTER_AREA)
    scale = image.shape[1] / inside.image.shape[1]

  def read(at):
    at = ((at + 0.5) * scale - 0.5).astype(np.float32)
    return cv2.remap(image, at[..., 0], at[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)

  # The two halves cross-fade over SEAM_BLEND of the gap around its middle: where they met in a
  # line, a large face showed the seam (the exemplar's shadowed tooth tops above its bright edges).
  gap = np.maximum(below_upper + above_lower, 1e-6)
  lower_share = np.clip((below_upper - above_lower) / (SEAM_BLEND * gap) + 0.5, 0.0, 1.0)
  colour = read(at_upper)
  colour += lower_share[..., None] * (read(at_lower) - colour)
  depth = np.minimum(from_upper, from_lower)  # From the nearer lip.
  weight = np.clip(np.minimum(below_upper, above_lower) / FEATHER_PX, 0.0, 1.0)
  # Past the exemplar's middle, stage 2's paint (faded over MIDDLE_FADE exemplar px).
  weight *= np.clip(1.0 - (depth - half) / MIDDLE_FADE, 0.0, 1.0)
  weight = np.where((s > 0.0) & (s < 1.0), weight * amount, 0.0)
  return [(rows, cols, weight[..., None].astype(np.float32), colour)]

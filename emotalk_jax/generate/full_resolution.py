"""Stage 2's output at the photo's own resolution: its flow applied to the photo's pixels.

Stage 2 sees the aligned S x S crop and returns, per frame, a backward flow in normalised crop units
(so it holds at any resolution), an occlusion map (1 = the neutral face's pixel is still visible
there) and the RGB it paints; its frame is occlusion * warped + (1 - occlusion) * rgb, that is
warped + paint with paint = (1 - occlusion) * (rgb - warped) and warped = warp(crop, flow).
`compose` evaluates warped + paint at the output's own resolution instead:

1. every output pixel is mapped into the crop (the alignment's similarity transform);
2. the flow and the paint are sampled there (bilinear: both are smooth at S);
3. the warp reads the *photo* at the point the flow names, mapped back through the alignment, so
   the face keeps the photo's own pores, lashes and highlights, and the paint adds what is new (an
   opening mouth) and the network's colour corrections, around the mouth only (`near_mouth`).
   Blending the painted RGB in by the occlusion instead would put its S-pixel softness back
   wherever occlusion < 1 (most of the face, at 0.9-0.95);
4. outside the photo the warp clamps to the photo's edge, like the network's own warp (`border`
   padding); nothing is mirrored.

With the crop itself as the photo at S (`crop_canvas(S, S)`, identity transform) this is stage 2's
own frame. A `Canvas` says where the output pixels are: the face's box in the photo for paste-back
(`paste_canvas`, blended into the photo with the feathered `face.crop_mask`), or an aligned crop at
any size for `--crop-only` (`crop_canvas`).
"""

import dataclasses
from typing import Optional

import cv2
import numpy as np

from emotalk_jax.generate import eyelids
from emotalk_jax.generate import mouth_interior
from emotalk_jax.media import face


# How far stage 2's paint reaches from the outer lips, in mouth widths (`near_mouth`).
MOUTH_PAINT_REACH = 0.5


def near_mouth(paint, landmarks_px, reach: float = MOUTH_PAINT_REACH) -> np.ndarray:
  """Stage 2's `paint` [S, S, 3] kept around the mouth: all of it on the lips of `landmarks_px`
  [68, 2] (crop px), half of it `reach` mouth widths out from the outer lips, none from twice that
  on.

  The network learned its paint on speech, where it paints the lips and an opening mouth, and its
  paint elsewhere is worth next to nothing on real frames. Under expressions it rarely saw (a
  smile's raised cheeks and narrowed eyes) it paints blurred blobs there instead: smears over the
  eyes, a light haze on the shoulders (docs/results.md#stage-2s-paint-kept-to-the-mouth).
  """
  lips = np.asarray(landmarks_px, np.float64)[48:60]
  width = float(np.linalg.norm(lips[6] - lips[0]))  # Corner to corner (points 48, 54).
  outside = np.ones(paint.shape[:2], np.uint8)
  # Sub-pixel corners (shift=2: coordinates in quarter pixels).
  cv2.fillConvexPoly(outside, cv2.convexHull(np.round(lips * 4).astype(np.int32)), 0, shift=2)
  distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # Px to the lips.
  x = np.clip(distance / (2.0 * reach * max(width, 1.0)), 0.0, 1.0)
  return paint * (1.0 - x * x * (3.0 - 2.0 * x))[..., None]  # Smoothstep down.


@dataclasses.dataclass(frozen=True)
class Canvas:
  """Where the output pixels sit.

  Attributes:
    points: [H, W, 2] float32 (x, y) of each output pixel's centre in pixels of the S x S crop.
    weight: [H, W, 1] float32 in [0, 1], how much of the generated face each output pixel takes (the
      rest is the photo's pixel; None: all of it).
    box: (y0, y1, x0, x1) of the canvas in the photo (paste-back), or None (a crop of its own).
  """
  points: np.ndarray
  weight: Optional[np.ndarray] = None
  box: Optional[tuple] = None

  def pixels_of(self, crop_box) -> tuple:
    """(rows, cols) slices of the canvas pixels whose points fall in `crop_box` (x0, y0, x1, y1) of
    crop px (or near it: the bounding box of its corners' preimages, clipped to the canvas)."""
    height, width = self.points.shape[:2]
    origin = self.points[0, 0].astype(np.float64)
    # Points are an affine function of the pixel grid (a similarity for paste-back).
    step_x = self.points[0, min(1, width - 1)] - origin
    step_y = self.points[min(1, height - 1), 0] - origin
    x0, y0, x1, y1 = crop_box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64) - origin
    cols, rows = np.linalg.solve(np.stack([step_x, step_y], axis=1), corners.T)
    clip = lambda v, n: int(np.clip(v, 0, n))
    return (slice(clip(np.floor(rows.min()), height), clip(np.ceil(rows.max()) + 1, height)),
            slice(clip(np.floor(cols.min()), width), clip(np.ceil(cols.max()) + 1, width)))


def _pixel_grid(height: int, width: int) -> np.ndarray:
  xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
  return np.stack([xs, ys], axis=-1)


def paste_canvas(photo_shape, transform, size: int, feather: float = 0.1) -> Canvas:
  """The photo pixels the S x S crop covers (its footprint's bounding box, clipped to the photo),
  with the feathered weight `face.paste_back` uses.

  Args:
    photo_shape: (H, W, ...) of the photo.
    transform: [2, 3] photo px -> crop px for a crop of side `size`.
    size: S.
    feather: soft edge as a fraction of S (`face.crop_mask`).
  """
  transform = np.asarray(transform, np.float64)
  x0, x1, y0, y1 = _footprint(photo_shape, transform, size)
  grid = _pixel_grid(y1 - y0, x1 - x0) + np.array([x0, y0], np.float64)
  points = (grid @ transform[:, :2].T + transform[:, 2]).astype(np.float32)
  mask = face.crop_mask(size, feather)
  weight = cv2.remap(mask, points[..., 0], points[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
  return Canvas(points, np.clip(weight, 0.0, 1.0)[..., None], (int(y0), int(y1), int(x0), int(x1)))


def crop_canvas(size: int, out_size: int) -> Canvas:
  """An aligned crop of side `out_size` (the S x S crop's footprint, resampled)."""
  # Pixel centres map centre to centre: crop px = (out px + 0.5) * S / out_size - 0.5.
  scale = size / out_size
  points = (_pixel_grid(out_size, out_size) + 0.5) * scale - 0.5
  return Canvas(points.astype(np.float32))


@dataclasses.dataclass(frozen=True)
class Source:
  """The photo region the warp reads, upsampled 2x once per video (Lanczos): every frame then
  reads it with a bicubic tap (4 x 4) instead of a Lanczos one (8 x 8) on the photo, a third of the
  cost and as sharp (docs/results.md#generation-speed-and-memory). Photo pixel (x, y) is its pixel
  (2 (x - x0), 2 (y - y0)), so it holds every photo pixel exactly.

  Attributes:
    image: [2 h, 2 w, 3] uint8.
    origin: (x0, y0), the photo pixel at its top-left corner.
  """
  image: np.ndarray
  origin: tuple


def photo_source(photo, transform, size: int, margin: float = 0.25) -> Source:
  """The `Source` of the S x S crop's footprint in `photo`, widened by `margin` of its side on each
  side (a flow reaching further reads the region's edge), clipped to the photo.

  Args:
    photo: [H, W, 3] uint8.
    transform: [2, 3] photo px -> crop px for a crop of side `size`.
    size: S.
  """
  x0, x1, y0, y1 = _footprint(photo.shape, transform, size, margin)
  xs = x0 + np.arange(2 * (x1 - x0), dtype=np.float32) / 2
  ys = y0 + np.arange(2 * (y1 - y0), dtype=np.float32) / 2
  map_x, map_y = np.meshgrid(xs, ys)
  image = cv2.remap(photo, map_x, map_y, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
  return Source(image, (x0, y0))


def _footprint(photo_shape, transform, size: int, margin: float = 0.0) -> tuple:
  """(x0, x1, y0, y1): the photo pixels the S x S crop (widened by `margin` x S on each side)
  covers, clipped to the photo."""
  extra = margin * size
  corners = face.transform_points(
      np.array([[-1 - extra, -1 - extra], [size + extra, -1 - extra], [-1 - extra, size + extra],
                [size + extra, size + extra]], np.float64),
      face.invert(np.asarray(transform, np.float64)))
  height, width = photo_shape[:2]
  x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
  x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [width, height])
  return int(x0), int(max(x1, x0)), int(y0), int(max(y1, y0))


def compose(photo, transform, canvas: Canvas, flow, paint, source: Optional[Source] = None,
            interpolation: int = cv2.INTER_LANCZOS4,
            closing: Optional[eyelids.Closing] = None,
            opening: Optional[mouth_interior.Opening] = None) -> np.ndarray:
  """One generated frame on `canvas`, the warp reading `photo` at its own resolution.

  Args:
    photo: [H, W, 3] uint8, the neutral photo.
    transform: [2, 3] photo px -> crop px for the network's S x S crop.
    canvas: where the output pixels are (`paste_canvas`, `crop_canvas`).
    flow: [S, S, 2] stage 2's backward flow (normalised crop units, `models.warp`).
    paint: [S, S, 3] what stage 2 adds to the warped image, in grey levels.
    source: the photo prepared once per video (`photo_source`): read with a bicubic tap, faster
      than and as sharp as Lanczos on the photo. None: the photo itself, read with `interpolation`.
    interpolation: how the photo itself is sampled (cv2 flag). Lanczos (8 x 8 taps) by default:
      bilinear at fractional offsets is a low-pass filter that would halve the photo's fine detail
      wherever the flow is not a whole number of pixels (almost everywhere), and bicubic still
      loses a tenth of it (docs/results.md#sharpness); bilinear reproduces the network's own warp.
    closing: the eyes closed in a blink (`eyelids.close`); None: open.
    opening: the frame's mouth, whose inside is drawn from a real one (`mouth_interior.draw`);
      None: the inside as stage 2 paints it.

  Returns:
    [H, W, 3] uint8: the photo with the face region replaced (paste canvas), or the canvas alone.
  """
  size = flow.shape[0]
  # Where each output pixel reads the open-eyed frame (the lid moved down in a blink).
  points, lids = eyelids.close(canvas.points, closing, canvas.pixels_of)
  px, py = points[..., 0], points[..., 1]
  sample = lambda layer: cv2.remap(np.ascontiguousarray(layer, np.float32), px, py,
                                   cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
  flow_px = sample(flow) * (size / 2.0)  # Normalised units -> crop px (2 units span S px).
  at = points + flow_px.reshape(points.shape)  # Crop px the warp reads.
  to_photo = face.invert(np.asarray(transform, np.float64))
  if source is not None:  # Photo px -> pixels of the 2x source.
    x0, y0 = source.origin
    to_photo = np.array([[2.0, 0.0, -2.0 * x0], [0.0, 2.0, -2.0 * y0]]) @ np.vstack(
        [to_photo, [0.0, 0.0, 1.0]])
  map_x = (to_photo[0, 0] * at[..., 0] + to_photo[0, 1] * at[..., 1] + to_photo[0, 2])
  map_y = (to_photo[1, 0] * at[..., 0] + to_photo[1, 1] * at[..., 1] + to_photo[1, 2])
  image, how = (photo, interpolation) if source is None else (source.image, cv2.INTER_CUBIC)
  warped = cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32), how,
                     borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
  face_pixels = warped + sample(paint).reshape(warped.shape)
  # The closing lids and the mouth's inside, painted.
  for rows, cols, weight, colour in lids + mouth_interior.draw(canvas.points, opening,
                                                               canvas.pixels_of):
    part = face_pixels[rows, cols]
    part += weight * (colour - part)
  if canvas.box is None:
    return np.clip(np.rint(face_pixels), 0, 255).astype(np.uint8)
  y0, y1, x0, x1 = canvas.box
  out = np.array(photo, copy=True)
  region = out[y0:y1, x0:x1].astype(np.float32)
  out[y0:y1, x0:x1] = np.clip(np.rint(region + canvas.weight * (face_pixels - region)), 0,
                              255).astype(np.uint8)
  return out

"""CPBD: the no-reference sharpness metric of Narvekar & Karam (QoMEX 2009; IEEE TIP 20(9), 2011).

CPBD is the cumulative probability of blur detection: the share of edge pixels whose edge is so
narrow, relative to the width a viewer just notices at that contrast, that blur is detected with
probability at most 63%. Sharper images score higher, in [0, 1].

This is our own vectorised implementation. It follows the conventions of the `cpbd` PyPI package
1.0.7 (python-cpbd, a port of the authors' MATLAB code; it no longer imports on current SciPy) so
that the numbers agree with what papers report; `tests/test_cpbd.py` checks the agreement on real
frames:

1. The image is grey in [0, 255] as float64 (RGB is converted with ITU-R BT.601 weights, as PIL's
  "L").
2. Edge blocks: the image is split into 64x64 blocks (a partial block at the right or bottom edge is
   not used); a block counts when more than 0.2% of its pixels are Canny edges (Gaussian sigma 1,
   hysteresis thresholds 0.1 and 0.2 on the Sobel gradient magnitude of the [0, 255] image, as
   scikit-image's `canny` defaults give on a float image; so almost any textured block counts).
3. Edge pixels whose width is measured: Sobel vertical-edge response (the kernel [1 0 -1; 2 0 -2; 1
   0 -1]/8), squared, kept where above 2 sqrt(mean) and a horizontal or vertical local maximum.
4. Edge width (Marziliano et al. 2002), only for edges whose gradient direction (from central
   differences, quantised to 45 degrees; a pixel with zero horizontal gradient counts as 0 degrees)
   is 0 or 180 degrees:
   from the pixel, walk left and right while the intensity keeps rising/falling (at most 100 steps
   each); the width is the two walks plus 2.
5. Per edge block: contrast = int(max - min); just-noticeable width w_JNB = 5 for contrast <= 50,
   else 3; P(blur) = 1 - exp(-(w / w_JNB)^3.6).
6. CPBD = the fraction of all measured edges in edge blocks with round(100 P) <= 63 (Python
   rounding: half to even). 0 when no edge was measured.
"""

import cv2
import numpy as np
from scipy import ndimage

BLOCK = 64  # Block side in pixels.
# A block is an edge block with more than this share of Canny edge pixels.
EDGE_BLOCK_FRACTION = 0.002
BETA = 3.6  # Slope of the probability-of-blur psychometric function.
WIDTH_JNB_LOW, WIDTH_JNB_HIGH = 5.0, 3.0  # Just-noticeable blur widths for contrast <= 50 and > 50.
CONTRAST_SPLIT = 50
MAX_WALK = 100  # Steps each side of an edge pixel when measuring its width.
BLUR_PERCENT = 63  # CPBD counts edges with P(blur) <= 63%.
CANNY_SIGMA = 1.0
CANNY_LOW, CANNY_HIGH = 0.1, 0.2


def to_gray(image) -> np.ndarray:
  """[H, W] or [H, W, 3] RGB uint8 -> [H, W] float64 grey in [0, 255] (BT.601, rounded to
  integers)."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 3:
    if image.dtype != np.uint8:
      raise ValueError(f"expected a uint8 RGB image, got {image.dtype}")
    image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  if image.ndim != 2:
    raise ValueError(f"expected an [H, W] grey or [H, W, 3] RGB image, got shape {image.shape}")
  return image.astype(np.float64)


def canny(gray: np.ndarray) -> np.ndarray:
  """[H, W] bool Canny edges of a [0, 255] float image (sigma 1, thresholds 0.1 / 0.2, border
  pixels off)."""
  # Mask-normalised smoothing (zero padding divided by the smoothed mask), as scikit-image does.
  ones = np.ones_like(gray)
  smoothed = (ndimage.gaussian_filter(gray, CANNY_SIGMA, mode="constant")
              / ndimage.gaussian_filter(ones, CANNY_SIGMA, mode="constant"))
  gy = ndimage.sobel(smoothed, axis=0)
  gx = ndimage.sobel(smoothed, axis=1)
  magnitude = np.hypot(gx, gy)
  # Non-maximum suppression along the gradient, interpolating between the two neighbours it passes.
  h, w = gray.shape
  pad = np.pad(magnitude, 1)
  ys, xs = np.mgrid[1:h + 1, 1:w + 1]
  ax, ay = np.abs(gx), np.abs(gy)
  steep = ay > ax  # Gradient mostly vertical: step one row, interpolate along the row.
  ratio = np.where(steep, ax / np.maximum(ay, 1e-30), ay / np.maximum(ax, 1e-30))
  sx = np.where(gx >= 0, 1, -1)
  sy = np.where(gy >= 0, 1, -1)
  # Neighbour straight along the dominant axis, and the diagonal one next to it.
  n1y, n1x = np.where(steep, sy, 0), np.where(steep, 0, sx)
  n2y, n2x = sy, sx
  ahead = (1 - ratio) * pad[ys + n1y, xs + n1x] + ratio * pad[ys + n2y, xs + n2x]
  behind = (1 - ratio) * pad[ys - n1y, xs - n1x] + ratio * pad[ys - n2y, xs - n2x]
  local_max = (magnitude >= ahead) & (magnitude >= behind) & (magnitude > 0)
  local_max[[0, -1], :] = False
  local_max[:, [0, -1]] = False
  low = local_max & (magnitude >= CANNY_LOW)
  # Hysteresis: keep the 8-connected groups of weak edges that contain a strong edge.
  labels, count = ndimage.label(low, structure=np.ones((3, 3)))
  if count == 0:
    return low
  strong = np.zeros(count + 1, bool)
  strong[np.unique(labels[low & (magnitude >= CANNY_HIGH)])] = True
  strong[0] = False
  return strong[labels]


def sobel_edges(gray: np.ndarray) -> np.ndarray:
  """[H, W] bool thinned vertical Sobel edges (step 3 of the module docstring)."""
  kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
  # ndimage.correlate with the mirrored kernel is a convolution; "reflect" as scipy's `convolve`
  # default.
  strength = ndimage.convolve(gray, kernel, mode="reflect") ** 2
  strength[strength <= 2.0 * np.sqrt(strength.mean())] = 0.0
  zero_col = np.zeros((gray.shape[0], 1))
  zero_row = np.zeros((1, gray.shape[1]))
  left = np.hstack([zero_col, strength[:, :-1]])
  right = np.hstack([strength[:, 1:], zero_col])
  up = np.vstack([zero_row, strength[:-1]])
  down = np.vstack([strength[1:], zero_row])
  return ((strength > left) & (strength > right)) | ((strength > up) & (strength > down))


def _runs_back(cond: np.ndarray) -> np.ndarray:
  """[H, N] -> [H, N]: how many consecutive True values end at each position (reading leftwards)."""
  idx = np.arange(cond.shape[1])
  last_false = np.maximum.accumulate(np.where(cond, -1, idx), axis=1)
  return idx - last_false


def _runs_forward(cond: np.ndarray) -> np.ndarray:
  """[H, N] -> [H, N]: how many consecutive True values start at each position (reading
  rightwards)."""
  return _runs_back(cond[:, ::-1])[:, ::-1]


def edge_widths(gray: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """[H, W] float64 Marziliano widths at 0/180-degree edge pixels (0 elsewhere); step 4 of the
  docstring."""
  h, w = gray.shape
  out = np.zeros((h, w))
  if w < 3 or h < 3:
    return out
  gy, gx = np.gradient(gray)
  angle = np.where(gx != 0, np.degrees(np.arctan2(gy, gx)), 0.0)
  if not angle.any():
    return out
  quantised = 45.0 * np.round(angle / 45.0)
  diff = np.diff(gray, axis=1)  # [H, W-1]: diff[:, j] = I[:, j+1] - I[:, j].
  inner = np.zeros((h, w), bool)
  inner[1:-1, 1:-1] = True
  for degrees, falling in ((180.0, True), (0.0, False)):
    # A 180-degree edge falls from left to right: walking left the intensity keeps rising, walking
    # right it
    # keeps falling; i.e. the differences on both sides are negative (positive for 0 degrees).
    cond = diff < 0 if falling else diff > 0
    back, forward = _runs_back(cond), _runs_forward(cond)
    sel = inner & edges & (np.abs(quantised) == degrees if degrees else quantised == 0)
    rows, cs = np.nonzero(sel)
    left = np.where(cs - 2 >= 0, back[rows, np.maximum(cs - 2, 0)], 0)
    right = np.where(cs + 1 <= w - 2, forward[rows, np.minimum(cs + 1, w - 2)], 0)
    out[rows, cs] = np.minimum(left, MAX_WALK) + np.minimum(right, MAX_WALK) + 2
  return out


def cpbd(image) -> float:
  """CPBD sharpness in [0, 1] of one [H, W] grey or [H, W, 3] RGB uint8 image (higher is
  sharper)."""
  gray = to_gray(image)
  edge_map = canny(gray)
  widths = edge_widths(gray, sobel_edges(gray))
  rows, cols = gray.shape[0] // BLOCK, gray.shape[1] // BLOCK
  sharp = total = 0
  for i in range(rows):
    for j in range(cols):
      block = (slice(BLOCK * i, BLOCK * (i + 1)), slice(BLOCK * j, BLOCK * (j + 1)))
      if np.count_nonzero(edge_map[block]) <= BLOCK * BLOCK * EDGE_BLOCK_FRACTION:
        continue
      w = widths[block]
      w = w[w != 0]
      if not w.size:
        continue
      contrast = int(gray[block].max() - gray[block].min())
      jnb = WIDTH_JNB_LOW if contrast <= CONTRAST_SPLIT else WIDTH_JNB_HIGH
      p_blur = 1.0 - np.exp(-np.abs(w / jnb) ** BETA)
      sharp += int(np.count_nonzero(np.round(p_blur * 100) <= BLUR_PERCENT))
      total += w.size
  return sharp / total if total else 0.0


def cpbd_frames(frames) -> np.ndarray:
  """[T] float64 CPBD of [T, H, W, 3] uint8 frames."""
  return np.array([cpbd(f) for f in np.asarray(frames)], np.float64)

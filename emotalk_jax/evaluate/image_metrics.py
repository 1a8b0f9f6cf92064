"""Full-reference image metrics: PSNR and SSIM, per frame, on RGB uint8 frames.

Convention (pinned here because papers differ):

* Inputs are [..., H, W, 3] uint8 RGB (0..255), compared as float64; the data range L is 255.
* PSNR = 10 log10(L^2 / MSE), the MSE taken over all pixels and all three channels of one frame.
  Identical frames (MSE 0) get `PSNR_CAP` = 100 dB instead of infinity, so a video's mean stays
  finite and its JSON valid; real differences stay far below it (one grey level of error everywhere
  is 48.1 dB).
* SSIM is Wang et al. (2004) exactly: an 11x11 Gaussian window with sigma 1.5 (normalised to sum 1),
  C1 = (K1 L)^2 and C2 = (K2 L)^2 with K1 = 0.01, K2 = 0.03, local means, variances and covariance
  from that window with no N/(N-1) correction, evaluated only where the window fits inside the image
  ("valid": a 256x256 frame gives a 246x246 SSIM map), computed on R, G and B separately and
  averaged over the map and the three channels. This equals scikit-image's
  `structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255, channel_axis=-1)`.
* A video's score is the mean of its per-frame scores.
"""

import cv2
import numpy as np

DATA_RANGE = 255.0
PSNR_CAP = 100.0  # dB, reported for identical frames.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
  a, b = np.asarray(a), np.asarray(b)
  if a.shape != b.shape or a.ndim < 3 or a.shape[-1] != 3:
    raise ValueError(
        f"expected two [..., H, W, 3] RGB arrays of one shape, got {a.shape} and {b.shape}")
  if a.dtype != np.uint8 or b.dtype != np.uint8:
    raise ValueError(f"expected uint8 frames, got {a.dtype} and {b.dtype}")
  return a, b


def psnr(a, b) -> np.ndarray:
  """Per-frame PSNR in dB of [..., H, W, 3] uint8 frames; returns [...] float64 (`PSNR_CAP` where
  equal)."""
  a, b = _pair(a, b)
  diff = a.astype(np.float64) - b.astype(np.float64)
  mse = np.mean(diff * diff, axis=(-3, -2, -1))
  with np.errstate(divide="ignore"):
    value = 10.0 * np.log10(DATA_RANGE ** 2 / mse)
  return np.minimum(value, PSNR_CAP)


def _window() -> np.ndarray:
  # The same 1-D taps as MATLAB's fspecial('gaussian', 11, 1.5), factored: the 2-D window is its
  # outer product.
  x = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2
  g = np.exp(-(x * x) / (2 * SSIM_SIGMA ** 2))
  return g / g.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
  """Separable filter of [H, W, C] float64, keeping only positions where the window fits."""
  out = cv2.sepFilter2D(image, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_REFLECT_101)
  r = (len(taps) - 1) // 2
  return out[r:-r, r:-r]


def ssim_frame(a, b) -> float:
  """SSIM of two [H, W, 3] uint8 frames (see the module docstring for the exact convention)."""
  a, b = _pair(a, b)
  if a.ndim != 3:
    raise ValueError(f"expected one [H, W, 3] frame, got {a.shape}")
  if min(a.shape[:2]) < SSIM_WINDOW:
    raise ValueError(
        f"frames must be at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels for SSIM, got {a.shape}")
  x, y = a.astype(np.float64), b.astype(np.float64)
  taps = _window()
  mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
  var_x = _filter_valid(x * x, taps) - mu_x * mu_x
  var_y = _filter_valid(y * y, taps) - mu_y * mu_y
  cov = _filter_valid(x * y, taps) - mu_x * mu_y
  c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) *
                                                          (var_x + var_y + c2))
  return float(ssim_map.mean())


def ssim(a, b) -> np.ndarray:
  """Per-frame SSIM of [..., H, W, 3] uint8 frames; returns [...] float64."""
  a, b = _pair(a, b)
  lead = a.shape[:-3]
  flat_a, flat_b = a.reshape((-1,) + a.shape[-3:]), b.reshape((-1,) + b.shape[-3:])
  return np.array([ssim_frame(x, y) for x, y in zip(flat_a, flat_b)], np.float64).reshape(lead)


def image_scores(generated_uint8, target_uint8) -> dict:
  """Per-frame {'psnr', 'ssim', 'l1'} ([N] each; `psnr` and `ssim`, l1 on [0, 1])."""
  l1 = np.abs(generated_uint8.astype(np.float32) -
              target_uint8.astype(np.float32)).mean(axis=(1, 2, 3)) / 255.0
  return {"psnr": psnr(generated_uint8, target_uint8),
          "ssim": ssim(generated_uint8, target_uint8), "l1": l1}

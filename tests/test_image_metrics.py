"""PSNR and SSIM: the pinned conventions, against scikit-image where it is installed."""

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.evaluate import image_metrics
from emotalk_jax.media import video_io


@pytest.fixture(scope="module")
def photo():
  return video_io.read_image(bundled.ASTRONAUT_PHOTO)[:256, 128:384]


def test_identical_frames_are_capped_and_ssim_one(photo):
  frames = np.stack([photo, photo[::-1]])
  np.testing.assert_array_equal(image_metrics.psnr(frames, frames), [image_metrics.PSNR_CAP] * 2)
  np.testing.assert_array_equal(image_metrics.ssim(frames, frames), [1.0, 1.0])


def test_psnr_formula_on_a_constant_error(photo):
  shifted = np.clip(photo.astype(int) + 4, 0, 255).astype(np.uint8)
  mse = np.mean((shifted.astype(float) - photo) ** 2)
  assert image_metrics.psnr(shifted, photo) == pytest.approx(10 * np.log10(255 ** 2 / mse))
  one_level = np.where(photo < 255, photo + 1, photo - 1).astype(np.uint8)
  assert image_metrics.psnr(one_level, photo) == pytest.approx(48.13, abs=0.01)


def test_more_damage_scores_worse(photo):
  noise = np.random.default_rng(0).normal(0, 1, photo.shape)
  scores = []
  for sigma in (2, 8, 32):
    noisy = np.clip(photo + sigma * noise, 0, 255).astype(np.uint8)
    scores.append((image_metrics.psnr(noisy, photo), image_metrics.ssim_frame(noisy, photo)))
  blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
  psnr, ssim = zip(*scores)
  assert psnr[0] > psnr[1] > psnr[2] and ssim[0] > ssim[1] > ssim[2]
  assert image_metrics.ssim_frame(blurred, photo) < 0.95


def test_matches_scikit_image(photo):
  metrics = pytest.importorskip("skimage.metrics",
                                reason="scikit-image (test extra) is the SSIM reference")
  other = np.clip(photo + np.random.default_rng(1).normal(0, 12, photo.shape), 0,
                  255).astype(np.uint8)
  expected = metrics.structural_similarity(photo,
                                           other,
                                           gaussian_weights=True,
                                           sigma=1.5,
                                           use_sample_covariance=False,
                                           data_range=255,
                                           channel_axis=-1)
  assert image_metrics.ssim_frame(photo, other) == pytest.approx(expected, abs=1e-9)
  assert image_metrics.psnr(photo, other) == pytest.approx(
      metrics.peak_signal_noise_ratio(photo, other, data_range=255))


def test_bad_shapes_are_rejected(photo):
  with pytest.raises(ValueError, match="one shape"):
    image_metrics.psnr(photo, photo[:128])
  with pytest.raises(ValueError, match="uint8"):
    image_metrics.ssim(photo.astype(np.float32), photo.astype(np.float32))
  with pytest.raises(ValueError, match="at least 11x11"):
    image_metrics.ssim_frame(photo[:8, :8], photo[:8, :8])

"""CPBD: agreement with the `cpbd` package's algorithm on real frames, and blur series."""

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.evaluate import cpbd
from emotalk_jax.media import video_io

# Real frames of three sizes and sources (256 MEAD crops, 512 HDTF, 224 VoxCeleb2).
REAL_CLIPS = ("video/mead_dreamtalk/M030_front_angry_level3_001.mp4",
              "video/mead_dreamtalk/W009_front_happy_level3_001.mp4",
              "video/hdtf_sadtalker/WDA_AlexandriaOcasioCortez_000.mp4",
              "video/voxceleb2_pcavs/Audio_Source_00015.mp4")


@pytest.fixture(scope="module")
def real_frames(shared_data):
  return [
      cv2.cvtColor(
          video_io.read_video(shared_data / c, max_frames=1, with_audio=False).frames[0],
          cv2.COLOR_RGB2GRAY) for c in REAL_CLIPS
  ]


@pytest.fixture(scope="module")
def reference_compute():
  """`cpbd.compute` from the PyPI package (1.0.7), whose import of scipy.ndimage.imread (removed in
  SciPy
  1.2; only its command-line entry uses it) is shimmed for the import."""
  pytest.importorskip("skimage", reason="the cpbd package needs scikit-image (test extra)")
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  shimmed = not hasattr(ndimage, "imread")
  if shimmed:
    ndimage.imread = None
  try:
    package = pytest.importorskip("cpbd", reason="the cpbd package (test extra) is the reference")
  finally:
    if shimmed:
      del ndimage.imread
  if package.__file__ and cpbd.__file__ == package.__file__:
    pytest.skip("`cpbd` resolves to our module")
  return package.compute


def test_agrees_with_the_cpbd_package_on_real_frames(real_frames, reference_compute):
  diffs = []
  for gray in real_frames:
    for sigma in (0.0, 1.0):  # Sharp and slightly blurred.
      image = cv2.GaussianBlur(gray, (0, 0), sigma) if sigma else gray
      ours, theirs = cpbd.cpbd(image), float(reference_compute(image))
      diffs.append(abs(ours - theirs))
      assert ours == pytest.approx(theirs, abs=2e-3), (gray.shape, sigma)
  print(f"CPBD vs the cpbd package on {len(diffs)} real frames: max |difference| {max(diffs):.2e}")


def test_our_canny_matches_scikit_image(real_frames):
  feature = pytest.importorskip("skimage.feature",
                                reason="scikit-image (test extra) is the Canny reference")
  for gray in real_frames:
    ours = cpbd.canny(gray.astype(np.float64))
    theirs = feature.canny(gray.astype(np.float64))
    assert np.mean(ours == theirs) > 0.999


def _blur_series(gray):
  return [cpbd.cpbd(cv2.GaussianBlur(gray, (0, 0), s) if s else gray) for s in (0, 0.7, 1.4, 2.8)]


def test_sharper_scores_higher_on_real_frames(real_frames):
  for gray in real_frames:
    scores = _blur_series(gray)
    assert all(a > b for a, b in zip(scores, scores[1:])), scores


def test_sharper_scores_higher_on_the_bundled_photo():
  photo = video_io.read_image(bundled.ASTRONAUT_PHOTO)
  scores = _blur_series(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
  assert all(a > b for a, b in zip(scores, scores[1:])), scores
  assert 0.0 <= scores[-1] < scores[0] <= 1.0
  # RGB input is converted to grey (BT.601) first.
  assert cpbd.cpbd(photo) == scores[0]


def test_flat_or_tiny_images_have_no_edges():
  assert cpbd.cpbd(np.full((128, 128), 100, np.uint8)) == 0.0
  # No full block.
  assert cpbd.cpbd(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)) == 0.0
  frames = np.zeros((2, 64, 64, 3), np.uint8)
  np.testing.assert_array_equal(cpbd.cpbd_frames(frames), [0.0, 0.0])


def test_edge_width_of_a_ramp():
  # A horizontal ramp 6 px wide between two flat levels: its edge pixels' Marziliano width spans the
  # ramp
  # plus one step either side. A slight vertical slope keeps the gradient angles from being all
  # exactly 0
  # (the reference measures nothing then).
  row = np.concatenate([np.full(20, 50.0), np.linspace(50, 200, 8)[1:-1], np.full(20, 200.0)])
  gray = np.tile(row, (9, 1)) + 0.5 * np.arange(9)[:, None]
  widths = cpbd.edge_widths(gray, cpbd.sobel_edges(gray))
  measured = widths[4][widths[4] > 0]
  assert measured.size >= 1 and np.all(measured == 7)

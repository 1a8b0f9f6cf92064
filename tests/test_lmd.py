"""evaluate/lmd.py: the landmark metrics M-LMD and F-LMD."""

import numpy as np
import pytest

from emotalk_jax.evaluate import lmd
from emotalk_jax.models import face_graph

MOUTH = face_graph.MOUTH


def _face(batch=2, frames=4, seed=0):
  rng = np.random.default_rng(seed)
  return (face_graph.schematic_face() + rng.normal(0, 0.02,
                                                   (batch, frames, 68, 2))).astype(np.float32)


def test_lmd_identical_and_translated_are_zero():
  target = _face()
  assert lmd.f_lmd(target, target) == 0.0
  shift = np.random.default_rng(3).normal(0, 0.2, (2, 4, 1, 2)).astype(np.float32)  # Per frame.
  np.testing.assert_allclose(lmd.f_lmd(target + shift, target), 0.0, atol=1e-4)
  np.testing.assert_allclose(lmd.m_lmd(target + shift, target), 0.0, atol=1e-4)


@pytest.mark.parametrize("size", [256, 128])
def test_lmd_one_pixel_mouth_shift(size):
  target = _face()
  pred = target.copy()
  pred[..., MOUTH, 0] += 2.0 / size  # One pixel right in a `size` crop.
  # Centring on all 68 points moves the centre by 20/68 px: the mouth is then off by 48/68 px,
  # the other 48 points by 20/68 px.
  np.testing.assert_allclose(lmd.m_lmd(pred, target, size), 48 / 68, rtol=1e-4)
  np.testing.assert_allclose(lmd.f_lmd(pred, target, size), 2 * 20 * 48 / 68**2, rtol=1e-4)
  np.testing.assert_allclose(lmd.lmd(pred, target, points=[0, 1], size=size), 20 / 68, rtol=1e-4)

"""Tests for the frame of an eye or the mouth (generate/feature_frame.py)."""

import numpy as np

from emotalk_jax.generate import feature_frame


def test_local_and_point_invert_each_other_and_run_between_the_corners():
  start, end = np.array([10.0, 20.0]), np.array([40.0, 24.0])
  width = float(np.linalg.norm(end - start))
  frame = feature_frame.FeatureFrame(start, (end - start) / width, width)
  np.testing.assert_allclose(frame.point(np.array([0.0, 1.0]), np.zeros(2)), [start, end])
  xy = np.random.default_rng(0).uniform(0, 50, (7, 2))
  s, t = frame.local(xy)
  np.testing.assert_allclose(frame.point(s, t), xy, atol=1e-9)
  # t grows down the face: a point below the middle of a level frame has t > 0.
  assert frame.local(start + [15.0, 10.0])[1] > 0


def test_box_holds_the_frame_between_top_and_bottom():
  frame = feature_frame.FeatureFrame(np.array([10.0, 20.0]), np.array([0.6, 0.8]), 10.0)
  x0, y0, x1, y1 = frame.box(-3.0, 5.0)
  s, t = np.meshgrid(np.linspace(0, 1, 5), np.linspace(-3, 5, 5))
  points = frame.point(s, t).reshape(-1, 2)
  assert (points[:, 0] >= x0).all() and (points[:, 0] <= x1).all()
  assert (points[:, 1] >= y0).all() and (points[:, 1] <= y1).all()
  assert x1 - x0 < 18 and y1 - y0 < 17  # The frame's own extent, rounded out by a pixel.

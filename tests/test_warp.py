"""Bilinear warping: identity, known shifts, borders, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emotalk_jax.models import warp


def _image(b=2, h=12, w=16, c=3, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(b, h, w, c)), jnp.float32)


@pytest.mark.parametrize("padding", warp.PADDINGS)
def test_zero_flow_returns_the_input_exactly(padding):
  image = _image()
  out = warp.warp(image, jnp.zeros(image.shape[:3] + (2,)), padding)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(image))


@pytest.mark.parametrize("dx,dy", [(3, 0), (0, -2), (2, 5), (-4, -1)])
def test_integer_shift_matches_np_roll_away_from_borders(dx, dy):
  image = _image(h=20, w=24)
  flow = warp.pixels_to_flow(jnp.broadcast_to(jnp.asarray([dx, dy], jnp.float32), (2, 20, 24, 2)),
                             20, 24)
  out = np.asarray(warp.warp(image, flow))
  # out[y, x] = image[y + dy, x + dx]  <=>  np.roll by (-dy, -dx).
  expected = np.roll(np.asarray(image), (-dy, -dx), axis=(1, 2))
  m = 6
  np.testing.assert_allclose(out[:, m:-m, m:-m], expected[:, m:-m, m:-m], atol=1e-5)


def test_half_pixel_shift_averages_neighbours_and_borders():
  image = _image(b=1, h=4, w=6, c=1)
  flow = warp.pixels_to_flow(jnp.broadcast_to(jnp.asarray([0.5, 0.0]), (1, 4, 6, 2)), 4, 6)
  zeros = np.asarray(warp.warp(image, flow, "zeros"))[0, ..., 0]
  border = np.asarray(warp.warp(image, flow, "border"))[0, ..., 0]
  img = np.asarray(image)[0, ..., 0]
  np.testing.assert_allclose(zeros[:, :-1], 0.5 * (img[:, :-1] + img[:, 1:]), atol=1e-6)
  # The outside tap counts as 0.
  np.testing.assert_allclose(zeros[:, -1], 0.5 * img[:, -1], atol=1e-6)
  np.testing.assert_allclose(border[:, -1], img[:, -1], atol=1e-6)  # Clamped to the edge pixel.
  # Entirely outside: all zero, no NaN.
  far = warp.warp(image, jnp.full((1, 4, 6, 2), 5.0), "zeros")
  np.testing.assert_array_equal(np.asarray(far), 0.0)


def test_flow_of_another_resolution_is_resized():
  image = _image(h=16, w=16)
  flow = warp.pixels_to_flow(jnp.full((2, 4, 4, 2), 2.0), 16, 16)
  out = np.asarray(warp.warp(image, flow))
  np.testing.assert_allclose(out[:, 4:-4, 4:-4], np.asarray(image)[:, 6:-2, 6:-2], atol=1e-5)


def test_gradients_flow_to_image_and_flow():
  image = _image(b=1, h=8, w=8, c=2)
  flow = jnp.full((1, 8, 8, 2), 0.13)

  @jax.jit  # One compile for the three evaluations below, instead of one per op.
  def loss(img, fl):
    return jnp.sum(jnp.square(warp.warp(img, fl)))

  g_img, g_flow = jax.jit(jax.grad(loss, argnums=(0, 1)))(image, flow)
  assert np.all(np.isfinite(g_img)) and np.all(np.isfinite(g_flow))
  assert np.abs(np.asarray(g_img)).sum() > 0 and np.abs(np.asarray(g_flow)).sum() > 0
  # Matches central finite differences in the flow.
  direction = jnp.asarray(np.random.default_rng(1).normal(size=flow.shape), jnp.float32)
  eps = 1e-3
  numeric = (loss(image, flow + eps * direction) - loss(image, flow - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(float(jnp.sum(g_flow * direction)), float(numeric), rtol=2e-2)


def test_tps_flow_carries_target_points_onto_source_points():
  rng = np.random.default_rng(0)
  source = jnp.asarray(rng.uniform(-0.6, 0.6, (2, 20, 2)), jnp.float32)
  target = source + jnp.asarray([0.05, -0.03
                                ]) + 0.01 * jnp.asarray(rng.normal(size=(2, 20, 2)), jnp.float32)
  tps_flow = jax.jit(warp.tps_flow, static_argnums=2)  # One compile per size, not one per op.
  flow = tps_flow(source, target, 64)
  px = ((np.asarray(target) + 1) * 64 - 1) / 2
  at_target = warp.sample_pixels(flow, jnp.asarray(px[..., 0]), jnp.asarray(px[..., 1]), "border")
  # Smoothing spline.
  np.testing.assert_allclose(np.asarray(target + at_target), np.asarray(source), atol=1e-2)
  corners = np.asarray(flow)[:, [0, 0, -1, -1], [0, -1, 0, -1]]
  assert np.abs(corners).max() < 0.02  # The border anchors stay (nearly) in place.
  same = tps_flow(source, source, 32)  # No motion: zero flow.
  np.testing.assert_allclose(same, 0.0, atol=1e-4)

"""Stage-2 losses: values on hand-made inputs and their signs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emotalk_jax.models import texture_losses as tl


def _outputs(values):
  """Discriminator-like outputs: one scale per value, features = [logits * 2]."""
  return [([jnp.full((2, 4, 4, 3), 2.0 * v)], jnp.full((2, 4, 4, 1), v)) for v in values]


def test_hinge_and_lsgan_values():
  real, fake = _outputs([2.0, 0.5]), _outputs([-2.0, 0.0])
  # hinge: scale 0: relu(1-2)+relu(1-2) = 0; scale 1: relu(0.5)+relu(1) = 1.5 -> mean 0.75.
  assert float(tl.discriminator_loss(real, fake, "hinge")) == pytest.approx(0.75)
  # lsgan: scale 0: 1 + 4 = 5; scale 1: 0.25 + 0 -> mean 2.625.
  assert float(tl.discriminator_loss(real, fake, "lsgan")) == pytest.approx(2.625)
  assert float(tl.generator_adversarial_loss(fake, "hinge")) == pytest.approx(1.0)
  assert float(tl.generator_adversarial_loss(fake, "lsgan")) == pytest.approx((9.0 + 1.0) / 2)
  with pytest.raises(ValueError, match="gan_loss"):
    tl.discriminator_loss(real, fake, "wgan")


def test_feature_matching_is_l1_of_features_and_stops_the_real_gradient():
  real, fake = _outputs([1.0, 1.0]), _outputs([0.0, 0.5])
  assert float(tl.feature_matching_loss(real, fake)) == pytest.approx((2.0 + 1.0) / 2)
  assert float(tl.feature_matching_loss(real, real)) == 0.0
  g = jax.grad(lambda r: tl.feature_matching_loss([([r], r)], [([jnp.zeros_like(r)], r)]))(jnp.ones(
      (1, 2, 2, 1)))
  np.testing.assert_array_equal(g, 0.0)


def test_flow_smoothness_in_pixels_and_edge_aware():
  flow = jnp.zeros((1, 8, 8, 2))
  assert float(tl.flow_smoothness(flow)) == 0.0
  assert float(tl.flow_smoothness(flow + 0.3)) == 0.0  # Constant motion is free.
  # 1 px per px in x.
  ramp = jnp.broadcast_to((jnp.arange(8.0) * 0.25)[None, None, :, None], (1, 8, 8, 2))
  # dx: |d flow_x| = |d flow_y| = 1 px (x); dy: 0 -> 0.5 * (1 + 0).
  assert float(tl.flow_smoothness(ramp)) == pytest.approx(0.5)
  edges = jnp.broadcast_to((jnp.arange(8.0) % 2)[None, None, :, None], (1, 8, 8, 3))
  # Image edges everywhere along x: motion may change.
  assert float(tl.flow_smoothness(ramp, edges)) < 0.01


def test_landmark_l1_weights_the_pixels_at_the_landmarks():
  size = 32
  target = jnp.zeros((1, size, size, 3))
  landmarks = jnp.full((1, 68, 2), -0.5 + 1.0 / size)  # All 68 on pixel (8, 8)'s centre.
  # A uniform error is the plain L1 whatever the weights (to float32's rounding of the weighted sum).
  assert float(tl.landmark_l1(target + 0.5, target, landmarks)) == pytest.approx(0.5, rel=1e-5)
  at_landmark = target.at[0, 8, 8].set(1.0)
  far_away = target.at[0, 28, 28].set(1.0)
  assert float(tl.landmark_l1(far_away, target, landmarks)) < 1e-12
  # The landmark's pixel has weight 1 of a total of about 2 pi sigma^2 = 56.5 (sigma 3 px).
  assert float(tl.landmark_l1(at_landmark, target, landmarks)) == pytest.approx(1.0 / 56.5,
                                                                                rel=0.02)
  assert float(tl.l1(at_landmark, target)) == float(tl.l1(far_away, target))


def test_mouth_l1_reads_only_the_box_around_the_mouth():
  size = 32
  landmarks = np.zeros((1, 68, 2), np.float32)
  # The mouth spans x 8..16 px and y 12..14 px: 8 px wide, so the box grows by 1.6 px each side.
  landmarks[0, 48:68, 0] = np.linspace(8, 16, 20) / (size / 2) - 1
  landmarks[0, 48:68, 1] = np.linspace(12, 14, 20) / (size / 2) - 1
  box = tl.mouth_box(landmarks, size)
  np.testing.assert_allclose(box, [[6.4, 10.4, 17.6, 15.6]], atol=1e-5)
  target = jnp.zeros((1, size, size, 3))
  # A uniform error is the plain L1 whatever the box.
  assert float(tl.mouth_l1(target + 0.5, target, landmarks)) == pytest.approx(0.5)
  # Pixel (row 13, col 12) is inside: 1 of the 12 x 6 pixels whose centres are in the box.
  inside, outside = target.at[0, 13, 12].set(1.0), target.at[0, 2, 2].set(1.0)
  assert float(tl.mouth_l1(inside, target, landmarks)) == pytest.approx(1.0 / 72)
  assert float(tl.mouth_l1(outside, target, landmarks)) == 0.0

"""TextureNet and the discriminator: shapes at 128 and 256, the identity start, bf16, gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emotalk_jax.models import texture_model as tm
from emotalk_jax.models import warp


@pytest.mark.parametrize("size", [128, 256])
def test_generator_and_discriminator_shapes(size):
  model, disc = tm.TextureNet(width=16), tm.Discriminator(width=32, num_scales=2)
  inputs = tm.dummy_inputs(3, size)
  out, _ = jax.eval_shape(lambda: model.init_with_output(jax.random.PRNGKey(0), *inputs))
  assert out["image"].shape == (3, size, size, 3)
  assert out["flow"].shape == (3, size, size, 2) and out["occlusion"].shape == (3, size, size, 1)
  assert [f.shape[1] for f in out["flows"]] == [size // 8, size // 4, size // 2]
  d_out, _ = jax.eval_shape(
      lambda: disc.init_with_output(jax.random.PRNGKey(0), inputs[0], inputs[2]))
  assert [logits.shape for _, logits in d_out] == [(3, size // 8, size // 8, 1),
                                                   (3, size // 16, size // 16, 1)]
  assert all(len(feats) == 4 for feats, _ in d_out)


@pytest.mark.parametrize("in_channels,features,stride", [(19, 8, 1), (15, 16, 2), (8, 3, 1),
                                                          (16, 16, 2)])
def test_channel_padded_conv_is_nn_conv(in_channels, features, stride):
  # The odd channel counts of TextureNet (19 and 15 in, 3 out), each padded to a multiple of 8
  # inside `Conv`: the same params as nn.Conv's (names, shapes, initial values) and its result.
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, in_channels)), jnp.float32)
  ours = tm.Conv(features, stride=stride)
  theirs = nn.Conv(features, (3, 3), (stride, stride))
  params = ours.init(jax.random.PRNGKey(1), x)
  reference = theirs.init(jax.random.PRNGKey(1), x)
  assert jax.tree.structure(params) == jax.tree.structure(reference)
  jax.tree.map(np.testing.assert_array_equal, params, reference)
  params = {"params": {"kernel": params["params"]["kernel"],
                       "bias": jnp.linspace(-1, 1, features)}}
  got, want = ours.apply(params, x), theirs.apply(params, x)
  assert got.shape == want.shape == (2, 16 // stride, 16 // stride, features)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _inputs(b=2, size=32, seed=0):
  rng = np.random.default_rng(seed)
  image = jnp.asarray(rng.uniform(-1, 1, (b, size, size, 3)), jnp.float32)
  neutral = jnp.asarray(rng.uniform(-0.6, 0.6, (b, 68, 2)), jnp.float32)
  target = neutral + jnp.asarray(rng.normal(0, 0.03, (b, 68, 2)), jnp.float32)
  emotion = jnp.zeros((b, 9)).at[:, 4].set(1.0).at[:, 8].set(1.0)
  return image, neutral, target, emotion


# The generator of configs/texture_test.py (width 4, emotion_dim 8): what these tests check does not
# depend on its width, and other modules (generation's tiny checkpoints) initialise this very
# network at 32x32, so the session's compilation cache compiles its slow init only once.
TINY = dict(width=4, emotion_dim=8)


@pytest.fixture(scope="module")
def params():
  """Tiny generator params (initialised once: init compiles slowly on a small CPU)."""
  return tm.init_params(tm.TextureNet(**TINY), jax.random.PRNGKey(0), 32)


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_untrained_net_without_prior_returns_the_neutral_image_and_params_are_size_free():
  model = tm.TextureNet(width=8, tps_prior=False)
  params = tm.init_params(model, jax.random.PRNGKey(0), 32)
  inputs = _inputs()
  out = jax.jit(model.apply)({"params": params}, *inputs)
  np.testing.assert_array_equal(out["flow"], 0.0)  # Zero-initialised flow heads.
  np.testing.assert_array_equal(out["warped"], inputs[0])
  assert float(out["occlusion"].min()) > 0.9
  # The decoder's residual head starts at zero: its frame is the warped image, whatever the
  # occlusion.
  np.testing.assert_allclose(out["rgb"], inputs[0], atol=1e-6)
  np.testing.assert_allclose(out["image"], inputs[0], atol=1e-6)
  # The same params at another size.
  out64 = jax.eval_shape(  # pylint: disable=not-callable
      model.apply, {"params": params}, *_inputs(size=64))
  assert out64["image"].shape == (2, 64, 64, 3)


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_bfloat16_compute_keeps_float32_params_and_outputs(params):
  model = tm.TextureNet(**TINY, dtype=jnp.bfloat16)
  assert jax.tree.structure(jax.eval_shape(
      lambda: tm.init_params(model, jax.random.PRNGKey(0), 32))) == jax.tree.structure(params)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  out = jax.jit(model.apply)({"params": params}, *_inputs())
  assert out["image"].dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out["image"])))
  ref = jax.jit(tm.TextureNet(**TINY).apply)({"params": params}, *_inputs())
  assert float(jnp.mean(jnp.abs(out["image"] - ref["image"]))) < 0.05


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_gradients_reach_every_branch(params):
  # texture_test's discriminator too: the texture trainer's tests initialise it at 32x32 as well.
  model, disc = tm.TextureNet(**TINY), tm.Discriminator(width=4, num_scales=2, num_layers=2)
  inputs = _inputs()
  d_params = tm.init_params(disc, jax.random.PRNGKey(1), 32)
  target = jnp.roll(inputs[0], 2, axis=2)
  # FiLM and the decoder's residual head start at zero, which blocks the gradient of everything
  # behind them
  # (emotion encoder; texture branch and decoder); move them off zero.
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: p + 0.01
      if any(k in jax.tree_util.keystr(path) for k in ("film", "to_residual")) else p, params)

  def loss(p):
    out = model.apply({"params": p}, *inputs)
    logits = disc.apply({"params": d_params}, out["image"], inputs[2])
    return jnp.mean(jnp.abs(out["image"] - target)) - sum(jnp.mean(l) for _, l in logits)

  grads = jax.jit(jax.grad(loss))(params)
  for branch in ("motion", "appearance", "texture", "emotion", "decoder"):
    norm = sum(float(jnp.sum(jnp.abs(g))) for g in jax.tree.leaves(grads[branch]))
    assert norm > 0, branch


def test_one_face_for_a_batch_of_targets_equals_the_face_repeated(params):
  """Generation passes one neutral image and landmarks for a batch of targets; the network then
  computes their part once, with the result of repeating them per target."""
  model = tm.TextureNet(**TINY)
  image, neutral, target, emotion = _inputs(b=3)
  apply = jax.jit(model.apply)
  one = apply({"params": params}, image[:1], neutral[:1], target, emotion)
  repeated = apply({"params": params}, jnp.repeat(image[:1], 3, 0), jnp.repeat(neutral[:1], 3, 0),
                   target, emotion)
  for key in ("image", "flow", "occlusion", "rgb"):
    np.testing.assert_allclose(one[key], repeated[key], atol=1e-5)


def test_input_shape_errors():
  model = tm.TextureNet(width=8)
  image, neutral, target, emotion = _inputs()
  with pytest.raises(ValueError, match="3 neutral images for 2 targets"):
    model.init(jax.random.PRNGKey(0), jnp.concatenate([image, image[:1]]), neutral, target,
               emotion)
  with pytest.raises(ValueError, match="divisible by 16"):
    model.init(jax.random.PRNGKey(0), image[:, :30, :30], neutral, target, emotion)
  with pytest.raises(ValueError, match=r"target_landmarks must be \[2, 68, 2\]"):
    model.init(jax.random.PRNGKey(0), image, neutral, target[:, :60], emotion)


def test_untrained_net_with_tps_prior_starts_at_the_tps_warp(params):
  model = tm.TextureNet(**TINY)
  image, neutral, target, emotion = _inputs()
  out = jax.jit(model.apply)({"params": params}, image, neutral, target, emotion)

  @jax.jit  # The spline and its warp: one compile, not one per op.
  def spline_and_warp(img, n, t):
    flow = warp.tps_flow(n, t, 32)
    return flow, warp.warp(img, flow, padding="border")

  # The output flow is the spline at S (plus the S/2 level's residual, zero at the start).
  prior, prior_warped = spline_and_warp(image, neutral, target)
  np.testing.assert_allclose(out["flow"], prior, atol=1e-5)
  np.testing.assert_allclose(out["warped"], prior_warped, atol=1e-5)
  np.testing.assert_allclose(out["image"], out["warped"], atol=1e-6)  # Exactly the TPS baseline.
  assert float(jnp.abs(out["flow"]).max()) > 0.01  # The landmarks moved, so does the prior.
  # What the network adds to the spline starts at zero, at every scale.
  assert [r.shape for r in out["residual_flows"]] == [f.shape for f in out["flows"]]
  assert all(float(jnp.abs(r).max()) == 0.0 for r in out["residual_flows"])


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_flow_losses_see_only_what_the_net_adds_to_the_spline(params):
  """An untrained TPS net adds nothing to the spline, so the smoothness and residual terms are zero,
  though the spline itself bends (smoothing it would pull features off their landmarks); a flow
  residual of a
  known length is measured in pixels."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from emotalk_jax.models import texture_losses  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import texture as train_texture  # pylint: disable=g-import-not-at-top
  model = tm.TextureNet(**TINY)
  image, neutral, target, emotion = _inputs()
  out = jax.jit(model.apply)({"params": params}, image, neutral, target, emotion)
  config = ml_collections.ConfigDict(dict(vgg_layers=(), vgg_layer_weights=()))
  pairs = {"neutral": image, "target": image}
  terms = train_texture.generator_reconstruction_losses(out, pairs, config, None)
  assert float(terms["flow_smoothness"]) == 0.0 and float(terms["flow_residual"]) < 1e-5
  # occlusion_bias 3.
  assert float(terms["occlusion"]) == pytest.approx(1.0 - float(jax.nn.sigmoid(3.0)), abs=1e-4)
  assert float(texture_losses.flow_smoothness(out["flows"][-1])) > 1e-3
  # A residual of (3, 4) px at every scale: each scale's pixels are 2 / its size in normalised
  # units.
  shifted = dict(out,
                 residual_flows=[
                     jnp.broadcast_to(jnp.asarray([3.0, 4.0]) * 2 / r.shape[1], r.shape)
                     for r in out["residual_flows"]
                 ])
  terms = train_texture.generator_reconstruction_losses(shifted, pairs, config, None)
  assert float(terms["flow_residual"]) == pytest.approx(5.0, rel=1e-5)
  # Finite gradients at the start, where every residual is exactly zero.
  grads = jax.grad(lambda o: train_texture.generator_reconstruction_losses(
      o, pairs, config, None)["flow_residual"])(out)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))

"""Tests for the stage-1 landmark GCN: graph conv, shapes, identity geometry and surgery."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import landmark_test
from emotalk_jax import emotions
from emotalk_jax.media import audio
from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_losses
from emotalk_jax.models import landmark_model as lm

MODULES = {"audio_encoder", "emotion_encoder", "graph_encoder", "temporal", "graph_decoder",
           "emotion_head", "motion_readout"}


def _inputs(batch, frames, seed=0, per_frame_emotion=False):
  rng = np.random.default_rng(seed)
  mel = rng.normal(-4.0, 3.0, (batch, frames, lm.MEL_WINDOW, lm.N_MELS)).astype(np.float32)
  weights = rng.dirichlet(np.ones(emotions.NUM_EMOTIONS),
                          (batch, frames) if per_frame_emotion else batch)
  intensity = rng.uniform(0.3, 1.0, weights.shape[:-1] + (1,))
  emotion = np.concatenate([weights, intensity], axis=-1).astype(np.float32)
  neutral = face_graph.schematic_face() + rng.normal(0, 0.03, (batch, 68, 2)).astype(np.float32)
  return jnp.asarray(mel), jnp.asarray(emotion), jnp.asarray(neutral)


@pytest.fixture(scope="module")
def model():
  return lm.LandmarkNet()


@pytest.fixture(scope="module")
def params(model):
  return lm.init_params(model, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def apply(model):
  return jax.jit(lambda p, mel, emo, neutral: model.apply(
      {"params": p}, mel, emo, neutral, mutable=["intermediates"]))


def test_constants_match_the_data_modules():
  assert (lm.MEL_WINDOW, lm.N_MELS) == (audio.MEL_WINDOW, audio.N_MELS)
  assert lm.EMOTION_VECTOR_SIZE == emotions.NUM_EMOTIONS + 1


def test_graph_conv_equals_dense_normalized_adjacency():
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(2, 3, 68, 5)), jnp.float32)  # [B, T, 68, F]
  conv = lm.GraphConv(7)
  variables = conv.init(jax.random.PRNGKey(1), face_graph.batched_graph(h))
  variables = jax.tree_util.tree_map(lambda x: x + 0.5, variables)  # a non-zero bias
  got = face_graph.unbatch_nodes(conv.apply(variables, face_graph.batched_graph(h)), (2, 3))
  a_norm = face_graph.normalized_adjacency()
  kernel = variables["params"]["dense"]["kernel"]
  want = jnp.einsum("ij,btjf->btif", a_norm, h @ kernel) + variables["params"]["bias"]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_param_names(params):
  assert set(params) == MODULES | {"mean_displacement"}
  assert "kernel" in params["graph_decoder"]["out"]
  assert set(params["graph_encoder"]) >= {"conv_0", "conv_1", "conv_2"}


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_mean_displacement_param_shifts_every_frame(model, params):
  inputs = lm.dummy_inputs(2, 3)
  shift = np.random.default_rng(0).normal(0, 0.01, (68, 2)).astype(np.float32)
  base = model.apply({"params": params}, *inputs)["landmarks"]
  moved = model.apply({"params": dict(params, mean_displacement=jnp.asarray(shift))},
                      *inputs)["landmarks"]
  np.testing.assert_allclose(moved - base, np.broadcast_to(shift, base.shape), atol=1e-6)


def test_dropout_only_in_training(params):
  model = lm.LandmarkNet(dropout_rate=0.5)
  inputs = lm.dummy_inputs(2, 3)
  # Jitted: eager applies dispatch (and compile) every op one by one, several seconds each.
  train = jax.jit(lambda key: model.apply({"params": params}, *inputs, train=True,
                                          rngs={"dropout": key})["landmarks"])
  a, b = train(jax.random.PRNGKey(1)), train(jax.random.PRNGKey(2))
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(
      jax.jit(lambda: model.apply({"params": params}, *inputs)["landmarks"])(),
      jax.jit(lambda: lm.LandmarkNet().apply({"params": params}, *inputs)["landmarks"])())


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = lm.LandmarkNet(dtype=jnp.bfloat16)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), *lm.dummy_inputs())
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(variables))
  out = jax.eval_shape(model.apply, variables, *lm.dummy_inputs(2, 3))
  assert all(v.dtype == jnp.float32 for v in out.values())


def test_no_emotion_head():
  model = lm.LandmarkNet(emotion_head=False)
  # Shapes only (no compilation): enough to check names and outputs.
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), *lm.dummy_inputs())
  assert set(variables["params"]) == MODULES - {"emotion_head"} | {"mean_displacement"}
  out = jax.eval_shape(model.apply, variables, *lm.dummy_inputs(2, 3))
  assert set(out) == {"landmarks", "displacement"}


@pytest.mark.parametrize("batch,frames,per_frame", [(1, 1, False), (3, 2, False), (2, 5, True)])
def test_shapes_and_residual(params, apply, batch, frames, per_frame):
  mel, emotion, neutral = _inputs(batch, frames, per_frame_emotion=per_frame)
  out, _ = apply(params, mel, emotion, neutral)
  assert out["landmarks"].shape == out["displacement"].shape == (batch, frames, 68, 2)
  assert out["emotion_logits"].shape == (batch, emotions.NUM_EMOTIONS)
  assert all(v.dtype == jnp.float32 for v in out.values())
  assert np.all(np.isfinite(out["landmarks"]))
  np.testing.assert_array_equal(out["landmarks"], neutral[:, None] + out["displacement"])
  assert 0 < np.abs(out["displacement"]).max() < 1.0


def test_clip_emotion_equals_constant_per_frame_emotion(params, apply):
  mel, emotion, neutral = _inputs(2, 5)
  clip, _ = apply(params, mel, emotion, neutral)
  frames, _ = apply(params, mel, jnp.repeat(emotion[:, None], 5, axis=1), neutral)
  for key in clip:
    np.testing.assert_allclose(clip[key], frames[key], rtol=1e-5, atol=1e-6)


def test_zero_output_layers_return_the_neutral_face(params, apply):
  out_layer = jax.tree_util.tree_map(jnp.zeros_like, params["graph_decoder"]["out"])
  zeroed = dict(params, graph_decoder=dict(params["graph_decoder"], out=out_layer),
                motion_readout=jax.tree_util.tree_map(jnp.zeros_like, params["motion_readout"]))
  mel, emotion, neutral = _inputs(2, 3)
  out, _ = apply(zeroed, mel, emotion, neutral)
  np.testing.assert_array_equal(out["landmarks"], jnp.broadcast_to(neutral[:, None], (2, 3, 68, 2)))


def test_landmarks_follow_neutral_through_the_residual(model, params):
  # d landmarks / d neutral = I + d displacement / d neutral, checked along a random direction.
  mel, emotion, neutral = _inputs(1, 2)
  tangent = jnp.asarray(np.random.default_rng(1).normal(size=neutral.shape), jnp.float32)

  @jax.jit
  def directional(n, v):
    return jax.jvp(lambda x: model.apply({"params": params}, mel, emotion, x), (n,), (v,))[1]

  d = directional(neutral, tangent)
  assert np.abs(d["displacement"]).max() > 1e-4  # The encoder path does respond to the face.
  np.testing.assert_allclose(d["landmarks"] - d["displacement"],
                             jnp.broadcast_to(tangent[:, None], d["landmarks"].shape), atol=1e-6)


def test_swapping_emotion_encoder_changes_only_the_emotion_path(params, apply):
  other = lm.EmotionEncoder(64).init(jax.random.PRNGKey(7), jnp.zeros((1, 9)))["params"]
  swapped = dict(params, emotion_encoder=other)
  mel, emotion, neutral = _inputs(2, 3)
  out_a, state_a = apply(params, mel, emotion, neutral)
  out_b, state_b = apply(swapped, mel, emotion, neutral)
  inter_a, inter_b = state_a["intermediates"], state_b["intermediates"]
  np.testing.assert_array_equal(inter_a["audio"][0], inter_b["audio"][0])
  np.testing.assert_array_equal(inter_a["graph"][0], inter_b["graph"][0])
  assert not np.allclose(inter_a["emotion"][0], inter_b["emotion"][0])
  assert not np.allclose(out_a["landmarks"], out_b["landmarks"])


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_frozen_audio_encoder_is_bit_identical_after_a_step(model, params):
  mel, emotion, neutral = _inputs(2, 3)
  target = neutral[:, None] + 0.05
  labels = {name: ("frozen" if name == "audio_encoder" else "train") for name in params}
  tx = optax.multi_transform({"train": optax.adam(1e-3), "frozen": optax.set_to_zero()}, labels)

  def loss_fn(p):
    out = model.apply({"params": p}, mel, emotion, neutral)
    total, _ = landmark_losses.landmark_loss(out["landmarks"],
                                             jnp.broadcast_to(target, out["landmarks"].shape))
    return total + landmark_losses.emotion_loss(out["emotion_logits"], emotion)

  @jax.jit
  def step(p):
    grads = jax.grad(loss_fn)(p)
    updates, _ = tx.update(grads, tx.init(p), p)
    return optax.apply_updates(p, updates), grads

  new, grads = step(params)
  # The audio encoder does get gradients; the optimizer is what keeps it fixed.
  assert any(np.any(g != 0) for g in jax.tree_util.tree_leaves(grads["audio_encoder"]))
  for a, b in zip(jax.tree_util.tree_leaves(params["audio_encoder"]),
                  jax.tree_util.tree_leaves(new["audio_encoder"])):
    np.testing.assert_array_equal(a, b)
  for name in MODULES - {"audio_encoder"}:
    changed = [np.any(a != b) for a, b in zip(jax.tree_util.tree_leaves(params[name]),
                                              jax.tree_util.tree_leaves(new[name]))]
    assert any(changed), name


def test_bad_shapes_raise(model, params):
  mel, emotion, neutral = _inputs(1, 2)
  with pytest.raises(ValueError, match="mel"):
    model.apply({"params": params}, mel[:, :, :8], emotion, neutral)
  with pytest.raises(ValueError, match="emotion"):
    model.apply({"params": params}, mel, emotion[:, :8], neutral)


def _similarity_field(neutral, scale, angle, shift):
  """The exact displacement of `neutral` [B, 68, 2] under a similarity about its centroid."""
  c = neutral.mean(axis=-2, keepdims=True)
  rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  return (1 + scale) * (neutral - c) @ rot.T + c + shift - neutral


def test_remove_similarity_keeps_shape_changes_and_drops_head_motion():
  _, _, neutral = _inputs(2, 1, seed=3)
  neutral = np.asarray(neutral)
  # A small head motion (first-order similarity) vanishes.
  head = _similarity_field(neutral, 0.02, 0.01, np.array([0.03, -0.02]))[:, None]
  residual = lm.remove_similarity(jnp.asarray(head, jnp.float32), jnp.asarray(neutral))
  # Only the rotation's 2nd order is left.
  assert np.abs(residual).max() < 1e-3 * np.abs(head).max() + 2e-4
  # A jaw drop keeps most of its motion, and projecting twice changes nothing.
  jaw = np.zeros((2, 1, 68, 2), np.float32)
  jaw[:, :, 5:12, 1] = 0.04
  jaw[:, :, 55:60, 1] = 0.05
  once = lm.remove_similarity(jnp.asarray(jaw), jnp.asarray(neutral))
  assert np.linalg.norm(once) > 0.7 * np.linalg.norm(jaw)
  np.testing.assert_allclose(lm.remove_similarity(once, jnp.asarray(neutral)), once, atol=1e-6)
  # What is left is orthogonal to every similarity motion of that face.
  for scale, angle, shift in ((1e-3, 0, 0), (0, 1e-3, 0), (0, 0, np.array([1e-3, 0])),
                              (0, 0, np.array([0, 1e-3]))):
    field = _similarity_field(neutral, scale, angle, shift)
    dots = np.einsum("btnd,bnd->bt", np.asarray(once), field)
    assert np.abs(dots).max() < 1e-4 * np.linalg.norm(field) * np.linalg.norm(once)


def test_shape_only_net_starts_at_its_prior_and_never_moves_the_head():
  # configs/landmark_test.py's tiny net, shape-only with a zero-initialised decoder like the default
  # config's: other modules (generation's tiny checkpoints) initialise it too, so the session's
  # compilation cache compiles its init only once.
  model = lm.create_model(landmark_test.get_config())
  assert model.shape_only and model.zero_init_decoder
  params = lm.init_params(model, jax.random.PRNGKey(0))
  prior = jnp.asarray(np.random.default_rng(0).normal(0, 0.01, (68, 2)), jnp.float32)
  params = dict(params, mean_displacement=prior)
  mel, emotion, neutral = _inputs(2, 3)
  displacement = jax.jit(lambda p: model.apply({"params": p}, mel, emotion, neutral)["displacement"])
  np.testing.assert_allclose(displacement(params), jnp.broadcast_to(prior, (2, 3, 68, 2)), atol=1e-7)
  # After random output layers, the learned part still has no head motion in it.
  rng = iter(jax.random.split(jax.random.PRNGKey(1), 4))
  params = dict(
      params,
      graph_decoder=dict(params["graph_decoder"],
                         out=jax.tree_util.tree_map(lambda x: jax.random.normal(next(rng), x.shape),
                                                    params["graph_decoder"]["out"])),
      motion_readout=jax.tree_util.tree_map(lambda x: jax.random.normal(next(rng), x.shape),
                                            params["motion_readout"]))
  learned = displacement(params) - prior
  assert np.abs(learned).max() > 1e-3
  np.testing.assert_allclose(lm.remove_similarity(learned, neutral), learned, atol=1e-6)



def test_emotion_offset_is_intensity_times_the_mixed_class_offsets():
  """Linear in intensity and in the mixture weights, clip-wide or per frame."""
  basis = np.random.default_rng(1).normal(0, 0.02, (emotions.NUM_EMOTIONS, 68, 2))
  for per_frame in (False, True):
    emotion = np.asarray(_inputs(2, 3, per_frame_emotion=per_frame)[1], np.float64)
    got = lm.emotion_offset(jnp.asarray(emotion), jnp.asarray(basis, jnp.float32), 3)
    want = np.einsum("...c,cnd->...nd", emotion[..., :8], basis) * emotion[..., 8, None, None]
    if not per_frame:
      want = np.broadcast_to(want[:, None], (2, 3, 68, 2))
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_emotion_basis_param_adds_the_offset_to_every_frame():
  """The rest of the network does not see the basis: its output is the same with a zero one."""
  model = lm.LandmarkNet(emotion_basis=True)
  params = lm.init_params(model, jax.random.PRNGKey(0))
  assert params["emotion_basis"].shape == (emotions.NUM_EMOTIONS, 68, 2)
  assert not params["emotion_basis"].any()  # Zero until the trainer measures it.
  basis = jnp.asarray(np.random.default_rng(1).normal(0, 0.02, (8, 68, 2)), jnp.float32)
  mel, emotion, neutral = _inputs(2, 3)
  run = jax.jit(lambda p: model.apply({"params": p}, mel, emotion, neutral)["landmarks"])
  np.testing.assert_allclose(run(dict(params, emotion_basis=basis)) - run(params),
                             lm.emotion_offset(emotion, basis, 3), atol=2e-6)

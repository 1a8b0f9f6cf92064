"""models/landmark_losses.py: the stage-1 losses (the metrics they mirror: test_lmd.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_losses

MOUTH = face_graph.MOUTH
NOT_MOUTH = np.arange(20)  # Jaw and right brow: 20 nodes, as many as the mouth.


def _face(batch=2, frames=4, seed=0):
  rng = np.random.default_rng(seed)
  return (face_graph.schematic_face() + rng.normal(0, 0.02,
                                                   (batch, frames, 68, 2))).astype(np.float32)


def test_mouth_errors_cost_mouth_weight_times_more():
  target = _face()
  on_mouth, off_mouth = target.copy(), target.copy()
  on_mouth[..., MOUTH, 0] += 0.1
  off_mouth[..., NOT_MOUTH, 0] += 0.1
  for weight in (1.0, 3.0, 5.0):
    mouth_loss, _ = landmark_losses.landmark_loss(on_mouth, target, mouth_weight=weight)
    other_loss, parts = landmark_losses.landmark_loss(off_mouth, target, mouth_weight=weight)
    np.testing.assert_allclose(mouth_loss / other_loss, weight, rtol=1e-5)
    # A constant error: mean over 68 nodes of 0.1^2 on 20 of them.
    np.testing.assert_allclose(parts["voiced"], 20 * 0.01 / 68, rtol=1e-5)


def test_euclidean_distance_is_the_mean_node_distance():
  target = _face()
  pred = target.copy()
  pred[..., MOUTH, 0] += 0.1
  total, _ = landmark_losses.landmark_loss(pred, target, mouth_weight=1.0, distance="euclidean")
  np.testing.assert_allclose(total, 20 * 0.1 / 68, rtol=1e-4)
  grad = jax.grad(lambda p: landmark_losses.landmark_loss(p, target, distance="euclidean")[0])(
      jnp.asarray(target))
  assert np.all(np.isfinite(grad))  # Finite at a perfect prediction.
  with pytest.raises(ValueError, match="distance"):
    landmark_losses.landmark_loss(pred, target, distance="l3")


def test_velocity_ignores_a_constant_offset_but_sees_jitter():
  target = _face()
  offset = np.random.default_rng(1).normal(0, 0.05, (2, 1, 68, 2)).astype(np.float32)
  total, parts = landmark_losses.landmark_loss(target + offset, target)
  assert parts["voiced"] > 1e-4
  assert parts["velocity"] < 1e-12  # Zero but for the rounding of (target + offset) - target.
  np.testing.assert_allclose(total,
                             landmark_losses.landmark_loss(target + offset,
                                                           target,
                                                           velocity_weight=0.0)[0],
                             rtol=1e-5)
  jitter = target.copy()
  jitter[:, 1::2] += 0.01
  with_velocity, parts = landmark_losses.landmark_loss(jitter, target)
  assert parts["velocity"] > 0
  assert with_velocity > landmark_losses.landmark_loss(jitter, target, velocity_weight=0.0)[0]


def test_is_the_plain_per_frame_loss_for_voiced_clips():
  target, pred = _face(seed=0), _face(seed=3)
  weights = np.asarray(landmark_losses.node_weights(3.0))
  d = pred - target
  want = (np.sum(d**2, -1) * weights).mean() + (np.sum(np.diff(d, axis=1)**2, -1) * weights).mean()
  total, _ = landmark_losses.landmark_loss(pred, target, mouth_weight=3.0)
  np.testing.assert_allclose(total, want, rtol=1e-5)


def test_head_motion_weight_discounts_motion_of_the_other_nodes():
  target = _face(batch=1, frames=6)
  nodding = target.copy()
  # Zero window mean.
  nodding[0][:, 17:48, 1] += np.array([0.04, -0.04, 0.02, -0.02, 0.01, -0.01])[:, None]
  assert landmark_losses.landmark_loss(nodding, target,
                                       head_motion_weight=0.0)[0] == pytest.approx(0.0, abs=1e-9)
  assert landmark_losses.landmark_loss(nodding, target, head_motion_weight=1.0)[0] > 1e-4
  raised = target.copy()
  # Brows raised for the whole window: the emotion's geometry, always counted.
  raised[0][:, 17:27, 1] -= 0.03
  assert landmark_losses.landmark_loss(raised, target, head_motion_weight=0.0)[0] > 1e-4


def test_single_frame_has_no_velocity():
  target = _face(frames=1)
  _, parts = landmark_losses.landmark_loss(target + 0.1, target)
  assert parts["velocity"] == 0.0 and np.isfinite(parts["voiced"])


def test_audio_mask_excludes_examples():
  target = _face(batch=3)
  pred = target + 0.01
  pred[1] += 5.0  # No audio: its error must not count.
  target_bad = target.copy()
  target_bad[1] = np.nan
  mask = np.array([True, False, True])
  want, want_parts = landmark_losses.landmark_loss(pred[[0, 2]], target[[0, 2]])
  for tgt in (target, target_bad):
    got, parts = landmark_losses.landmark_loss(pred, tgt, audio_mask=mask)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(parts["velocity"], want_parts["velocity"], rtol=1e-6, atol=1e-12)


def test_silent_clips_train_emotion_geometry_not_speech_motion():
  target = _face(batch=2, frames=6)
  silent = np.array([False, True])
  speech = landmark_losses.SPEECH_NODES

  def silent_part(pred):
    _, parts = landmark_losses.landmark_loss(pred, target, audio_mask=~silent, silent_weight=0.5)
    return float(parts["silent"])

  # Lips and jaw moving frame to frame around the right mean shape: words the model cannot hear,
  # free.
  talking = target.copy()
  talking[1][:, speech, 1] += np.array([0.05, -0.05, 0.03, -0.03, 0.02, -0.02])[:, None]
  assert silent_part(talking) == pytest.approx(0.0, abs=1e-9)
  # A wrong mean mouth shape (a smile the emotion calls for) and wrong brows both cost.
  mouth_off, brows_off = target.copy(), target.copy()
  mouth_off[1][:, face_graph.MOUTH, 1] += 0.05
  brows_off[1][:, 17:27, 1] += 0.05
  assert silent_part(mouth_off) > 1e-4 and silent_part(brows_off) > 1e-4
  # The silent term is weighted into the total; examples with audio keep their full per-frame loss.
  total, parts = landmark_losses.landmark_loss(brows_off,
                                               target,
                                               audio_mask=~silent,
                                               silent_weight=0.5)
  np.testing.assert_allclose(total, parts["voiced"] + 0.5 * parts["silent"], rtol=1e-6)
  assert parts["voiced"] == 0.0


def test_all_masked_is_zero_without_nan():
  target = _face()
  target[0] = np.nan
  mask = np.zeros(2, bool)

  def loss(pred):
    total, parts = landmark_losses.landmark_loss(pred, target, audio_mask=mask)
    emotion = np.full((2, 9), np.nan, np.float32)
    return total + parts["velocity"] + landmark_losses.emotion_loss(pred[:, 0, :8, 0], emotion,
                                                                    mask)

  value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(_face(seed=2)))
  assert value == 0.0
  assert np.all(grad == 0)


def _speaking(gaps):
  """[B, T] inner-lip gaps (landmark units) -> [B, T, 68, 2]: the schematic face, its lower inner
  lip that far below the upper."""
  face = np.broadcast_to(face_graph.schematic_face(), gaps.shape + (68, 2)).copy()
  for upper, lower in face_graph.INNER_LIP_PAIRS:
    face[..., lower, 1] = face[..., upper, 1] + gaps
  return face.astype(np.float32)


def test_opening_terms_measure_the_amount_of_motion_of_voiced_clips():
  true_gaps = 0.1 * (1 + np.sin(np.linspace(0, 4 * np.pi, 16)))[None]  # Two open-close cycles.
  target = _speaking(true_gaps)
  half_as_wide = landmark_losses.opening_loss(_speaking(0.5 * true_gaps), target)
  np.testing.assert_allclose(half_as_wide["opening"], 0.5 * true_gaps.mean(), rtol=1e-4)
  np.testing.assert_allclose(half_as_wide["opening_std"], 0.5 * true_gaps.std(), rtol=1e-3)
  np.testing.assert_allclose(half_as_wide["opening_velocity"],
                             0.5 * np.abs(np.diff(true_gaps)).mean(), rtol=1e-3)
  # Opening as the true mouth closes: the same amount of motion, all of it at the wrong time.
  backwards = landmark_losses.opening_loss(_speaking(0.2 - true_gaps), target)
  np.testing.assert_allclose(backwards["opening_std"], 0.0, atol=1e-6)
  assert backwards["opening_velocity"] > 2 * half_as_wide["opening_velocity"]
  # Only voiced examples count.
  both = landmark_losses.opening_loss(np.concatenate([_speaking(0.5 * true_gaps), target]),
                                      np.concatenate([target, target]),
                                      audio_mask=np.array([False, True]))
  assert all(float(v) < 1e-6 for v in both.values())


def test_emotion_loss_one_hot_and_mixture():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 8)).astype(np.float32)
  one_hot = np.zeros((3, 9), np.float32)
  one_hot[np.arange(3), [0, 4, 7]] = 1.0
  one_hot[:, 8] = [0.3, 0.7, 1.0]  # Intensity is not a class.
  want = optax.softmax_cross_entropy(logits, one_hot[:, :8]).mean()
  np.testing.assert_allclose(landmark_losses.emotion_loss(logits, one_hot), want, rtol=1e-6)
  mixture = np.zeros((1, 9), np.float32)
  mixture[0, [4, 7, 8]] = [0.6, 0.4, 0.8]
  log_p = jax.nn.log_softmax(logits[:1])
  np.testing.assert_allclose(landmark_losses.emotion_loss(logits[:1], mixture),
                             -(0.6 * log_p[0, 4] + 0.4 * log_p[0, 7]), rtol=1e-6)
  masked = landmark_losses.emotion_loss(logits, one_hot, np.array([False, True, False]))
  np.testing.assert_allclose(masked,
                             optax.softmax_cross_entropy(logits[1], one_hot[1, :8]),
                             rtol=1e-6)


def test_losses_reject_mismatched_shapes():
  with pytest.raises(ValueError):
    landmark_losses.landmark_loss(np.zeros((2, 3, 68, 2)), np.zeros((2, 4, 68, 2)))

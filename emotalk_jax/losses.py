"""Stage-1 training losses: landmark position and velocity, and the emotion head.

Conventions:
* Landmarks are [B, T, 68, 2] in the crop's [-1, 1] coordinates. A node's error
  is its squared Euclidean distance (x and y summed); node errors are averaged
  with weight 1, except the 20 `face_graph.MOUTH` nodes, weighted `mouth_weight`
  (speech moves mostly the mouth, so its errors matter most). The average is a
  plain mean over the 68 nodes of weight * error, so with mouth_weight = 1 it is
  the ordinary mean squared distance.
* The velocity term compares frame-to-frame differences (x[t+1] - x[t]) of
  prediction and target with the same node weights: it penalises jitter and
  lag that a per-frame loss does not see, and ignores a constant offset.
* Per-example losses are averaged over the examples a mask selects; with none
  selected the loss is 0 (not NaN) and so is its gradient, even if the excluded
  examples hold NaN targets.
* Clips without audio (silent labelled video, e.g. MEAD's) still show what an
  emotion does to a face. With `silent_weight` > 0 they train what can be known
  without the speech: every frame of the nodes speech does not move, and only
  the window's mean shape of the `SPEECH_NODES` (lips and lower jaw), whose
  frame-to-frame motion follows words the model does not hear.
"""

from typing import Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from emotalk_jax import emotions
from emotalk_jax import face_graph


# Lips and the lower jaw (chin and jaw line below the mouth corners): the nodes speech moves.
SPEECH_NODES = np.concatenate([np.arange(4, 13), face_graph.MOUTH])


def node_weights(mouth_weight: float = 3.0) -> jax.Array:
  """[68] float32: 1 everywhere, `mouth_weight` on the mouth nodes."""
  return jnp.ones((face_graph.NUM_NODES,), jnp.float32).at[face_graph.MOUTH].set(mouth_weight)


def _weighted_node_error(diff: jax.Array, weights: jax.Array) -> jax.Array:
  """diff [B, T, 68, 2] -> [B]: mean over frames and nodes of weight * |diff|^2."""
  squared = jnp.sum(jnp.square(diff), axis=-1)  # [B, T, 68]
  return jnp.mean(squared * weights, axis=(-2, -1))


def masked_mean(per_example: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """Mean of [B] values over mask == True; 0 when the mask selects nothing."""
  if mask is None:
    return jnp.mean(per_example)
  mask = jnp.asarray(mask, bool)
  # `where`, not a product, so a NaN or inf in an excluded example cannot leak in.
  total = jnp.sum(jnp.where(mask, per_example, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1).astype(per_example.dtype)


def _position_velocity(diff: jax.Array, weights: jax.Array, mask) -> Tuple[jax.Array, jax.Array]:
  """Masked mean position and velocity errors of diff [B, T, 68, 2] (velocity 0 when T = 1)."""
  position = masked_mean(_weighted_node_error(diff, weights), mask)
  if diff.shape[1] > 1:
    velocity = masked_mean(_weighted_node_error(jnp.diff(diff, axis=1), weights), mask)
  else:
    velocity = jnp.zeros((), jnp.float32)
  return position, velocity


def landmark_loss(pred, target, audio_mask=None, mouth_weight: float = 3.0, velocity_weight: float = 1.0,
                  silent_weight: float = 0.0) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Mouth-weighted landmark L2 plus a velocity term; optionally what silent clips can teach.

  Args:
    pred: [B, T, 68, 2] predicted landmarks.
    target: [B, T, 68, 2] ground-truth landmarks.
    audio_mask: [B] bool, True for examples that have audio. The others contribute only through
      `silent_weight`. None: all examples have audio.
    mouth_weight: weight of the 20 mouth nodes (others 1).
    velocity_weight: weight of the velocity terms.
    silent_weight: weight of the silent examples' loss: position + velocity of the nodes outside
      `SPEECH_NODES` in every frame, plus position of the window-mean shape of `SPEECH_NODES`.

  Returns:
    (total, {"position", "velocity", "silent"}), all float32 scalars;
    total = position + velocity_weight * velocity + silent_weight * silent.
  """
  pred = jnp.asarray(pred, jnp.float32)
  target = jnp.asarray(target, jnp.float32)
  if pred.shape != target.shape or pred.ndim != 4:
    raise ValueError(f"pred and target must both be [B, T, 68, 2], got {pred.shape} and {target.shape}")
  weights = node_weights(mouth_weight)
  diff = pred - target
  if audio_mask is None:
    position, velocity = _position_velocity(diff, weights, None)
    return position + velocity_weight * velocity, {"position": position, "velocity": velocity,
                                                   "silent": jnp.zeros((), jnp.float32)}
  audio_mask = jnp.asarray(audio_mask, bool)
  # Zero excluded examples before squaring: a NaN there would otherwise reach the gradient
  # (0 * NaN) even though `masked_mean` drops its value.
  position, velocity = _position_velocity(jnp.where(audio_mask[:, None, None, None], diff, 0.0), weights,
                                          audio_mask)
  total = position + velocity_weight * velocity
  silent = jnp.zeros((), jnp.float32)
  if silent_weight:
    silent_mask = ~audio_mask
    silent_diff = jnp.where(silent_mask[:, None, None, None], diff, 0.0)
    speech = jnp.zeros_like(weights).at[SPEECH_NODES].set(1.0)
    still_position, still_velocity = _position_velocity(silent_diff, weights * (1.0 - speech), silent_mask)
    mean_shape = masked_mean(_weighted_node_error(silent_diff.mean(axis=1, keepdims=True), weights * speech),
                             silent_mask)
    silent = still_position + velocity_weight * still_velocity + mean_shape
    total = total + silent_weight * silent
  return total, {"position": position, "velocity": velocity, "silent": silent}


def emotion_loss(logits, emotion, mask=None) -> jax.Array:
  """Softmax cross-entropy of the emotion head against the emotion's class weights.

  The target is the 8 class weights of the emotion vector (a one-hot for a
  single emotion, soft for a mixture), renormalised to sum to 1; the intensity
  is not a class and is ignored.

  Args:
    logits: [B, 8].
    emotion: [B, 9] emotion vectors (or [B, 8] class weights).
    mask: [B] bool, examples to count; None: all.

  Returns:
    float32 scalar, the mean over counted examples (0 when none).
  """
  logits = jnp.asarray(logits, jnp.float32)
  weights = jnp.asarray(emotion, jnp.float32)[..., :emotions.NUM_EMOTIONS]
  if mask is not None:
    weights = jnp.where(jnp.asarray(mask, bool)[:, None], weights, 0.0)  # As in landmark_loss.
  weights = weights / jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1e-8)
  per_example = -jnp.sum(weights * jax.nn.log_softmax(logits, axis=-1), axis=-1)
  return masked_mean(per_example, mask)

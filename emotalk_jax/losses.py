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
"""

from typing import Dict, Optional, Tuple

import jax
import jax.numpy as jnp

from emotalk_jax import emotions
from emotalk_jax import face_graph


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


def landmark_loss(pred, target, audio_mask=None, mouth_weight: float = 3.0,
                  velocity_weight: float = 1.0) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Mouth-weighted landmark L2 plus a velocity term.

  Args:
    pred: [B, T, 68, 2] predicted landmarks.
    target: [B, T, 68, 2] ground-truth landmarks.
    audio_mask: [B] bool, True for examples that have audio; the others (whose
      motion the model cannot know) contribute nothing. None: all count.
    mouth_weight: weight of the 20 mouth nodes (others 1).
    velocity_weight: weight of the velocity term in the total.

  Returns:
    (total, {"position": ..., "velocity": ...}), all float32 scalars;
    total = position + velocity_weight * velocity. With T = 1 velocity is 0.
  """
  pred = jnp.asarray(pred, jnp.float32)
  target = jnp.asarray(target, jnp.float32)
  if pred.shape != target.shape or pred.ndim != 4:
    raise ValueError(f"pred and target must both be [B, T, 68, 2], got {pred.shape} and {target.shape}")
  weights = node_weights(mouth_weight)
  diff = pred - target
  if audio_mask is not None:
    # Zero excluded examples before squaring: a NaN there would otherwise reach the gradient
    # (0 * NaN) even though `masked_mean` drops its value.
    diff = jnp.where(jnp.asarray(audio_mask, bool)[:, None, None, None], diff, 0.0)
  position = masked_mean(_weighted_node_error(diff, weights), audio_mask)
  if pred.shape[1] > 1:
    velocity = masked_mean(_weighted_node_error(jnp.diff(diff, axis=1), weights), audio_mask)
  else:
    velocity = jnp.zeros((), jnp.float32)
  total = position + velocity_weight * velocity
  return total, {"position": position, "velocity": velocity}


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

"""Stage-1 training losses: landmark position and velocity, the mouth opening, and the emotion head.

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
  emotion does to a face: with `silent_weight` > 0 they train everything but the
  frame-to-frame motion of the `SPEECH_NODES` (lips and lower jaw), which follows
  words the model does not hear. `head_motion_weight` < 1 likewise discounts the
  within-window motion of the other nodes, mostly head motion (see `landmark_loss`).
"""

from typing import Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from emotalk_jax import emotions
from emotalk_jax.models import face_graph


# Lips and the lower jaw (chin and jaw line below the mouth corners): the nodes speech moves.
SPEECH_NODES = np.concatenate([np.arange(4, 13), face_graph.MOUTH])


def node_weights(mouth_weight: float = 3.0) -> jax.Array:
  """[68] float32: 1 everywhere, `mouth_weight` on the mouth nodes."""
  return jnp.ones((face_graph.NUM_NODES,), jnp.float32).at[face_graph.MOUTH].set(mouth_weight)


def _weighted_node_error(diff: jax.Array,
                         weights: jax.Array,
                         distance: str = "squared") -> jax.Array:
  """diff [B, T, 68, 2] -> [B]: mean over frames and nodes of weight * |diff|^2 ('squared') or
  weight * |diff| ('euclidean': what M-LMD / F-LMD measure, and less swayed by a few far-off
    frames)."""
  squared = jnp.sum(jnp.square(diff), axis=-1)  # [B, T, 68]
  if distance == "euclidean":
    # The epsilon keeps the gradient finite at 0 (exact zeros occur: masked examples, still nodes).
    per_node = jnp.sqrt(squared + 1e-12)
  elif distance == "squared":
    per_node = squared
  else:
    raise ValueError(f"unknown distance {distance!r}; expected 'squared' or 'euclidean'")
  return jnp.mean(per_node * weights, axis=(-2, -1))


def masked_mean(per_example: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """Mean of [B] values over mask == True; 0 when the mask selects nothing."""
  if mask is None:
    return jnp.mean(per_example)
  mask = jnp.asarray(mask, bool)
  # `where`, not a product, so a NaN or inf in an excluded example cannot leak in.
  total = jnp.sum(jnp.where(mask, per_example, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1).astype(per_example.dtype)


def landmark_loss(pred,
                  target,
                  audio_mask=None,
                  mouth_weight: float = 3.0,
                  velocity_weight: float = 1.0,
                  silent_weight: float = 0.0,
                  head_motion_weight: float = 1.0,
                  distance: str = "squared") -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Mouth-weighted landmark L2 plus velocity, split by what the inputs can explain.

  The nodes speech moves (`SPEECH_NODES`) are compared frame by frame in clips with audio and by
  their window mean in silent clips (whose words the model does not hear). The other nodes are
  compared by their window mean (the emotion's geometry) plus `head_motion_weight` x their
  frame-to-frame deviation from it and their velocity: mostly head motion, which neither the speech
  nor the emotion determines. With head_motion_weight = 1 and all clips voiced, this is the plain
  per-frame loss (mean over frames of |d|^2 = |mean d|^2 + mean |d - mean d|^2).

  Args:
    pred: [B, T, 68, 2] predicted landmarks.
    target: [B, T, 68, 2] ground-truth landmarks.
    audio_mask: [B] bool, True for examples that have audio; None: all have.
    mouth_weight: weight of the 20 mouth nodes (others 1).
    velocity_weight: weight of the velocity terms.
    silent_weight: weight of the silent examples' loss (0: they are left out).
    head_motion_weight: weight of the non-speech nodes' motion within a window.
    distance: 'squared' (L2) or 'euclidean' per node (see `_weighted_node_error`); the decomposition
      above is exact for 'squared' only.

  Returns:
    (total, {"voiced", "silent", "velocity"}): total = voiced + silent_weight * silent, each the
    mean over its examples (0 when there are none); "velocity" is the speech nodes' velocity error
    of voiced clips.
  """
  pred = jnp.asarray(pred, jnp.float32)
  target = jnp.asarray(target, jnp.float32)
  if pred.shape != target.shape or pred.ndim != 4:
    raise ValueError(
        f"pred and target must both be [B, T, 68, 2], got {pred.shape} and {target.shape}")
  voiced = jnp.ones(pred.shape[:1], bool) if audio_mask is None else jnp.asarray(audio_mask, bool)
  silent = ~voiced
  weights = node_weights(mouth_weight)
  speech = jnp.zeros_like(weights).at[SPEECH_NODES].set(1.0)
  still = 1.0 - speech

  def error(d, node_mask):  # [B]
    return _weighted_node_error(d, weights * node_mask, distance)

  def velocity(d, node_mask):  # [B]
    if d.shape[1] < 2:
      return jnp.zeros(d.shape[:1], jnp.float32)
    return _weighted_node_error(jnp.diff(d, axis=1), weights * node_mask, distance)

  # Zero the examples a term leaves out before squaring: a NaN there would otherwise reach the
  # gradient
  # (0 * NaN) even though `masked_mean` drops its value.
  needed = voiced | (silent if silent_weight else jnp.zeros_like(silent))
  diff = jnp.where(needed[:, None, None, None], pred - target, 0.0)
  mean = diff.mean(axis=1, keepdims=True)
  still_part = error(mean, still) + head_motion_weight * (error(diff - mean, still)
                                                          + velocity_weight * velocity(diff, still))
  speech_velocity = velocity(diff, speech)
  voiced_loss = masked_mean(
      error(diff, speech) + velocity_weight * speech_velocity + still_part, voiced)
  silent_loss = masked_mean(error(mean, speech) + still_part, silent)
  total = voiced_loss + (silent_weight * silent_loss if silent_weight else 0.0)
  return total, {
      "voiced": voiced_loss,
      "silent": silent_loss,
      "velocity": masked_mean(speech_velocity, voiced)
  }


def opening_loss(pred, target, audio_mask=None) -> Dict[str, jax.Array]:
  """Terms on the mouth opening, the quantity that makes lips look like they speak, of voiced
  examples.

  A landmark distance alone favours a mouth that hardly moves (the mean opening is a good guess for
  a distance); these terms reward the motion itself: 'opening' (L1 of the opening per frame),
  'opening_velocity' (L1 of its frame-to-frame change) and 'opening_std' (|std over the window of
  the predicted opening - of
  the true one|: the amount of motion, whatever its timing).

  Args:
    pred, target: [B, T, 68, 2] landmarks in [-1, 1].
    audio_mask: [B] bool, True for examples with audio; None: all.

  Returns:
    {'opening', 'opening_velocity', 'opening_std'}: means over voiced examples, in landmark units (x
    128 for pixels of a 256 crop); 0 when none is voiced.
  """
  voiced = jnp.ones(pred.shape[:1], bool) if audio_mask is None else jnp.asarray(audio_mask, bool)
  mask = voiced[:, None, None, None]
  # Examples left out are zeroed first, so a NaN target there cannot reach the gradient.
  p = face_graph.mouth_opening(jnp.where(mask, jnp.asarray(pred, jnp.float32), 0.0))  # [B, T]
  t = face_graph.mouth_opening(jnp.where(mask, jnp.asarray(target, jnp.float32), 0.0))
  velocity = jnp.abs(jnp.diff(p, axis=1) -
                     jnp.diff(t, axis=1)).mean(1) if p.shape[1] > 1 else jnp.zeros(p.shape[:1])
  std = jnp.sqrt(jnp.var(p, axis=1) + 1e-12) - jnp.sqrt(jnp.var(t, axis=1) + 1e-12)
  return {"opening": masked_mean(jnp.abs(p - t).mean(1), voiced),
          "opening_velocity": masked_mean(velocity, voiced),
          "opening_std": masked_mean(jnp.abs(std), voiced)}


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

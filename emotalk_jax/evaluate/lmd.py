"""Evaluation metrics. Landmark distances: M-LMD and F-LMD.

Convention (pinned here because papers differ): landmarks are in the crop's
[-1, 1] coordinates and distances are reported in pixels of a `size` x `size`
crop (1 unit = size / 2 px). Each frame of the prediction and of the target is
first mean-centred using all 68 of its points, so a global translation of the
face costs nothing; then the Euclidean distance of every chosen point is
averaged over points and frames (and any leading batch dims). M-LMD chooses the
20 mouth points, F-LMD all 68. Centring on all 68 points even for M-LMD keeps
the mouth's position relative to the face in the measure: a mouth that drifts
against the rest of the face is an error.
"""

import jax
import jax.numpy as jnp

from emotalk_jax.models import face_graph


def lmd(pred, target, points=None, size: int = 256) -> jax.Array:
  """Mean landmark distance in pixels of a `size` crop.

  Args:
    pred: [..., T, 68, 2] landmarks in [-1, 1].
    target: same shape.
    points: indices of the points measured (default all 68).
    size: crop side in pixels.

  Returns:
    float32 scalar.
  """
  pred = jnp.asarray(pred, jnp.float32)
  target = jnp.asarray(target, jnp.float32)
  if pred.shape != target.shape or pred.shape[-2:] != (face_graph.NUM_NODES, 2):
    raise ValueError(
        f"pred and target must both be [..., 68, 2], got {pred.shape} and {target.shape}")
  pred = pred - pred.mean(axis=-2, keepdims=True)
  target = target - target.mean(axis=-2, keepdims=True)
  if points is not None:
    points = jnp.asarray(points)
    pred, target = pred[..., points, :], target[..., points, :]
  distance = jnp.linalg.norm(pred - target, axis=-1)
  return jnp.mean(distance) * (size / 2.0)


def m_lmd(pred, target, size: int = 256) -> jax.Array:
  """Mouth LMD: `lmd` over the 20 mouth points."""
  return lmd(pred, target, face_graph.MOUTH, size)


def f_lmd(pred, target, size: int = 256) -> jax.Array:
  """Face LMD: `lmd` over all 68 points."""
  return lmd(pred, target, None, size)

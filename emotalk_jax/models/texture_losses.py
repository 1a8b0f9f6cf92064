"""Stage-2 (texture network) losses: reconstruction, adversarial, feature matching, flow smoothness.

Images are [B, S, S, 3] in [-1, 1]. The discriminator outputs are `texture_model.Discriminator`'s:
a list over scales of (hidden features, logits [B, s, s, 1]). Every loss is a float32 scalar, a mean
over the batch and the pixels/patches (so weights do not depend on the batch size or the
resolution). The perceptual (VGG19) loss is `emotalk_jax.models.vgg.perceptual_loss`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_maps

GAN_LOSSES = ("hinge", "lsgan")
# The mouth box's margin on every side, a fraction of the mouth's width: a closed mouth's box still
# holds the lips and the skin around them, an open one the whole cavity.
MOUTH_BOX_MARGIN = 0.2


def l1(pred, target) -> jax.Array:
  return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def landmark_l1(pred, target, landmarks, sigma_px: float = 3.0) -> jax.Array:
  """L1 averaged under a weight map that peaks at the landmarks: a Gaussian of std `sigma_px`
  (pixels of the image) around each of the target's landmarks [B, 68, 2] in [-1, 1], the max over
  landmarks.

  dlib's shape predictor (and so F-LMD) reads intensity differences of pixels near the landmarks;
  the plain L1 spreads the same effort over cheek, hair and background.
  """
  if pred.shape[1] != pred.shape[2]:
    raise ValueError(f"landmark_l1 takes square images, got {pred.shape}")
  # The max over the 9 parts' blobs is the max over all 68 landmarks'.
  weight = jnp.max(landmark_maps.heatmaps(landmarks, pred.shape[1], float(sigma_px)),
                   -1,
                   keepdims=True)  # [B, H, W, 1]
  diff = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
  return jnp.sum(weight * diff) / (jnp.sum(weight) * diff.shape[-1])


def mouth_box(landmarks, size: int, margin: float = MOUTH_BOX_MARGIN, xp=np):
  """The box around the 20 mouth landmarks of [..., 68, 2] (in [-1, 1]) grown by `margin` x the
  mouth's width on every side: [..., 4] (x0, y0, x1, y1) in pixels of a `size` image, not clipped.
  The box the training's `mouth_l1` weights and the texture evaluation's mouth scores read."""
  px = (landmarks[..., face_graph.MOUTH, :] + 1.0) * (size / 2.0)
  low, high = px.min(-2), px.max(-2)
  pad = margin * (high[..., :1] - low[..., :1])
  return xp.concatenate([low - pad, high + pad], -1)


def mouth_l1(pred, target, landmarks, margin: float = MOUTH_BOX_MARGIN) -> jax.Array:
  """L1 over the mouth box of each target's landmarks [B, 68, 2] (`mouth_box`): the lips, teeth
  and cavity that a warp of a closed-lipped photo cannot show, a small share of the whole frame's
  L1."""
  size = pred.shape[1]
  box = mouth_box(landmarks.astype(jnp.float32), size, margin, xp=jnp)[:, None, None, :]
  centres = jnp.arange(size, dtype=jnp.float32) + 0.5
  inside_x = (centres[None, None, :] >= box[..., 0]) & (centres[None, None, :] <= box[..., 2])
  inside_y = (centres[None, :, None] >= box[..., 1]) & (centres[None, :, None] <= box[..., 3])
  weight = (inside_x & inside_y).astype(jnp.float32)[..., None]  # [B, H, W, 1]
  diff = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
  return jnp.sum(weight * diff) / (jnp.maximum(jnp.sum(weight), 1.0) * diff.shape[-1])


def _check_gan(kind: str):
  if kind not in GAN_LOSSES:
    raise ValueError(f"gan_loss must be one of {GAN_LOSSES}, got {kind!r}")


def discriminator_loss(real_outputs, fake_outputs, kind: str = "hinge") -> jax.Array:
  """Mean over scales: hinge E[relu(1 - D(real))] + E[relu(1 + D(fake))], or LSGAN E[(D(real) -
  1)^2] + E[D(fake)^2]."""
  _check_gan(kind)
  total = 0.0
  for (_, real), (_, fake) in zip(real_outputs, fake_outputs):
    real, fake = real.astype(jnp.float32), fake.astype(jnp.float32)
    if kind == "hinge":
      total += jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    else:
      total += jnp.mean(jnp.square(real - 1.0)) + jnp.mean(jnp.square(fake))
  return total / len(real_outputs)


def generator_adversarial_loss(fake_outputs, kind: str = "hinge") -> jax.Array:
  """Mean over scales: hinge -E[D(fake)], or LSGAN E[(D(fake) - 1)^2]."""
  _check_gan(kind)
  total = 0.0
  for _, fake in fake_outputs:
    fake = fake.astype(jnp.float32)
    total += -jnp.mean(fake) if kind == "hinge" else jnp.mean(jnp.square(fake - 1.0))
  return total / len(fake_outputs)


def feature_matching_loss(real_outputs, fake_outputs) -> jax.Array:
  """Mean over scales and layers of L1 between the discriminator's hidden features of real and fake
  (the real side is a fixed target)."""
  total, count = 0.0, 0
  for (real_feats, _), (fake_feats, _) in zip(real_outputs, fake_outputs):
    for r, f in zip(real_feats, fake_feats):
      total += l1(f, jax.lax.stop_gradient(r))
      count += 1
  return total / max(count, 1)


def flow_smoothness(flow, image=None, edge_weight: float = 10.0) -> jax.Array:
  """Mean absolute first difference of a flow [B, H, W, 2] along x and y, in pixels of that flow.

  With `image` ([B, H, W, C], e.g. the neutral image resized to the flow), each difference is
  weighted by exp(-edge_weight * mean |image difference|), so motion may change at image edges
  (edge-aware).
  """
  h, w = flow.shape[1:3]
  flow = flow.astype(jnp.float32) * jnp.asarray([w / 2.0, h / 2.0])  # Normalised units -> pixels.
  dx = jnp.abs(flow[:, :, 1:] - flow[:, :, :-1])
  dy = jnp.abs(flow[:, 1:] - flow[:, :-1])
  if image is not None:
    image = image.astype(jnp.float32)
    dx = dx * jnp.exp(
        -edge_weight * jnp.mean(jnp.abs(image[:, :, 1:] - image[:, :, :-1]), -1, keepdims=True))
    dy = dy * jnp.exp(
        -edge_weight * jnp.mean(jnp.abs(image[:, 1:] - image[:, :-1]), -1, keepdims=True))
  return 0.5 * (jnp.mean(dx) + jnp.mean(dy))

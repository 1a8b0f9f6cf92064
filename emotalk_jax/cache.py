"""What generation would otherwise redo in every run, kept in a user cache folder: JAX's compiled
code (stage 1, stage 2, the speech encoder), their traced programs (tracing a network costs 0.3-1
s of Python per run, which the compilation cache does not save) and the param shapes the
checkpoints are checked against (tracing a model's init for them costs 0.3-1.3 s per model on a
CPU).

Also arrays a run would otherwise compute (`array`: the speech encoder's features of silence).

The folder is `$EMOTALK_CACHE_DIR` if set (empty: no cache), else `$XDG_CACHE_HOME/emotalk_jax`
(`~/.cache/emotalk_jax`), with `xla/`, `traced/`, `param_shapes/` and `arrays/` in it. A folder
that cannot be made or written is skipped: the work is then done as before. A compilation cache the
user (or a test session) already configured is left alone.
"""

import functools
import hashlib
import io
import json
import os
import pathlib
import secrets
import threading
from typing import Any, Callable, Optional

import flax
import jax
import numpy as np

# Compilations faster than this are not worth a file (JAX's default is 1 s, which would skip the
# speech encoder's and stage 1's on a fast machine).
MIN_COMPILE_SECONDS = 0.1
# The code an entry may depend on: all of the package's (a change anywhere is a new key).
_CODE = sorted(pathlib.Path(__file__).parent.rglob("*.py"))
# XLA:CPU options for a convolutional network (`compiled(cpu_options=)`): its convolutions through
# YNNPACK (one of XLA:CPU's library fusions). Stage 2 renders about a quarter faster with them
# (docs/results.md#generation-speed-and-memory); the speech encoder was slower (0.35 -> 0.40 s a
# window) and stage 1 the same, so they compile without.
CONV_NET_CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"}


def default_dir() -> Optional[pathlib.Path]:
  """The cache folder (see the module docstring); None when `$EMOTALK_CACHE_DIR` is empty."""
  if "EMOTALK_CACHE_DIR" in os.environ:
    value = os.environ["EMOTALK_CACHE_DIR"]
    return pathlib.Path(value).expanduser() if value else None
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "emotalk_jax"


def _writable(path: Optional[pathlib.Path]) -> Optional[pathlib.Path]:
  """`path`, made if missing, or None when it cannot be made or written."""
  if path is None:
    return None
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  return path if os.access(path, os.W_OK | os.X_OK) else None


def enable_compilation_cache(directory=None) -> Optional[pathlib.Path]:
  """Points JAX's persistent compilation cache at `directory` (default `default_dir()/xla`).

  Returns:
    The cache folder in use (possibly one configured before), or None when there is none.
  """
  configured = jax.config.jax_compilation_cache_dir
  if configured:
    return pathlib.Path(configured)
  root = default_dir()
  path = _writable(pathlib.Path(directory) if directory else root and root / "xla")
  if path is None:
    return None
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  return path


def _key(*parts: str) -> str:
  """A hash of `parts`, the package's code and the JAX and Flax versions."""
  key = hashlib.sha256("\0".join([*parts, jax.__version__, flax.__version__]).encode())
  key.update(_code_digest())
  return key.hexdigest()[:32]


def _entry(kind: str, directory, name: str) -> Optional[pathlib.Path]:
  """The file `name` in `directory` (default `default_dir()/kind`); None when there is no cache."""
  root = default_dir()
  folder = pathlib.Path(directory) if directory else root and root / kind
  return folder / name if folder else None


@functools.lru_cache(maxsize=1)
def _code_digest() -> bytes:
  key = hashlib.sha256()
  for path in _CODE:
    key.update(path.read_bytes())
  return key.digest()


def _read(entry: Optional[pathlib.Path]) -> Optional[bytes]:
  try:
    return entry.read_bytes() if entry is not None else None
  except OSError:
    return None


def _write(entry: Optional[pathlib.Path], data: bytes) -> None:
  """Writes `entry` atomically (a concurrent run reads a whole entry or none), or nothing when its
  folder cannot be written."""
  if entry is None or _writable(entry.parent) is None:
    return
  partial = entry.with_name(f".{entry.name}.{secrets.token_hex(4)}")
  try:
    partial.write_bytes(data)
    os.replace(partial, entry)
  except OSError:
    partial.unlink(missing_ok=True)


def param_shapes(name: str, config_json: str, compute: Callable[[], Any], directory=None) -> Any:
  """`compute()`, a nested dict of `jax.ShapeDtypeStruct` (a model's params, e.g. `jax.eval_shape`
  of its init), read from the cache when an earlier run stored it for the same `name`,
  `config_json`, package code and JAX and Flax versions.

  Args:
    name: which model (e.g. its module).
    config_json: the model's config, as text.
    compute: what to run on a miss.
    directory: the cache folder (default `default_dir()/param_shapes`).
  """
  return _stored_or_computed(_entry("param_shapes", directory, _key(name, config_json) + ".json"),
                             compute, lambda shapes: json.dumps(_to_json(shapes)).encode(),
                             lambda data: _from_json(json.loads(data)))


def array(name: str, key: str, compute: Callable[[], np.ndarray], directory=None) -> np.ndarray:
  """`compute()`, a numeric array, read from the cache when an earlier run stored it for the same
  `name`, `key`, package code and JAX and Flax versions.

  Args:
    name: what the array is.
    key: what it depends on besides the code (e.g. a digest of the params that compute it).
    compute: what to run on a miss.
    directory: the cache folder (default `default_dir()/arrays`).
  """

  def encode(value) -> bytes:
    data = io.BytesIO()
    np.save(data, value, allow_pickle=False)
    return data.getvalue()

  return _stored_or_computed(_entry("arrays", directory, _key(name, key) + ".npy"),
                             lambda: np.asarray(compute()), encode,
                             lambda data: np.load(io.BytesIO(data), allow_pickle=False))


def _stored_or_computed(entry: Optional[pathlib.Path], compute: Callable[[], Any],
                        encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]) -> Any:
  """`decode` of `entry`'s bytes; else (no entry, or a damaged one) `compute()`, written to it."""
  stored = _read(entry)
  if stored is not None:
    try:
      return decode(stored)
    except (ValueError, KeyError, TypeError, OSError, EOFError):
      pass  # A damaged entry: computed and written again.
  value = compute()
  _write(entry, encode(value))
  return value


def compiled(name: str, fn: Callable, *args, cpu_options: Optional[dict] = None,
             directory=None) -> jax.stages.Compiled:
  """`jax.jit(fn)` compiled for `args` (arrays or `jax.ShapeDtypeStruct`s, in any pytrees), with
  its trace read from the cache when an earlier run stored it.

  The traced program (`jax.export`, StableHLO) is stored under a key of `name`, the package's
  code, the JAX and Flax versions, the platform and the args' shapes and dtypes; compiling it is
  then a read of JAX's compilation cache (`enable_compilation_cache`).

  Args:
    name: what `fn` computes, everything it closes over included (e.g. the model's repr, which
      lists its attributes).
    fn: the function of `args`.
    cpu_options: XLA compiler options when compiling for a CPU (e.g. `CONV_NET_CPU_OPTIONS`);
      ignored elsewhere, and by a JAX that does not know them.
    directory: the cache folder (default `default_dir()/traced`).

  Returns:
    The compiled function; it takes args of exactly these shapes and dtypes. A second call for
    the same shapes returns the same function (from another thread, once the first call has it:
    e.g. a thread that compiles ahead of time).
  """
  specs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), args)
  platform = jax.default_backend()
  options = cpu_options if platform == "cpu" else None
  key = _key(name, platform, str(jax.tree.structure(specs)),
             *(f"{s.shape}{s.dtype}" for s in jax.tree.leaves(specs)))
  memo = (key, str(options))
  with _COMPILING:
    one = _COMPILING_ONE.setdefault(memo, threading.Lock())
  with one:  # A second thread asking for the same function waits for the first one's.
    if memo not in _COMPILED:
      _COMPILED[memo] = _compile(fn, specs, options,
                                 _entry("traced", directory, key + ".stablehlo"))
  return _COMPILED[memo]


# What `compiled` has compiled in this process, by key and options, and a lock per key.
_COMPILED = {}
_COMPILING_ONE = {}
_COMPILING = threading.Lock()


def _compile(fn: Callable, specs, options: Optional[dict], entry: Optional[pathlib.Path]):
  traced, stored = None, _read(entry)
  if stored is not None:
    try:
      traced = jax.export.deserialize(bytearray(stored))
    except Exception:  # pylint: disable=broad-except  (a damaged entry: traced and written again)
      traced = None
  if traced is None:
    traced = jax.export.export(jax.jit(fn))(*specs)
    _write(entry, bytes(traced.serialize()))
  lowered = jax.jit(traced.call).lower(*specs)
  if not options:
    return lowered.compile()
  try:
    return lowered.compile(compiler_options=options)
  except jax.errors.JaxRuntimeError:  # A JAX that no longer has the options: its defaults.
    return lowered.compile()


def _to_json(tree):
  if isinstance(tree, dict):
    return {k: _to_json(v) for k, v in tree.items()}
  return {"shape": list(tree.shape), "dtype": str(tree.dtype)}


def _from_json(tree):
  if set(tree) == {"shape", "dtype"} and isinstance(tree["shape"], list):
    return jax.ShapeDtypeStruct(tuple(tree["shape"]), tree["dtype"])
  return {k: _from_json(v) for k, v in tree.items()}

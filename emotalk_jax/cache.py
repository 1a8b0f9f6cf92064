"""What generation would otherwise redo in every run, kept in a user cache folder: JAX's compiled
code (stage 1, stage 2, the speech encoder) and the param shapes the checkpoints are checked
against (tracing a model's init for them costs 0.3-1.3 s per model on a CPU).

The folder is `$EMOTALK_CACHE_DIR` if set (empty: no cache), else `$XDG_CACHE_HOME/emotalk_jax`
(`~/.cache/emotalk_jax`), with `xla/` and `param_shapes/` in it. A folder that cannot be made or
written is skipped: the work is then done as before. A compilation cache the user (or a test
session) already configured is left alone.
"""

import hashlib
import json
import os
import pathlib
import secrets
from typing import Any, Callable, Optional

import flax
import jax

# Compilations faster than this are not worth a file (JAX's default is 1 s, which would skip the
# speech encoder's and stage 1's on a fast machine).
MIN_COMPILE_SECONDS = 0.1
# The code that decides the models' param shapes: a change to any of it is a new cache key.
_MODEL_CODE = sorted((pathlib.Path(__file__).parent / "models").glob("*.py")) + [
    pathlib.Path(__file__).parent / "emotions.py"]


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


def param_shapes(name: str, config_json: str, compute: Callable[[], Any], directory=None) -> Any:
  """`compute()`, a nested dict of `jax.ShapeDtypeStruct` (a model's params, e.g. `jax.eval_shape`
  of its init), read from the cache when an earlier run stored it for the same `name`,
  `config_json`, model code (emotalk_jax/models, emotions.py) and JAX and Flax versions.

  Args:
    name: which model (e.g. its module).
    config_json: the model's config, as text.
    compute: what to run on a miss.
    directory: the cache folder (default `default_dir()/param_shapes`).
  """
  root = default_dir()
  folder = pathlib.Path(directory) if directory else root and root / "param_shapes"
  key = hashlib.sha256("\0".join([name, config_json, jax.__version__, flax.__version__]).encode())
  for path in _MODEL_CODE:
    key.update(path.read_bytes())
  entry = folder / f"{key.hexdigest()[:32]}.json" if folder else None
  if entry is not None and entry.is_file():
    try:
      return _from_json(json.loads(entry.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
      pass  # A damaged entry: computed and written again.
  shapes = compute()
  if entry is not None and _writable(folder):
    partial = entry.with_name(f".{entry.name}.{secrets.token_hex(4)}")
    try:
      partial.write_text(json.dumps(_to_json(shapes)))
      os.replace(partial, entry)  # Atomic: a concurrent run reads a whole entry or none.
    except OSError:
      partial.unlink(missing_ok=True)
  return shapes


def _to_json(tree):
  if isinstance(tree, dict):
    return {k: _to_json(v) for k, v in tree.items()}
  return {"shape": list(tree.shape), "dtype": str(tree.dtype)}


def _from_json(tree):
  if set(tree) == {"shape", "dtype"} and isinstance(tree["shape"], list):
    return jax.ShapeDtypeStruct(tuple(tree["shape"]), tree["dtype"])
  return {k: _from_json(v) for k, v in tree.items()}

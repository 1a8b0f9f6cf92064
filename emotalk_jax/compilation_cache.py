"""JAX's persistent compilation cache in a user cache folder: generation compiles stage 1, stage 2
and the speech encoder once per machine, not once per run.

The folder is `$EMOTALK_CACHE_DIR` if set (empty: no cache), else `$XDG_CACHE_HOME/emotalk_jax/xla`
(`~/.cache/emotalk_jax/xla`). A cache folder that cannot be made or written is skipped: generation
then compiles as before. A cache the user (or a test session) already configured is left alone.
"""

import os
import pathlib
from typing import Optional

import jax

# Compilations faster than this are not worth a file (JAX's default is 1 s, which would skip the
# speech encoder's and stage 1's on a fast machine).
MIN_COMPILE_SECONDS = 0.1


def default_dir() -> Optional[pathlib.Path]:
  """Where the cache lives (see the module docstring); None when `$EMOTALK_CACHE_DIR` is empty."""
  if "EMOTALK_CACHE_DIR" in os.environ:
    value = os.environ["EMOTALK_CACHE_DIR"]
    return pathlib.Path(value).expanduser() if value else None
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "emotalk_jax" / "xla"


def enable(directory=None) -> Optional[pathlib.Path]:
  """Points JAX's persistent compilation cache at `directory` (default `default_dir()`).

  Returns:
    The cache folder in use (possibly one configured before), or None when there is none.
  """
  configured = jax.config.jax_compilation_cache_dir
  if configured:
    return pathlib.Path(configured)
  path = pathlib.Path(directory) if directory else default_dir()
  if path is None:
    return None
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  if not os.access(path, os.W_OK | os.X_OK):
    return None
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  return path

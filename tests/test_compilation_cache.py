"""compilation_cache: a user cache folder for JAX's persistent compilation cache, skipped when it
cannot be written, and never overriding a cache already configured."""

import os
import pathlib

import jax
import pytest

from emotalk_jax import compilation_cache


@pytest.fixture
def unconfigured():
  """The cache options cleared for one test (the test session configures its own), then put
  back."""
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
  old = {n: getattr(jax.config, n) for n in names}
  jax.config.update("jax_compilation_cache_dir", None)
  yield
  for n, v in old.items():
    jax.config.update(n, v)


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.delenv("EMOTALK_CACHE_DIR", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert compilation_cache.default_dir() == tmp_path / "emotalk_jax" / "xla"
  monkeypatch.setenv("EMOTALK_CACHE_DIR", str(tmp_path / "mine"))
  assert compilation_cache.default_dir() == tmp_path / "mine"
  monkeypatch.setenv("EMOTALK_CACHE_DIR", "")
  assert compilation_cache.default_dir() is None


def test_enable_makes_the_folder_and_points_jax_at_it(unconfigured, monkeypatch, tmp_path):
  monkeypatch.setenv("EMOTALK_CACHE_DIR", str(tmp_path / "a" / "b"))
  assert compilation_cache.enable() == tmp_path / "a" / "b"
  assert (tmp_path / "a" / "b").is_dir()
  assert jax.config.jax_compilation_cache_dir == str(tmp_path / "a" / "b")
  assert (jax.config.jax_persistent_cache_min_compile_time_secs ==
          compilation_cache.MIN_COMPILE_SECONDS)


def test_a_read_only_folder_is_skipped(unconfigured, monkeypatch, tmp_path):
  locked = tmp_path / "locked"
  locked.mkdir()
  # As the permission check sees a folder the user may not write (chmod does not bind root).
  monkeypatch.setattr(os, "access", lambda path, mode: pathlib.Path(path) != locked)
  assert compilation_cache.enable(locked) is None
  assert jax.config.jax_compilation_cache_dir is None


def test_a_folder_that_cannot_be_made_is_skipped(unconfigured, tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  assert compilation_cache.enable(blocker / "xla") is None
  assert jax.config.jax_compilation_cache_dir is None


def test_an_empty_setting_turns_it_off(unconfigured, monkeypatch):
  monkeypatch.setenv("EMOTALK_CACHE_DIR", "")
  assert compilation_cache.enable() is None
  assert jax.config.jax_compilation_cache_dir is None


def test_a_cache_already_configured_is_kept(tmp_path):
  configured = jax.config.jax_compilation_cache_dir  # The test session's own.
  assert configured
  assert compilation_cache.enable(tmp_path / "other") == pathlib.Path(configured)
  assert jax.config.jax_compilation_cache_dir == configured

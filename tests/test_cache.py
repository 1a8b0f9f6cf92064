"""cache: a user cache folder for JAX's compilation cache and the models' param shapes, skipped
when it cannot be written, never overriding a compilation cache already configured."""

import json
import os
import pathlib
import threading

import jax
import numpy as np
import pytest

from emotalk_jax import cache


@pytest.fixture
def unconfigured():
  """The compilation cache options cleared for one test (the test session configures its own),
  then put back."""
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
  old = {n: getattr(jax.config, n) for n in names}
  jax.config.update("jax_compilation_cache_dir", None)
  yield
  for n, v in old.items():
    jax.config.update(n, v)


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.delenv("EMOTALK_CACHE_DIR", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert cache.default_dir() == tmp_path / "emotalk_jax"
  monkeypatch.setenv("EMOTALK_CACHE_DIR", str(tmp_path / "mine"))
  assert cache.default_dir() == tmp_path / "mine"
  monkeypatch.setenv("EMOTALK_CACHE_DIR", "")
  assert cache.default_dir() is None


def test_compilation_cache_makes_its_folder_and_points_jax_at_it(unconfigured, monkeypatch,
                                                                 tmp_path):
  monkeypatch.setenv("EMOTALK_CACHE_DIR", str(tmp_path / "a"))
  assert cache.enable_compilation_cache() == tmp_path / "a" / "xla"
  assert (tmp_path / "a" / "xla").is_dir()
  assert jax.config.jax_compilation_cache_dir == str(tmp_path / "a" / "xla")
  assert jax.config.jax_persistent_cache_min_compile_time_secs == cache.MIN_COMPILE_SECONDS


def test_a_read_only_folder_is_skipped(unconfigured, monkeypatch, tmp_path):
  locked = tmp_path / "locked"
  locked.mkdir()
  # As the permission check sees a folder the user may not write (chmod does not bind root).
  monkeypatch.setattr(os, "access", lambda path, mode: pathlib.Path(path) != locked)
  assert cache.enable_compilation_cache(locked) is None
  assert jax.config.jax_compilation_cache_dir is None


def test_a_folder_that_cannot_be_made_is_skipped(unconfigured, tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  assert cache.enable_compilation_cache(blocker / "xla") is None
  assert jax.config.jax_compilation_cache_dir is None


def test_an_empty_setting_turns_it_off(unconfigured, monkeypatch):
  monkeypatch.setenv("EMOTALK_CACHE_DIR", "")
  assert cache.enable_compilation_cache() is None
  assert jax.config.jax_compilation_cache_dir is None


def test_a_compilation_cache_already_configured_is_kept(tmp_path):
  configured = jax.config.jax_compilation_cache_dir  # The test session's own.
  assert configured
  assert cache.enable_compilation_cache(tmp_path / "other") == pathlib.Path(configured)
  assert jax.config.jax_compilation_cache_dir == configured


def _shapes():
  return {"dense": {"kernel": jax.ShapeDtypeStruct((3, 4), np.float32),
                    "bias": jax.ShapeDtypeStruct((4,), np.float32)}}


def test_param_shapes_are_computed_once_then_read(tmp_path):
  calls = []
  compute = lambda: calls.append(1) or _shapes()
  first = cache.param_shapes("model", '{"width": 4}', compute, tmp_path)
  again = cache.param_shapes("model", '{"width": 4}', compute, tmp_path)
  assert len(calls) == 1 and len(list(tmp_path.glob("*.json"))) == 1
  assert jax.tree.map(lambda s: (s.shape, str(s.dtype)), again) == jax.tree.map(
      lambda s: (s.shape, str(s.dtype)), first)
  cache.param_shapes("model", '{"width": 8}', compute, tmp_path)  # Another config: another key.
  assert len(calls) == 2


def test_a_damaged_entry_is_computed_again(tmp_path):
  cache.param_shapes("model", "{}", _shapes, tmp_path)
  (entry,) = tmp_path.glob("*.json")
  entry.write_text('{"dense": {"kernel": ')
  assert cache.param_shapes("model", "{}", _shapes, tmp_path)["dense"]["kernel"].shape == (3, 4)
  assert json.loads(entry.read_text())["dense"]["bias"]["shape"] == [4]


def test_arrays_are_computed_once_then_read_and_a_damaged_one_again(tmp_path):
  calls = []
  values = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
  compute = lambda: calls.append(1) or values
  np.testing.assert_array_equal(cache.array("features", "params-a", compute, tmp_path), values)
  again = cache.array("features", "params-a", compute, tmp_path)
  assert len(calls) == 1 and again.dtype == np.float32
  np.testing.assert_array_equal(again, values)
  cache.array("features", "params-b", compute, tmp_path)  # Other params: another key.
  assert len(calls) == 2
  for entry in tmp_path.glob("*.npy"):
    entry.write_bytes(entry.read_bytes()[:40])
  np.testing.assert_array_equal(cache.array("features", "params-a", compute, tmp_path), values)
  assert len(calls) == 3
  np.testing.assert_array_equal(cache.array("features", "params-a", compute, tmp_path), values)
  assert len(calls) == 3  # Written again whole.


@pytest.fixture
def fresh_code_digest():
  """The package code's hash recomputed for one test (and again after it)."""
  cache._code_digest.cache_clear()  # pylint: disable=protected-access
  yield
  cache._code_digest.cache_clear()  # pylint: disable=protected-access


def test_the_key_covers_the_package_code():
  names = {p.name for p in cache._CODE}  # pylint: disable=protected-access
  assert {"texture_model.py", "landmark_model.py", "whisper.py", "emotions.py",
          "pipeline.py"} <= names


def test_a_change_to_the_code_misses_the_cache(fresh_code_digest, monkeypatch, tmp_path):
  code = tmp_path / "model.py"
  code.write_text("WIDTH = 4\n")
  monkeypatch.setattr(cache, "_CODE", [code])
  calls = []
  compute = lambda: calls.append(1) or _shapes()
  cache.param_shapes("model", "{}", compute, tmp_path / "cache")
  cache.param_shapes("model", "{}", compute, tmp_path / "cache")
  assert len(calls) == 1
  code.write_text("WIDTH = 8\n")
  cache._code_digest.cache_clear()  # pylint: disable=protected-access  (as a new process would)
  cache.param_shapes("model", "{}", compute, tmp_path / "cache")
  assert len(calls) == 2


@pytest.fixture
def new_process():
  """Forgets what `compiled` compiled in this process, as a later run would start (and again
  after the test)."""
  cache._COMPILED.clear()  # pylint: disable=protected-access
  yield cache._COMPILED.clear  # pylint: disable=protected-access
  cache._COMPILED.clear()  # pylint: disable=protected-access


def _conv_net():
  """A small conv net, its params and an input; `traces` counts how often it is traced."""
  traces = []
  kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 8)).astype(np.float32)

  def net(params, x):
    traces.append(1)
    y = jax.lax.conv_general_dilated(x, params["kernel"], (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(y).sum(axis=(1, 2))

  x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype(np.float32)
  return net, {"kernel": kernel}, x, traces


def test_compiled_traces_once_then_reads_the_trace(new_process, tmp_path):
  net, params, x, traces = _conv_net()
  fn = cache.compiled("conv", net, params, x, cpu_options=cache.CONV_NET_CPU_OPTIONS,
                      directory=tmp_path)
  assert len(traces) == 1 and len(list(tmp_path.glob("*.stablehlo"))) == 1
  expected = np.asarray(jax.jit(lambda p, y: net(p, y))(params, x))
  traces.clear()
  # The CPU compiler options change the convolution's library, not its result.
  np.testing.assert_allclose(fn(params, x), expected, rtol=1e-5, atol=1e-5)
  assert cache.compiled("conv", net, params, x, cpu_options=cache.CONV_NET_CPU_OPTIONS,
                        directory=tmp_path) is fn  # Same process.
  new_process()
  again = cache.compiled("conv", net, params, x, directory=tmp_path)
  assert not traces  # Read from the folder, not traced.
  np.testing.assert_allclose(again(params, x), expected, rtol=1e-5, atol=1e-5)
  # Other shapes: another entry.
  cache.compiled("conv", net, params, x[:1], directory=tmp_path)
  assert len(traces) == 1 and len(list(tmp_path.glob("*.stablehlo"))) == 2


def test_a_damaged_trace_is_traced_again(new_process, tmp_path):
  net, params, x, _ = _conv_net()
  cache.compiled("conv", net, params, x, directory=tmp_path)
  (entry,) = tmp_path.glob("*.stablehlo")
  entry.write_bytes(entry.read_bytes()[:100])
  new_process()
  fn = cache.compiled("conv", net, params, x, directory=tmp_path)
  np.testing.assert_allclose(fn(params, x), jax.jit(net)(params, x), rtol=1e-5, atol=1e-5)
  assert len(entry.read_bytes()) > 100  # Written again, whole.


def test_compiled_works_without_a_cache_folder(new_process, monkeypatch):
  monkeypatch.setenv("EMOTALK_CACHE_DIR", "")
  net, params, x, _ = _conv_net()
  np.testing.assert_allclose(cache.compiled("conv", net, params, x)(params, x),
                             jax.jit(net)(params, x), rtol=1e-5, atol=1e-5)


def test_threads_asking_at_once_share_one_compilation(new_process, tmp_path):
  net, params, x, traces = _conv_net()
  results = []
  threads = [threading.Thread(target=lambda: results.append(
      cache.compiled("conv", net, params, x, directory=tmp_path))) for _ in range(3)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert len(traces) == 1
  assert results[0] is results[1] is results[2]

"""Shared pytest fixtures: the repo's bundled media, the optional ../shared/data tree, the tiny TFDS
datasets made from the bundled GRID clip, and hooks that break a training run at a given step."""

import os
import pathlib
import signal
import tempfile

import pytest

# jax.random's partitionable threefry (JAX's default since 0.5) makes XLA:CPU compile every random
# draw ~10x slower: on 2 cores, initialising the tiny TextureNet (one draw per kernel) compiles for
# ~40 s instead of ~8 s. The tests check no particular random values (each compares runs of one
# process, or of this process and its subprocesses, which inherit the variable), so they use the
# classic implementation; run with JAX_THREEFRY_PARTITIONABLE=true for JAX's default.
os.environ.setdefault("JAX_THREEFRY_PARTITIONABLE", "false")
# XLA:CPU's LLVM backend at -O0 and without its fusion emitters: the suite is mostly compiling tiny
# models once or twice each, and on 2 cores the two together compile the texture net's train step
# in a quarter of the time (6 s vs 23 s). The programs compute the same; only the machine code is
# less optimised. Subprocesses inherit the flags.
os.environ["XLA_FLAGS"] = " ".join(
    filter(None, [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0",
                  "--xla_cpu_use_fusion_emitters=false"]))
# What generation caches across runs (emotalk_jax.cache) goes to a folder of this session's, also
# for the subprocesses tests start: never the user's cache.
os.environ["EMOTALK_CACHE_DIR"] = tempfile.mkdtemp(prefix="emotalk_test_cache_")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("EMOTALK_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


# The test files that take longest (pytest --durations, 2 cores), run first: pytest-xdist hands
# whole files to its workers in collection order (`--dist loadfile --no-loadscope-reorder` in
# pyproject.toml), and one of these started last ran on alone while the other worker had finished.
LONGEST_FIRST = ("test_train_texture.py", "test_train_landmark.py", "test_notebooks.py",
                 "test_texture_model.py", "test_generate_pipeline.py", "test_landmark_baselines.py",
                 "test_finetune.py", "test_demo.py")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # Stable: the rest keep order.


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """Real media from ../shared/data (research-only licences, never copied into the repo)."""
  if not (SHARED_DATA / "README.md").exists():
    pytest.skip(f"real-media tests need ../shared/data (not found at {SHARED_DATA})")
  return SHARED_DATA


@pytest.fixture(scope="session")
def grid_clip():
  """The bundled GRID clip preprocessed at clip_datasets.SIZE (64x64), once per session."""
  import clip_datasets  # pylint: disable=g-import-not-at-top  (tests/ is on sys.path under pytest)
  return clip_datasets.preprocessed_grid()


@pytest.fixture(scope="session")
def dataset_dir(grid_clip, tmp_path_factory) -> str:
  """The tiny train/test dataset both trainers, the baselines and the stage registry use:
  pseudo-clips of the GRID clip (clip_datasets.CUTS). Its version directory, readable by path (also
  from subprocesses)."""
  import clip_datasets  # pylint: disable=g-import-not-at-top
  return clip_datasets.build(clip_datasets.tiny_sources(grid_clip), tmp_path_factory.mktemp("tfds"),
                             clip_datasets.SIZE).data_dir


@pytest.fixture(scope="session")
def pipeline_dataset(grid_clip, tmp_path_factory):
  """(builder, sources) of the input pipeline's dataset: one split of edge cases (a clip shorter
  than the window, a silent one, an inexact label, a synthetic clip that encodes the frame index),
  which would spoil the trainers' runs, hence a second dataset."""
  import clip_datasets  # pylint: disable=g-import-not-at-top
  sources = clip_datasets.pipeline_sources(grid_clip)
  builder = clip_datasets.build({"train": sources}, tmp_path_factory.mktemp("tfds_pipeline"),
                                clip_datasets.SIZE)
  return builder, sources


@pytest.fixture(scope="session")
def xla_cache_dir(tmp_path_factory) -> str:
  return str(tmp_path_factory.mktemp("xla_cache"))


_CACHE_OPTIONS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                  "jax_persistent_cache_min_entry_size_bytes")


def _use_compilation_cache(cache_dir, min_compile_time_secs):
  """Points JAX's persistent XLA cache at `cache_dir`; returns the options it had before."""
  import jax  # pylint: disable=g-import-not-at-top
  old = {n: getattr(jax.config, n) for n in _CACHE_OPTIONS}
  for n, v in zip(_CACHE_OPTIONS, (cache_dir, min_compile_time_secs, 0)):
    jax.config.update(n, v)
  return old


@pytest.fixture(scope="session", autouse=True)
def session_compilation_cache(xla_cache_dir):
  """A persistent XLA cache (fresh for each session) for every test: jit caches in memory are per
  function object, so modules that build the same model again (each a new Flax module, a new
  `jax.jit(model.init)`) recompile the same program; on 2 CPU cores an init with random weights
  compiles for tens of seconds. Only programs that took over half a second to compile are kept:
  the cache then holds what is worth reading back. The executables are XLA's own, unchanged."""
  import jax  # pylint: disable=g-import-not-at-top
  old = _use_compilation_cache(xla_cache_dir, 0.5)
  yield
  for n, v in old.items():
    jax.config.update(n, v)


@pytest.fixture(scope="module")
def compilation_cache(xla_cache_dir):
  """Every compiled program cached while a module runs (not only the slow ones), in the session's
  directory: the tiny training runs of several modules compile the same steps again and again."""
  import jax  # pylint: disable=g-import-not-at-top
  old = _use_compilation_cache(xla_cache_dir, 0.0)
  yield
  for n, v in old.items():
    jax.config.update(n, v)


@pytest.fixture
def break_training(monkeypatch):
  """Breaks the next training run from inside the test, wrapping the train step its trainer makes
  (`emotalk_jax.train.loop.make_train_step`, looked up when the run starts; later runs are left
  alone): `break_training(nan_at=N)` multiplies the landmarks of the batch of the run's Nth step by
  NaN; `break_training(sigterm_after=N)` sends this process a SIGTERM after the run's Nth step."""
  from emotalk_jax.train import loop  # pylint: disable=g-import-not-at-top

  def arm(nan_at=None, sigterm_after=None):
    make = loop.make_train_step

    def make_broken(*args, **kwargs):
      monkeypatch.setattr(loop, "make_train_step", make)  # Only this run.
      step_fn = make(*args, **kwargs)
      done = [0]

      def broken(state, batch, *rest):
        if done[0] + 1 == nan_at:
          batch = dict(batch, landmarks=batch["landmarks"] * float("nan"))
        out = step_fn(state, batch, *rest)
        done[0] += 1
        if done[0] == sigterm_after:
          os.kill(os.getpid(), signal.SIGTERM)
        return out

      return broken

    monkeypatch.setattr(loop, "make_train_step", make_broken)

  return arm

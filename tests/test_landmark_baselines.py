"""Stage 1 baselines (static, mean motion) on conftest's tiny dataset, and `compare`."""

import json
import pathlib

import numpy as np
import pytest

from data_pipelines import input_pipeline
from emotalk_jax.evaluate import lmd
from emotalk_jax.train import landmark as train_landmark
from emotalk_jax.train import landmark_baselines

import clip_datasets  # pylint: disable=g-bad-import-order  (tests/ is on sys.path under pytest)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("compilation_cache")
# One constant displacement [68, 2] shared by every frame of every clip of `shifted_dataset_dir`.
SHIFT = (np.random.default_rng(0).normal(size=(68, 2)) * 0.02).astype(np.float32)

@pytest.fixture(scope="module")
def shifted_dataset_dir(grid_clip, tmp_path_factory) -> str:
  """The clips of conftest's `dataset_dir`, but every frame's landmarks are its clip's neutral
  landmarks + SHIFT."""
  sources = clip_datasets.tiny_sources(grid_clip)
  for split in sources.values():
    for src in split.values():
      src["landmarks"] = np.broadcast_to(src["neutral_landmarks"] + SHIFT,
                                         src["landmarks"].shape).astype(np.float32)
  return clip_datasets.build(sources, tmp_path_factory.mktemp("tfds_shifted"),
                             clip_datasets.SIZE).data_dir


def _config(dataset_dir, **overrides):
  return clip_datasets.stage_config("landmark", dataset_dir, **overrides)


def test_static_baseline_equals_a_direct_computation(dataset_dir):
  config = _config(dataset_dir, num_eval_batches=2)
  result = landmark_baselines.evaluate_baselines(config, num_train_batches=2)
  assert set(result) == {"static", "mean_motion"}
  lmd_keys = {"m_lmd", "f_lmd", "audio_m_lmd", "audio_f_lmd", "num_windows", "num_audio_windows"}
  lip_keys = {"lip_r", "lip_std_ratio", "lip_error", "num_lip_clips"}  # Test clips with audio.
  assert all(set(r) == lmd_keys | lip_keys for r in result.values())
  # The same test windows as train_landmark.evaluate: unshuffled, the config's seed, window, eval
  # batch size.
  it = input_pipeline.InputIterator(dataset_dir,
                                    config.test_split,
                                    batch_size=config.eval_batch_size,
                                    window=config.window,
                                    seed=config.seed,
                                    shuffle=False)
  m, f = [], []
  for _ in range(2):
    batch = next(it)
    pred = np.broadcast_to(batch["neutral_landmarks"][:, None], batch["landmarks"].shape)
    m.append(float(lmd.m_lmd(pred, batch["landmarks"])))
    f.append(float(lmd.f_lmd(pred, batch["landmarks"])))
  assert result["static"]["m_lmd"] == pytest.approx(np.mean(m), rel=1e-5)
  assert result["static"]["f_lmd"] == pytest.approx(np.mean(f), rel=1e-5)
  # The GRID speaker's mouth moves: the static face is wrong.
  assert result["static"]["m_lmd"] > 0.5
  # Every clip of this dataset has audio: the audio-only figures are the same windows.
  assert result["static"]["num_audio_windows"] == result["static"][
      "num_windows"] == 2 * config.eval_batch_size
  assert result["static"]["audio_m_lmd"] == pytest.approx(result["static"]["m_lmd"])
  # Its mean displacement is the mean over the train windows' frames.
  it = input_pipeline.InputIterator(dataset_dir, config.train_split, batch_size=config.batch_size,
                                    window=config.window, seed=config.seed, shuffle=False)
  shifts = [b["landmarks"] - b["neutral_landmarks"][:, None] for b in (next(it), next(it))]
  np.testing.assert_allclose(train_landmark.mean_displacement(config, num_train_batches=2),
                             np.concatenate(shifts).mean(axis=(0, 1)), atol=1e-6)


def test_mean_motion_is_exact_when_every_clip_moves_the_same(shifted_dataset_dir):
  config = _config(shifted_dataset_dir)
  # One pass.
  np.testing.assert_allclose(train_landmark.mean_displacement(config), SHIFT, atol=1e-6)
  result = landmark_baselines.evaluate_baselines(config)
  assert result["mean_motion"]["m_lmd"] < 1e-3 and result["mean_motion"]["f_lmd"] < 1e-3
  assert result["static"]["f_lmd"] > 1.0


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_compare_a_trained_workdir_and_the_cli(dataset_dir, tmp_path, capsys):
  config = _config(dataset_dir, num_train_steps=2)
  train_landmark.train_and_evaluate(config, tmp_path)
  result = landmark_baselines.compare(config, tmp_path, num_train_batches=1)
  assert {"model", "static", "mean_motion", "improvement_pct"} <= set(result)
  assert result["checkpoint_step"] == 2
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert result["model"]["m_lmd"] == pytest.approx([r for r in records if "eval/m_lmd" in r
                                                   ][-1]["eval/m_lmd"],
                                                   rel=1e-5)  # The training run's own eval.
  for name in ("static", "mean_motion"):
    base, pct = result[name], result["improvement_pct"][name]
    assert pct["m_lmd"] == pytest.approx(100 * (base["m_lmd"] - result["model"]["m_lmd"]) /
                                         base["m_lmd"])

  from emotalk_jax.cli import main as cli  # pylint: disable=g-import-not-at-top
  rc = cli.main([
      "evaluate", "landmark", "--config",
      str(REPO_ROOT / "configs" / "landmark_test.py"), "--workdir",
      str(tmp_path), "--checkpoint=latest", "--num_train_batches=1",
      f"--config.dataset={dataset_dir}", "--config.dataset_config="
  ])
  assert rc == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed["checkpoint_step"] == 2
  assert printed["static"]["m_lmd"] == pytest.approx(result["static"]["m_lmd"], rel=1e-5)
  rc = cli.main([
      "evaluate", "landmark", "--config",
      str(REPO_ROOT / "configs" / "landmark_test.py"), "--workdir",
      str(tmp_path / "nothing"), f"--config.dataset={dataset_dir}", "--config.dataset_config="
  ])
  assert rc == 2 and "no checkpoints directory" in capsys.readouterr().err

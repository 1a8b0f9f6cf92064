"""Stage 2 evaluation: the thin-plate-spline baseline, and model vs baselines on held-out clips
(+ CLI)."""

import json
import pathlib

import jax
import numpy as np
import pytest

# Keeps TF off GPUs first.
from data_pipelines import input_pipeline  # pylint: disable=unused-import
from emotalk_jax import checkpoints
from emotalk_jax.models import texture_losses
from emotalk_jax.models import texture_model
from emotalk_jax.train import texture as train_texture
from emotalk_jax.train import texture_baselines

import clip_datasets  # tests/ is on sys.path under pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_tps_warp_moves_a_landmark_dot_to_its_target():
  size = 64
  from emotalk_jax.media import face
  from emotalk_jax.media import landmarks  # pylint: disable=g-import-not-at-top
  source = landmarks.normalize(face.template(size), size)
  target = source.copy()
  lower_lip = [6, 7, 8, 9, 10, 55, 56, 57, 58, 59, 65, 66, 67]
  target[lower_lip] += [0.03, 0.15]  # The jaw and lower lip drop ~5 px (mouth opens), 1 px right.
  image = np.zeros((size, size, 3), np.uint8)
  x, y = np.rint(((source[57] + 1) * size - 1) / 2).astype(int)
  image[y - 1:y + 2, x - 1:x + 2] = 255
  warped = texture_baselines.tps_warp(image, source, target)
  ty, tx = np.unravel_index(np.argmax(warped.sum(-1)), warped.shape[:2])
  expected = ((target[57] + 1) * size - 1) / 2
  assert abs(tx - expected[0]) <= 1 and abs(ty - expected[1]) <= 1
  np.testing.assert_array_equal(texture_baselines.tps_warp(image, source, source), image)


def test_improvement_signs():
  better = texture_baselines.improvement({"psnr": 22.0, "ssim": 0.8, "f_lmd": 1.0},
                                         {"psnr": 20.0, "ssim": 0.5, "f_lmd": 2.0})
  assert better == pytest.approx({"psnr": 10.0, "ssim": 60.0, "f_lmd": 50.0})


@pytest.mark.slow  # Model, TPS and face landmarks on 256 px test frames, twice: minutes on 2 cores.
def test_compare_and_cli_on_a_tiny_dataset(dataset_dir, tmp_path, capsys):
  # Conftest's tiny dataset, one test clip.
  config = clip_datasets.stage_config("texture", dataset_dir)
  params = texture_model.init_params(texture_model.create_model(config), jax.random.PRNGKey(0),
                                     config.image_size)
  npz = checkpoints.export(params, config, tmp_path / "texture.npz")
  result = texture_baselines.compare(config, npz, frame_stride=6, max_frames=4, max_clips=1)
  assert result["num_clips"] == len(result["per_clip"]) == 1
  assert result["num_frames"] == 4 and result["image_size"] == 32
  for method in texture_baselines.METHODS:
    assert 10 < result[method]["psnr"] < 60 and 0 < result[method]["ssim"] <= 1 and result[method][
        "f_lmd"] >= 0
    assert 5 < result[method]["mouth_psnr"] < 60 and 0 < result[method]["mouth_ssim"] <= 1
  # The untrained net is the TPS warp plus a little synthesis (occlusion ~0.95): close to the TPS
  # baseline.
  assert abs(result["model"]["psnr"] - result["tps"]["psnr"]) < 3
  assert set(result["improvement_pct"]) == {"copy", "tps"}
  # The clip's mouth moves. The copied first frame shows none of it (dlib's reading still moves
  # a little with the box); the warp follows the true landmarks.
  motion = result["mouth_motion"]
  assert all(motion[m]["num_clips"] == 1 for m in motion)
  assert motion["copy"]["std_ratio"] < 0.5 * motion["tps"]["std_ratio"]
  for baseline in ("copy", "tps"):
    paired = result["paired"][baseline]["psnr"]
    assert paired["num_clips"] == 1 and paired["verdict"] == "unknown" and paired["ci95"] is None
    assert paired["mean"] == pytest.approx(result["model"]["psnr"] - result[baseline]["psnr"],
                                           abs=1e-6)
  from emotalk_jax.cli import main as cli  # pylint: disable=g-import-not-at-top
  assert cli.main([
      "evaluate", "texture", "--config",
      str(REPO_ROOT / "configs" / "texture_test.py"), "--workdir",
      str(npz), f"--config.dataset={dataset_dir}", "--config.dataset_config=", "--max_frames=2",
      "--frame_stride=10", "--max_clips=1"
  ]) == 0
  out = capsys.readouterr().out
  printed = json.loads(out[out.index("{\n"):])  # After any progress text.
  assert printed["num_frames"] == 2 and set(printed["per_clip"]) == set(result["per_clip"])


def test_paired_difference_verdicts():
  rng = np.random.default_rng(0)
  baseline = [rng.normal(1.3, 0.3, 20) for _ in range(12)]
  better = texture_baselines.paired_difference(
      [b - 0.1 + rng.normal(0, 0.02, 20) for b in baseline], baseline, higher_is_better=False)
  assert better["verdict"] == "better"
  assert better["clips_better"] == 12 and better["num_clips"] == 12
  assert better["ci95"][0] < better["mean"] < better["ci95"][1] < 0
  assert better["mean"] == pytest.approx(-0.1, abs=0.02)
  # Higher is better for PSNR: the same numbers read the other way round.
  assert texture_baselines.paired_difference([b - 0.1 for b in baseline], baseline,
                                             True)["verdict"] == "worse"
  # Half the clips a bit better, half a bit worse: the interval spans 0.
  mixed = [b + (0.05 if i % 2 else -0.05) for i, b in enumerate(baseline)]
  tie = texture_baselines.paired_difference(mixed, baseline, higher_is_better=False)
  assert tie["verdict"] == "tie" and tie["ci95"][0] < 0 < tie["ci95"][1]
  assert tie["clips_better"] == 6


def test_mouth_scores_read_only_the_box_around_the_true_mouth():
  from emotalk_jax.media import face
  from emotalk_jax.media import landmarks  # pylint: disable=g-import-not-at-top
  size = 64
  lm = landmarks.normalize(face.template(size), size)[None]
  rng = np.random.default_rng(0)
  truth = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
  x0, y0, x1, y1 = texture_losses.mouth_box(lm, size)[0]
  away = truth.copy()
  away[:, :int(y0) - 1] = 0  # Everything above the mouth box differs.
  scores = texture_baselines.mouth_scores(away, truth, lm)
  assert scores["mouth_psnr"][0] == 100.0 and scores["mouth_ssim"][0] == pytest.approx(1.0)
  inside = truth.copy()
  inside[:, int((y0 + y1) / 2), int((x0 + x1) / 2)] ^= 255  # One pixel at the mouth's centre.
  scores = texture_baselines.mouth_scores(inside, truth, lm)
  assert 30 < scores["mouth_psnr"][0] < 60 and scores["mouth_ssim"][0] < 1.0
  # A 32-px frame's mouth is narrower than SSIM's 11-px window: its box grows to fit it.
  small = landmarks.normalize(face.template(32), 32)[None]
  assert texture_baselines.mouth_scores(truth[:, :32, :32], truth[:, :32, :32],
                                        small)["mouth_ssim"][0] == pytest.approx(1.0)

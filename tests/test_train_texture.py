"""Stage 2 training end to end on a tiny real TFDS dataset (pseudo-clips of the bundled GRID clip,
64x64).

Covers: 1 device == 8 simulated CPU devices for a train step, exact resume after SIGTERM, NaN stop,
checkpoints, metrics.jsonl / sample grids, the `emotalk train texture` CLI, loading the generator
from a workdir and an npz (with a clear error for params of another model), and that training on
real frame pairs
from ../shared/data lowers the L1 substantially.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# Keeps TF off GPUs first.
from data_pipelines import input_pipeline  # pylint: disable=unused-import
from emotalk_jax import checkpoints
from emotalk_jax.media import preprocess
from emotalk_jax.models import texture_model
from emotalk_jax import stages
from emotalk_jax.train import loop as train_lib
from emotalk_jax.train import texture as train_texture

import clip_datasets  # tests/ is on sys.path under pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = clip_datasets.SIZE


def _config(dataset_dir, **overrides):
  return clip_datasets.stage_config("texture", dataset_dir, **overrides)


pytestmark = pytest.mark.usefixtures("compilation_cache")


@pytest.fixture(scope="module")
def reference_run(dataset_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  return workdir, train_texture.train_and_evaluate(_config(dataset_dir), workdir)


def _params(workdir, step=None):
  ckpt = checkpoints.CheckpointManager(pathlib.Path(workdir) / "checkpoints")
  try:
    return ckpt.restore_params(step)
  finally:
    ckpt.close()


def _assert_trees_close(a, b, **kw):
  import jax  # pylint: disable=g-import-not-at-top
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_run_writes_metrics_grids_and_checkpoints(reference_run):
  workdir, result = reference_run
  assert result["step"] == 4 and not result["preempted"]
  assert np.isfinite(
      result["train/loss"]) and 5 < result["eval/psnr"] < 60 and 0 < result["eval/ssim"] <= 1
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in records if "train/loss" in r]
  assert [r["step"] for r in train] == [1, 2, 3, 4]
  assert all({"train/l1", "train/adversarial", "train/feature_matching", "train/discriminator_loss",
              "train/flow_smoothness"} <= r.keys() for r in train)
  assert "train/perceptual" not in train[0]  # No VGG weights in the test config: the term is off.
  assert [r["step"] for r in records if "eval/psnr" in r] == [2, 4]
  grids = sorted((workdir / "samples").glob("*.png"))
  assert [p.name for p in grids] == ["step_000002.png", "step_000004.png"]
  from emotalk_jax.media import video_io  # pylint: disable=g-import-not-at-top
  grid = video_io.read_image(grids[-1])
  # 2 rows of neutral | landmarks | generated | truth | flow.
  assert grid.shape == (2 * 32, 5 * 32, 3)
  assert json.loads((workdir / "config.json").read_text())["image_size"] == 32
  ckpt = checkpoints.CheckpointManager(workdir / "checkpoints", best_metric="psnr", best_mode="max")
  try:
    assert ckpt.latest_step() == 4 and set(ckpt.all_steps()) == {4, ckpt.best_step()}
  finally:
    ckpt.close()


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_resume_after_sigterm_is_exact(dataset_dir, reference_run, break_training, tmp_path):
  ref_dir, ref = reference_run
  break_training(sigterm_after=1)
  first = train_texture.train_and_evaluate(_config(dataset_dir), tmp_path)
  assert first["preempted"] and first["step"] == 1
  second = train_texture.train_and_evaluate(_config(dataset_dir), tmp_path)
  assert second["step"] == 4 and not second["preempted"]
  _assert_trees_close(_params(tmp_path), _params(ref_dir), rtol=1e-5, atol=1e-6)
  assert second["eval/psnr"] == pytest.approx(ref["eval/psnr"], rel=1e-5)


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_nan_stops_with_step_and_last_checkpoint(dataset_dir, break_training, tmp_path):
  break_training(nan_at=3)
  with pytest.raises(FloatingPointError,
                     match=r"at step 3; last good checkpoint: step 2 in .*checkpoints"):
    train_texture.train_and_evaluate(_config(dataset_dir), tmp_path)
  ckpt = checkpoints.CheckpointManager(tmp_path / "checkpoints")
  assert ckpt.all_steps() == [2]
  ckpt.close()


@pytest.mark.slow  # Compiles another texture model variant: minutes on 2 CPU cores.
def test_cli_train_texture_and_load_generator(dataset_dir, reference_run, tmp_path, capsys):
  from emotalk_jax.cli import main as cli  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "run"
  rc = cli.main([
      "train", "texture", "--config",
      str(REPO_ROOT / "configs" / "texture_test.py"), "--workdir",
      str(workdir), "--config.num_train_steps=2", f"--config.dataset={dataset_dir}",
      "--config.dataset_config=", "--config.model.dtype=bfloat16"
  ])
  assert rc == 0
  summary = json.loads(capsys.readouterr().out)
  assert summary["step"] == 2 and np.isfinite(summary["train/loss"])
  # Inference params from a workdir (best / latest) and from an exported npz.
  ref_dir, _ = reference_run
  model, params, config = stages.get("texture").load(ref_dir, checkpoint="latest")
  assert config.image_size == 32 and model.width == 4
  _assert_trees_close(params, _params(ref_dir, 4)["generator"])
  npz = pathlib.Path(
      stages.get("texture").export_run(ref_dir,
                                       tmp_path / "export" / "texture.npz",
                                       checkpoint="latest")["output"])
  _, loaded, _ = stages.get("texture").load(npz)
  _assert_trees_close(loaded, params)
  # Params of another width: a clear error naming what differs.
  config.model.width = 8
  with pytest.raises(
      ValueError,
      match=r"do not fit the model \(\d+ differ\): .*kernel: shape \(3, 3, \d+, 4\), "
      r"the model expects \(3, 3, \d+, 8\)"):
    stages.get("texture").load(npz, config=config)
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    stages.get("texture").load(tmp_path, config=config)


@pytest.mark.slow  # Compiles another texture model variant: minutes on 2 CPU cores.
def test_warm_start_strict_partial_and_from_an_exported_generator(dataset_dir, reference_run,
                                                                  tmp_path):
  """init_from takes another run's workdir or its exported generator .npz (the shipped sample
  checkpoint's form); with another emotion_dim only init_from_partial can, and then the reshaped
  emotion layers start fresh while everything else is the reference's; a missing file is named.
  Learning rates of 0 keep the params where the warm start put them; the landmark, mouth,
  decoder-frame, correction and occlusion terms are on, and the logged generator loss is their
  weighted sum with the others."""
  ref_dir, _ = reference_run
  npz = pathlib.Path(
      stages.get("texture").export_run(ref_dir, tmp_path / "generator.npz",
                                       checkpoint="latest")["output"])
  changed = dict(init_from=str(ref_dir),
                 num_train_steps=2,
                 learning_rate=0.0,
                 disc_learning_rate=0.0,
                 landmark_l1_weight=1.0,
                 mouth_l1_weight=1.0,
                 occlusion_weight=1.0,
                 rgb_l1_weight=0.5,
                 correction_weight=0.5)
  config = _config(dataset_dir, **changed)
  config.model.emotion_dim = 6
  for source in (ref_dir, npz):
    config.init_from = str(source)
    with pytest.raises(ValueError, match=r"init_from params of .* do not fit the model .*emotion"):
      train_texture.train_and_evaluate(config, tmp_path / "strict" / source.name)
  config.init_from = str(tmp_path / "missing.npz")
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    train_texture.train_and_evaluate(config, tmp_path / "run_missing")
  config.init_from, config.init_from_partial = str(npz), True
  summary = train_texture.train_and_evaluate(config, tmp_path / "partial")
  assert np.isfinite(summary["train/landmark_l1"]) and summary["train/occlusion"] > 0
  assert summary["train/mouth_l1"] > 0
  assert summary["train/correction"] > 0  # The reference run's texture branch paints.
  weights = train_texture.loss_weights(config, with_vgg=False)
  assert weights["rgb_l1"] == 0.5 and weights["perceptual"] == 0.0
  assert summary["train/generator_loss"] == pytest.approx(
      sum(float(w * summary[f"train/{name}"]) for name, w in weights.items() if w > 0), rel=1e-4)
  ref, new = checkpoints.load_params_npz(npz), _params(tmp_path / "partial", 2)["generator"]
  _assert_trees_close(new["motion"], ref["motion"])
  _assert_trees_close(new["decoder"], ref["decoder"])
  assert new["emotion"]["Dense_1"]["kernel"].shape == (
      6, 6) != ref["emotion"]["Dense_1"]["kernel"].shape


@pytest.mark.parametrize("name",
                         ["texture", "texture_128", "texture_test", "texture_sample", "texture_av",
                          "texture_av256"])
def test_configs_build_models_and_optimizers(name):
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{name}").get_config()
  texture_model.create_model(config)
  texture_model.create_discriminator(config)
  train_texture.make_optimizer(config)
  assert config.batch_size % 8 == 0 or name in ("texture_sample", "texture_av", "texture_av256")
  assert config.image_size == {"texture": 256, "texture_av256": 256, "texture_test": 32}.get(
      name, 128)
  assert len(config.vgg_layers) == len(config.vgg_layer_weights)
  if config.init_from:  # A path relative to the repository, where the run command is given.
    assert (REPO_ROOT / config.init_from).is_file()


def one_step(dataset_dir, init_npz, out_npz):
  """One jitted, sharded train step (generator + discriminator) from the params in `init_npz` on all
  visible devices; writes the new params (+ metrics) as .npz. SGD keeps the comparison meaningful
  (see
  the stage-1 test)."""
  import jax  # pylint: disable=g-import-not-at-top
  config = _config(dataset_dir,
                   optimizer="sgd",
                   lr_schedule="constant",
                   warmup_steps=0,
                   learning_rate=0.1,
                   disc_learning_rate=0.1)
  mesh = input_pipeline.make_mesh()
  it = input_pipeline.InputIterator(dataset_dir, config.train_split, batch_size=config.batch_size,
                                    window=config.window, seed=config.seed, mesh=mesh,
                                    shuffle_buffer=config.shuffle_buffer)
  tx, schedule = train_texture.make_optimizer(config)
  rng = jax.random.split(jax.random.PRNGKey(config.seed))[1]
  state = train_lib.replicate(
      train_lib.TrainState.create(checkpoints.load_params_npz(init_npz), tx, rng), mesh)
  loss_fn = train_texture.make_loss_fn(texture_model.create_model(config),
                                       texture_model.create_discriminator(config), config)
  step = train_lib.make_train_step(loss_fn, tx, mesh, schedule, with_extra=True)
  state, metrics = step(state, next(it), train_lib.replicate({}, mesh))
  checkpoints.save_params_npz(state.params, out_npz)
  np.savez(
      str(out_npz) + ".metrics.npz", **{
          k: np.asarray(v) for k, v in jax.device_get(metrics).items()
      })
  return jax.device_count()


@pytest.mark.slow
def test_one_step_same_on_1_and_8_devices(dataset_dir, tmp_path):
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {str(REPO_ROOT / "tests")!r})
      import jax
      assert jax.device_count() == 8, jax.devices()
      import test_train_texture
      test_train_texture.one_step({dataset_dir!r}, {str(tmp_path / "init.npz")!r},
                                  {str(tmp_path / "eight.npz")!r})
      """)
  import jax  # pylint: disable=g-import-not-at-top
  init = train_texture.init_params(_config(dataset_dir), jax.random.PRNGKey(0))
  # An untrained generator returns the warped frame exactly, and for a pair whose target is its own
  # source
  # that is the target: L1's sign(0) there would flip with float noise between the two shardings.
  # Such a
  # pair's spline is also the identity, sampling exactly at pixel centres, where the bilinear
  # sampler's
  # gradient jumps (floor): a small residual flow moves every sample off the grid.
  init["generator"]["decoder"]["to_residual"]["kernel"] += 0.01
  for level in range(3):
    init["generator"]["motion"][f"head{level}"]["bias"] += np.array([0.013, -0.011, 0.0],
                                                                    np.float32)
  checkpoints.save_params_npz(init, tmp_path / "init.npz")
  devices = "--xla_force_host_platform_device_count=8"
  env = dict(os.environ, XLA_FLAGS=f"{os.environ['XLA_FLAGS']} {devices}", JAX_PLATFORMS="cpu")
  proc = subprocess.Popen([sys.executable, "-c", script],
                          env=env,
                          cwd=REPO_ROOT,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True)
  assert one_step(dataset_dir, tmp_path / "init.npz",
                  tmp_path / "one.npz") == jax.device_count() == 1
  out, _ = proc.communicate(timeout=400)
  assert proc.returncode == 0, out[-4000:]
  one, eight = checkpoints.load_params_npz(tmp_path / "one.npz"), checkpoints.load_params_npz(
      tmp_path / "eight.npz")
  _assert_trees_close(one, eight, rtol=1e-4, atol=1e-6)
  with np.load(tmp_path / "one.npz.metrics.npz") as m1, np.load(tmp_path /
                                                                "eight.npz.metrics.npz") as m8:
    assert set(m1.files) == set(
        m8.files) >= {"loss", "l1", "adversarial", "discriminator_loss", "grad_norm"}
    for k in m1.files:
      np.testing.assert_allclose(m1[k], m8[k], rtol=1e-4, atol=1e-6, err_msg=k)
  for net in ("generator", "discriminator"):  # Both networks moved.
    assert not all(
        np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(init[net]), jax.tree.leaves(one[net]))), net


@pytest.mark.slow
def test_training_on_real_frame_pairs_lowers_l1_substantially(shared_data, tmp_path):
  """Real frames of a MEAD clip from ../shared/data (64x64 crops, trained at 32), driven from the
  clip's first
  frame: the L1 of the last steps is well under that of the first (an untrained net is the TPS
    warp)."""
  from emotalk_jax.media import video_io  # pylint: disable=g-import-not-at-top
  clip = preprocess.preprocess_decoded(video_io.read_video(
      shared_data / "video" / "mead_dreamtalk" / "W009_front_surprised_level3_001.mp4",
      max_frames=40),
                                       size=SIZE)
  src = clip_datasets.example("real", clip.frames[:40], clip.landmarks[:40], np.zeros((40, 16, 80)),
                              clip.detected[:40], has_audio=False)
  builder = clip_datasets.build({
      "train": {
          "real": src
      },
      "test": {
          "real": dict(src)
      }
  }, tmp_path / "tfds", SIZE)
  config = _config(builder.data_dir,
                   image_size=32,
                   num_train_steps=100,
                   learning_rate=2e-3,
                   window=4,
                   adversarial_weight=0.0,
                   feature_matching_weight=0.0,
                   log_every_steps=1,
                   eval_every_steps=0,
                   checkpoint_every_steps=1000,
                   num_grid_rows=0,
                   batch_size=2,
                   source_frame_prob=0.0)
  config.model.width = 8
  result = train_texture.train_and_evaluate(config, tmp_path / "run")
  records = map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
  l1 = {r["step"]: r["train/l1"] for r in records if "train/l1" in r}
  first, final = np.mean([l1[s] for s in range(1, 6)]), np.mean([l1[s] for s in range(91, 101)])
  print(
      f"real-frame L1: first 5 steps {first:.4f}, last 10 steps {final:.4f} ({final / first:.2f}x)")
  assert final <= 0.6 * first, (first, final)
  assert result["eval/psnr"] > 20

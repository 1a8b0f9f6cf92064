"""Stage 1 training end to end on a tiny real TFDS dataset (pseudo-clips of the bundled GRID clip,
64x64).

Covers: 1 device == 8 simulated CPU devices for a train step, exact resume after SIGTERM, NaN stop,
checkpoints kept (last N + best), metrics.jsonl / TensorBoard / plots, and the `emotalk train` CLI.
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
from emotalk_jax.models import landmark_model
from emotalk_jax.train import landmark as train_landmark
from emotalk_jax.train import loop as train_lib

import clip_datasets  # tests/ is on sys.path under pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = clip_datasets.SIZE


def _config(dataset_dir, **overrides):
  return clip_datasets.stage_config("landmark", dataset_dir, **overrides)


pytestmark = pytest.mark.usefixtures("compilation_cache")


@pytest.fixture(scope="module")
def reference_run(dataset_dir, tmp_path_factory):
  """(workdir, result) of an uninterrupted run of the test config (4 steps, eval + checkpoint
  every 2)."""
  workdir = tmp_path_factory.mktemp("reference")
  result = train_landmark.train_and_evaluate(_config(dataset_dir), workdir)
  return workdir, result


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


def test_run_writes_metrics_tensorboard_plots_and_checkpoints(reference_run):
  workdir, result = reference_run
  assert result["step"] == 4 and not result["preempted"]
  assert np.isfinite(result["train/loss"]) and result["eval/m_lmd"] > 0 and result["eval/f_lmd"] > 0
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if "train/loss" in r] == [1, 2, 3, 4]
  assert [r["step"] for r in records if "eval/m_lmd" in r] == [2, 4]
  assert all(
      "train/learning_rate" in r and "train/grad_norm" in r for r in records if "train/loss" in r)
  assert list(workdir.glob("events.out.tfevents.*"))
  plots = sorted(p.name for p in (workdir / "plots").glob("*.png"))
  assert plots == ["step_000002.png", "step_000004.png"]
  assert (workdir / "plots" / plots[-1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  ckpt = checkpoints.CheckpointManager(workdir / "checkpoints", best_metric="m_lmd")
  try:
    assert ckpt.latest_step() == 4
    assert set(ckpt.all_steps()) == {4, ckpt.best_step()}  # max_to_keep=1, plus the best.
  finally:
    ckpt.close()


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_resume_after_sigterm_is_exact(dataset_dir, reference_run, break_training, tmp_path):
  ref_dir, ref = reference_run
  break_training(sigterm_after=1)
  first = train_landmark.train_and_evaluate(_config(dataset_dir), tmp_path)
  assert first["preempted"] and first["step"] == 1
  ckpt = checkpoints.CheckpointManager(tmp_path / "checkpoints")
  assert ckpt.latest_step() == 1  # Saved on SIGTERM although checkpoint_every_steps is 2.
  ckpt.close()
  second = train_landmark.train_and_evaluate(_config(dataset_dir), tmp_path)
  assert second["step"] == 4 and not second["preempted"]
  _assert_trees_close(_params(tmp_path), _params(ref_dir), rtol=1e-6, atol=1e-7)
  assert second["train/loss"] == pytest.approx(ref["train/loss"], rel=1e-5)
  assert second["eval/m_lmd"] == pytest.approx(ref["eval/m_lmd"], rel=1e-5)
  # The whole loss curve matches the uninterrupted one (same batches and rng after resuming).
  def losses(workdir):
    records = map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r["train/loss"] for r in records if "train/loss" in r}

  assert losses(tmp_path).keys() == losses(ref_dir).keys()
  np.testing.assert_allclose(list(losses(tmp_path).values()),
                             list(losses(ref_dir).values()),
                             rtol=1e-5)


def test_nan_stops_with_step_and_last_checkpoint(dataset_dir, break_training, tmp_path):
  break_training(nan_at=3)
  with pytest.raises(FloatingPointError,
                     match=r"at step 3; last good checkpoint: step 2 in .*checkpoints"):
    train_landmark.train_and_evaluate(_config(dataset_dir), tmp_path)
  ckpt = checkpoints.CheckpointManager(tmp_path / "checkpoints")
  assert ckpt.all_steps() == [2]  # Nothing written after the bad step.
  ckpt.close()


def test_cli_train_landmark(dataset_dir, tmp_path, capsys):
  from emotalk_jax.cli import main as cli  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "run"
  rc = cli.main([
      "train", "landmark", "--config",
      str(REPO_ROOT / "configs" / "landmark_test.py"), "--workdir",
      str(workdir), "--config.num_train_steps=3", f"--config.dataset={dataset_dir}",
      "--config.dataset_config="
  ])
  assert rc == 0
  summary = json.loads(capsys.readouterr().out)
  assert summary["step"] == 3 and np.isfinite(summary["train/loss"])
  ckpt = checkpoints.CheckpointManager(workdir / "checkpoints")
  assert ckpt.latest_step() == 3
  ckpt.close()


@pytest.mark.parametrize("name", ["landmark", "landmark_test", "landmark_sample", "landmark_sweep"])
def test_configs_build_a_model_and_optimizer(name):
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{name}").get_config()
  landmark_model.create_model(config)
  train_lib.make_optimizer(config)
  assert config.batch_size % 8 == 0 and config.eval_batch_size % 8 == 0
  if name == "landmark_sample":
    assert train_landmark.dataset_name(config) == "talking_face_folder/sample"


def test_sweep_is_a_product_of_learning_rates_and_mouth_weights():
  from configs import landmark_sweep  # pylint: disable=g-import-not-at-top
  points = landmark_sweep.sweep_overrides()
  assert len(points) == len(landmark_sweep.LEARNING_RATES) * len(landmark_sweep.MOUTH_WEIGHTS)
  assert {(p["config.learning_rate"], p["config.mouth_weight"]) for p in points} == {
      (lr, w) for lr in landmark_sweep.LEARNING_RATES for w in landmark_sweep.MOUTH_WEIGHTS}
  assert all(
      c.startswith("emotalk train landmark --config configs/landmark_sweep.py --workdir runs/")
      for c in landmark_sweep.sweep_commands("runs"))


def one_step(dataset_dir, init_npz, out_npz):
  """One jitted, sharded train step from the params in `init_npz` on all visible devices; writes the
  new params (+ metrics) as .npz.

  SGD, not Adam: Adam's first update is about lr * sign(g), which turns float reduction-order
  noise in near-zero gradients into visible differences; SGD keeps the comparison meaningful.
  """
  import jax  # pylint: disable=g-import-not-at-top
  config = _config(dataset_dir,
                   optimizer="sgd",
                   lr_schedule="constant",
                   warmup_steps=0,
                   learning_rate=0.1)
  mesh = input_pipeline.make_mesh()
  it = input_pipeline.InputIterator(dataset_dir, config.train_split, batch_size=config.batch_size,
                                    window=config.window, seed=config.seed, mesh=mesh,
                                    shuffle_buffer=config.shuffle_buffer)
  model = landmark_model.create_model(config)
  tx, schedule = train_lib.make_optimizer(config)
  rng = jax.random.split(jax.random.PRNGKey(config.seed))[1]
  state = train_lib.TrainState.create(checkpoints.load_params_npz(init_npz), tx, rng)
  state = train_lib.replicate(state, mesh)
  step = train_lib.make_train_step(train_landmark.make_loss_fn(model, config), tx, mesh, schedule)
  state, metrics = step(state, next(it))
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
      import test_train_landmark
      test_train_landmark.one_step({dataset_dir!r}, {str(tmp_path / "init.npz")!r},
                                   {str(tmp_path / "eight.npz")!r})
      """)
  import jax  # pylint: disable=g-import-not-at-top
  config = _config(dataset_dir)
  init = landmark_model.init_params(landmark_model.create_model(config),
                                    jax.random.PRNGKey(0),
                                    num_frames=config.window)
  checkpoints.save_params_npz(init, tmp_path / "init.npz")  # Initialised once, here.
  devices = "--xla_force_host_platform_device_count=8"
  env = dict(os.environ, XLA_FLAGS=f"{os.environ['XLA_FLAGS']} {devices}", JAX_PLATFORMS="cpu")
  proc = subprocess.Popen([sys.executable, "-c", script],
                          env=env,
                          cwd=REPO_ROOT,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True)
  # Meanwhile, the same step in this process on one device.
  assert one_step(dataset_dir, tmp_path / "init.npz",
                  tmp_path / "one.npz") == jax.device_count() == 1
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-4000:]
  one, eight = checkpoints.load_params_npz(tmp_path / "one.npz"), checkpoints.load_params_npz(
      tmp_path / "eight.npz")
  _assert_trees_close(one, eight, rtol=1e-4, atol=1e-6)
  with np.load(tmp_path / "one.npz.metrics.npz") as m1, np.load(tmp_path /
                                                                "eight.npz.metrics.npz") as m8:
    assert set(m1.files) == set(m8.files) >= {"loss", "grad_norm", "emotion_loss", "landmark_loss"}
    for k in m1.files:
      np.testing.assert_allclose(m1[k], m8[k], rtol=1e-4, atol=1e-6, err_msg=k)
  # It moved.
  assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(one)))


@pytest.mark.slow
def test_training_on_a_real_clip_lowers_the_loss_10x(shared_data, tmp_path):
  """Overfits one clip from ../shared/data (50 frames, 64x64, with speech): the landmark loss at the
  last steps is at most a tenth of the first step's (emotion loss off: it alone would fall ~100x).

  From a random network that may move the head: the default start (the clip's own mean motion, zero
  decoder output) is already the mean-motion fit, and with `shape_only` the clip's head motion (most
  of what is left) is out of reach by design, so the 10x would measure the clip rather than the
  trainer.
  """
  from emotalk_jax.media import video_io  # pylint: disable=g-import-not-at-top
  clip = preprocess.preprocess_decoded(video_io.read_video(
      shared_data / "video" / "hdtf_sadtalker" / "WDA_BobMenendez_000.mp4", max_frames=50),
                                       size=SIZE)
  assert clip.mel is not None and len(clip.landmarks) == 50
  src = dict(clip_id="real",
             dataset="test",
             fps=25.0,
             emotion_exact=True,
             frames=clip.frames,
             landmarks=clip.landmarks,
             mel=clip.mel.astype(np.float32),
             detected=clip.detected,
             emotion="neutral",
             intensity=1.0,
             speaker="hdtf/bob",
             has_audio=True,
             neutral_frame=clip.frames[0],
             neutral_landmarks=clip.landmarks[0],
             neutral_source="first_frame")
  builder = clip_datasets.build({
      "train": {
          "real": src
      },
      "test": {
          "real": dict(src)
      }
  }, tmp_path / "tfds", SIZE)
  config = _config(builder.data_dir,
                   num_train_steps=300,
                   learning_rate=3e-3,
                   warmup_steps=0,
                   emotion_weight=0.0,
                   log_every_steps=1,
                   eval_every_steps=0,
                   checkpoint_every_steps=1000,
                   num_plots=0,
                   init_mean_displacement=False)
  config.model.update(zero_init_decoder=False, shape_only=False)
  train_landmark.train_and_evaluate(config, tmp_path / "run")
  records = map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
  loss = {r["step"]: r["train/loss"] for r in records if "train/loss" in r}
  assert sorted(loss) == list(range(1, 301))
  final = np.mean([loss[s] for s in range(291, 301)])  # Last 10 steps: one batch's loss is noisy.
  assert final <= loss[1] / 10, (loss[1], final)


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_whisper_input_mouth_terms_and_lip_sync_ranking(grid_clip, tmp_path):
  """A run that reads Whisper-shaped speech features (speech_input='whisper') with the mouth-opening
  terms: they are in the train metrics; each eval scores lip motion on the whole test clips with
  audio (both test clips); checkpoints are ranked by the config's best_metric (lip_error), which
  loading 'best' through the stage registry honours; `emotalk evaluate landmark` gives the lip
  scores of the
  model and both baselines (a still mouth: std ratio 0)."""
  from emotalk_jax import stages  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import landmark_baselines  # pylint: disable=g-import-not-at-top
  sources = clip_datasets.tiny_sources(grid_clip)
  rng = np.random.default_rng(0)
  for split in sources.values():
    for example in split.values():
      example["speech"] = rng.normal(size=(len(example["landmarks"]), 384)).astype(np.float16)
  data_dir = clip_datasets.build(sources, tmp_path / "tfds", SIZE, speech=True).data_dir
  config = _config(data_dir,
                   lip_eval_clips=8,
                   best_metric="lip_error",
                   best_mode="min",
                   opening_weight=1.0,
                   opening_velocity_weight=1.0,
                   opening_std_weight=1.0,
                   num_plots=0)
  config.model.speech_input = "whisper"
  result = train_landmark.train_and_evaluate(config, tmp_path / "run")
  for key in ("train/opening", "train/opening_velocity", "train/opening_std"):
    assert np.isfinite(result[key]) and result[key] >= 0, key
  assert result["eval/num_lip_clips"] == 2
  assert np.isfinite(result["eval/lip_std_ratio"]) and result["eval/lip_std_ratio"] >= 0
  assert result["eval/lip_error"] >= 0
  records = [
      json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
  ]
  errors = {r["step"]: r["eval/lip_error"] for r in records if "eval/lip_error" in r}
  assert sorted(errors) == [2, 4]
  best = min(errors, key=errors.get)
  model, params, _ = stages.get("landmark").load(tmp_path / "run")  # 'best' by the run's lip_error.
  assert model.speech_input == "whisper"
  _assert_trees_close(params, _params(tmp_path / "run", best))
  out = landmark_baselines.compare(config,
                                   tmp_path / "run",
                                   num_train_batches=2,
                                   num_eval_batches=1)
  assert out["checkpoint_step"] == best
  assert out["model"]["num_lip_clips"] == out["static"]["num_lip_clips"] == 2
  for name in ("static", "mean_motion"):
    assert out[name]["lip_std_ratio"] == pytest.approx(0.0, abs=1e-6), name


def test_emotion_displacements_read_the_split_whole(dataset_dir, grid_clip):
  """What the trainer measures the emotion basis from: the train split's clips read whole, each
  speaker's emotional clips against their neutral one (grid/s2: happy at 2/3 against neutral; the
  other train speakers have no neutral clip)."""
  from emotalk_jax.evaluate import emotion_geometry  # pylint: disable=g-import-not-at-top
  config = _config(dataset_dir)
  builder = train_landmark.get_builder(config)
  (measured,) = train_landmark.emotion_displacements(config, builder)
  cuts = {c[0]: c for c in clip_datasets.CUTS}
  clip = lambda name, emotion, intensity: emotion_geometry.Clip(
      "grid/s2", emotion, intensity, grid_clip.landmarks[cuts[name][1]:cuts[name][2]])
  (want,) = emotion_geometry.displacements([clip("t1_happy", "happy", 2 / 3),
                                            clip("t3_neutral", "neutral", 1.0)])
  assert (measured.speaker, measured.emotion, measured.num_clips) == ("grid/s2", "happy", 1)
  assert measured.intensity == pytest.approx(2 / 3)
  np.testing.assert_allclose(measured.vector, want.vector, atol=1e-5)
  assert np.abs(measured.vector).max() > 0  # Different frames of the clip: a real displacement.
  # The test split's only speaker (grid/s4) has no neutral clip: nothing to measure from.
  assert train_landmark.emotion_displacements(config, builder, config.test_split) == []

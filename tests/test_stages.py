"""stages.py: the registry of the two trained stages (model, load, export, the run's 'best')."""

import importlib
import json

import jax
import numpy as np
import optax
import pytest

from emotalk_jax import checkpoints
from emotalk_jax import stages
from emotalk_jax.models import landmark_model
from emotalk_jax.models import texture_model
from emotalk_jax.train import loop as train_lib

import clip_datasets  # pylint: disable=g-bad-import-order  (tests/ is on sys.path under pytest)

pytestmark = pytest.mark.usefixtures("compilation_cache")


def _tiny_config(name):
  return importlib.import_module(f"configs.{name}_test").get_config()


def _init(name, config, seed=0):
  """Inference params of the stage's model, initialised as its trainer does."""
  rng = jax.random.PRNGKey(seed)
  if name == "landmark":
    return landmark_model.init_params(landmark_model.create_model(config), rng,
                                      num_frames=config.window)
  return texture_model.init_params(texture_model.create_model(config), rng, config.image_size)


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_get_an_unknown_stage_names_the_known_ones():
  assert stages.get("landmark").name == "landmark" and stages.get("texture").subtree == "generator"
  with pytest.raises(ValueError, match=r"unknown stage 'nope'; expected one of landmark, texture"):
    stages.get("nope")


@pytest.mark.parametrize("name", ["landmark", "texture"])
def test_create_model_and_param_shapes_agree_with_the_model(name):
  config = _tiny_config(name)
  stage = stages.get(name)
  model = stage.create_model(config)
  module = landmark_model if name == "landmark" else texture_model
  assert type(model) is type(module.create_model(config))
  params = _init(name, config)
  shapes = stage.param_shapes(config)
  assert jax.tree.structure(shapes) == jax.tree.structure(params)
  for s, p in zip(jax.tree.leaves(shapes), jax.tree.leaves(params)):
    assert (s.shape, s.dtype) == (p.shape, p.dtype)


@pytest.mark.parametrize("name", ["landmark", "texture"])
def test_load_of_an_exported_npz_round_trips(name, tmp_path):
  config = _tiny_config(name)
  params = _init(name, config, seed=3)
  npz = checkpoints.export(params, config, tmp_path / f"{name}.npz")
  model, loaded, loaded_config = stages.get(name).load(npz)
  _assert_trees_equal(loaded, params)
  assert loaded_config.to_dict() == json.loads(config.to_json_best_effort())
  assert type(model) is type(stages.get(name).create_model(config))
  other = _tiny_config(name)
  other.model.update(emotion_dim=6)  # Another model: the npz does not fit it.
  with pytest.raises(ValueError, match=r"do not fit the model"):
    stages.get(name).load(npz, config=other)


def _hand_made_run(workdir, name, config, metrics_by_step):
  """A run's workdir written without training: config.json and one checkpoint per step whose
  params are the model's init times the step (for texture under 'generator', as its trainer
  saves)."""
  checkpoints.save_config(config, workdir / checkpoints.CONFIG_FILE)
  params = _init(name, config)
  ckpt = checkpoints.CheckpointManager(workdir / "checkpoints", max_to_keep=10, best_metric="m_lmd")
  for step, metrics in metrics_by_step.items():
    stepped = jax.tree.map(lambda p, s=step: p * s, params)
    if name == "texture":
      stepped = {"generator": stepped, "discriminator": {"w": np.zeros(2, np.float32)}}
    state = train_lib.TrainState.create(stepped, optax.sgd(0.1), jax.random.PRNGKey(0))
    ckpt.save(step, state.replace(step=step), {}, metrics=metrics)
    ckpt.wait()
  ckpt.close()
  return params


@pytest.mark.parametrize("name", ["landmark", "texture"])
def test_best_metric_and_mode_of_the_run_config_are_honoured(name, tmp_path):
  """'best' is ranked by the stage's own metric unless the run's config names another (and its
  mode)."""
  config = _tiny_config(name)
  # The stage's default: landmark the lowest m_lmd (step 2), texture the highest psnr (step 3).
  metrics = {1: {"m_lmd": 3.0, "psnr": 20.0, "acc": 0.1},
             2: {"m_lmd": 1.0, "psnr": 21.0, "acc": 0.9},
             3: {"m_lmd": 2.0, "psnr": 30.0, "acc": 0.5}}
  params = _hand_made_run(tmp_path / "default", name, config, metrics)
  default_best = {"landmark": 2, "texture": 3}[name]
  _, loaded, _ = stages.get(name).load(tmp_path / "default")
  _assert_trees_equal(loaded, jax.tree.map(lambda p: p * default_best, params))
  config.best_metric, config.best_mode = "acc", "max"  # Best: step 2 of 'acc'.
  _hand_made_run(tmp_path / "acc", name, config, metrics)
  _, loaded, _ = stages.get(name).load(tmp_path / "acc", checkpoint="best")
  _assert_trees_equal(loaded, jax.tree.map(lambda p: p * 2, params))
  config.best_mode = "min"  # Best: step 1.
  _hand_made_run(tmp_path / "acc_min", name, config, metrics)
  _, loaded, _ = stages.get(name).load(tmp_path / "acc_min", checkpoint="best")
  _assert_trees_equal(loaded, jax.tree.map(lambda p: p * 1, params))


def test_export_run_of_a_tiny_run(dataset_dir, tmp_path):
  """A 2-step landmark run through the registry, then its best checkpoint exported and loaded
  back."""
  stage = stages.get("landmark")
  config = clip_datasets.stage_config("landmark", dataset_dir, num_train_steps=2)
  result = stage.train_and_evaluate(config, tmp_path / "run")
  assert result["step"] == 2
  out = stage.export_run(tmp_path / "run", tmp_path / "export" / "landmark.npz")
  assert out["stage"] == "landmark" and out["output"] == str(tmp_path / "export" / "landmark.npz")
  assert checkpoints.sidecar(out["output"]).is_file()
  ckpt = checkpoints.CheckpointManager(tmp_path / "run" / "checkpoints", best_metric="m_lmd")
  try:
    run_params = ckpt.restore_params(ckpt.best_step())
  finally:
    ckpt.close()
  _, loaded, loaded_config = stage.load(out["output"])
  _assert_trees_equal(loaded, run_params)
  assert loaded_config.num_train_steps == 2 and loaded_config.dataset == dataset_dir

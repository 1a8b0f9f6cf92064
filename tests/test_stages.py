"""stages.py: the registry of the two trained stages (model, load, export, the run's 'best')."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from emotalk_jax import checkpoints
from emotalk_jax import stages
from emotalk_jax.models import landmark_model
from emotalk_jax.models import texture_model
from emotalk_jax.train import loop as train_lib


def _tiny_config(name):
  return importlib.import_module(f"configs.{name}_test").get_config()


def _random_params(name, config, seed=0):
  """Params of the stage's model's shapes, random (no init to compile: these tests move params)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype),
                      stages.get(name).param_shapes(config))


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
  """param_shapes is what the Flax module of create_model initialises (traced, not compiled)."""
  config = _tiny_config(name)
  stage = stages.get(name)
  model = stage.create_model(config)
  module = landmark_model if name == "landmark" else texture_model
  assert type(model) is type(module.create_model(config))
  rng = jax.random.PRNGKey(0)
  if name == "landmark":
    speech = jnp.zeros((1, config.window, landmark_model.SPEECH_FEATURES), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(
        rng, *landmark_model.dummy_inputs(1, config.window), speech=speech))
  else:
    variables = jax.eval_shape(lambda: model.init(
        rng, *texture_model.dummy_inputs(1, config.image_size)))
  shapes = stage.param_shapes(config)
  assert jax.tree.structure(shapes) == jax.tree.structure(variables["params"])
  for s, p in zip(jax.tree.leaves(shapes), jax.tree.leaves(variables["params"])):
    assert (s.shape, s.dtype) == (p.shape, p.dtype)


@pytest.mark.parametrize("name", ["landmark", "texture"])
def test_load_of_an_exported_npz_round_trips(name, tmp_path):
  config = _tiny_config(name)
  params = _random_params(name, config, seed=3)
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
  params = _random_params(name, config)
  ckpt = checkpoints.CheckpointManager(workdir / "checkpoints", max_to_keep=10, best_metric="m_lmd")
  for step, metrics in metrics_by_step.items():
    stepped = jax.tree.map(lambda p, s=step: p * s, params)
    if name == "texture":
      stepped = {"generator": stepped, "discriminator": {"w": np.zeros(2, np.float32)}}
    state = train_lib.TrainState.create(stepped, optax.sgd(0.1), jax.random.PRNGKey(0))
    ckpt.save(step, state.replace(step=jnp.asarray(step, jnp.int32)), {}, metrics=metrics)
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


@pytest.mark.parametrize("name", ["landmark", "texture"])
def test_export_run_of_a_tiny_run(name, tmp_path):
  """A run's best checkpoint exported (npz + json config) and loaded back; its latest too."""
  stage = stages.get(name)
  config = _tiny_config(name)
  metrics = {1: {"m_lmd": 2.0, "psnr": 25.0}, 2: {"m_lmd": 1.0, "psnr": 20.0}}
  params = _hand_made_run(tmp_path / "run", name, config, metrics)
  out = stage.export_run(tmp_path / "run", tmp_path / "export" / f"{name}.npz")
  assert out == {"stage": name, "output": str(tmp_path / "export" / f"{name}.npz")}
  assert checkpoints.sidecar(out["output"]).is_file()
  _, loaded, loaded_config = stage.load(out["output"])
  best = {"landmark": 2, "texture": 1}[name]  # The lowest m_lmd; the highest psnr.
  _assert_trees_equal(loaded, jax.tree.map(lambda p: p * best, params))
  assert loaded_config.to_dict() == json.loads(config.to_json_best_effort())
  latest = stage.export_run(tmp_path / "run", tmp_path / "latest.npz", checkpoint="latest")
  _assert_trees_equal(stage.load(latest["output"])[1], jax.tree.map(lambda p: p * 2, params))

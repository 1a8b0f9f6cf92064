"""Inference checkpoints: a stage's params + the config that rebuilds its model, from a run or a file.

Two forms are accepted wherever a trained network is loaded:
* a training workdir: `checkpoints/<step>/` (Orbax, see `train_lib.CheckpointManager`) and the run's
  `config.json` (written by the trainers);
* an exported `NAME.npz` (`train_lib.save_params_npz`: flat '/'-joined names -> arrays, no pickle) with its
  config beside it as `NAME.json`. These are what ships in `emotalk_jax/assets/checkpoints/`.

Params that do not fit the config's model (another size, another architecture) are refused with every
differing name and shape listed (`train_lib.check_params_match`).
"""

import json
import pathlib
from typing import Callable, Optional, Union

import jax
import ml_collections

from emotalk_jax.train import loop as train_lib

CONFIG_FILE = "config.json"


def sidecar(npz_path) -> pathlib.Path:
  """The config file of an exported params file: NAME.npz -> NAME.json."""
  return pathlib.Path(npz_path).with_suffix(".json")


def save_config(config: ml_collections.ConfigDict, path) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(config.to_json_best_effort(indent=2))


def start_run(config: ml_collections.ConfigDict, workdir) -> pathlib.Path:
  """What every trainer does first: multi-host init (if configured), the absolute workdir created, and the
  run's config saved there (process 0) so `load_config` can rebuild the model from the workdir."""
  train_lib.maybe_initialize_distributed(config)
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    save_config(config, workdir / CONFIG_FILE)
  return workdir


def load_config(path) -> ml_collections.ConfigDict:
  """The config of a workdir (`config.json`) or of an exported `.npz` (its `.json` sidecar)."""
  path = pathlib.Path(path)
  file = sidecar(path) if path.suffix == ".npz" else path / CONFIG_FILE
  if not file.is_file():
    raise FileNotFoundError(f"no config for {path} (expected {file})")
  return ml_collections.ConfigDict(json.loads(file.read_text()))


def load_params(path, expected_shapes: Callable[[ml_collections.ConfigDict], dict], *,
                config: Optional[ml_collections.ConfigDict] = None, subtree: Optional[str] = None,
                checkpoint: Union[str, int] = "best", best_metric: str = "m_lmd", best_mode: str = "min"):
  """(params, config) of a workdir or an exported `.npz`, checked against the model the config builds.

  Args:
    path: a training workdir or an exported `.npz`.
    expected_shapes: config -> the model's params as ShapeDtypeStructs (`jax.eval_shape` of its init).
    config: the model's config (default: the workdir's `config.json` / the npz's `.json`).
    subtree: take this top-level key of the stored params (e.g. 'generator' of a GAN's state).
    checkpoint: for a workdir: 'best' (by `best_metric`), 'latest' or a step.
    best_metric, best_mode: how the workdir's trainer ranked checkpoints.

  Raises:
    FileNotFoundError: no such file, checkpoint or config.
    ValueError: the params do not fit the config's model (naming every param that differs).
  """
  path = pathlib.Path(path)
  config = load_config(path) if config is None else config
  if path.suffix == ".npz":
    if not path.is_file():
      raise FileNotFoundError(f"no such params file: {path}")
    params = train_lib.load_params_npz(path)
    source = str(path)
  else:
    ckpt = train_lib.CheckpointManager(path / "checkpoints", best_metric=best_metric, best_mode=best_mode)
    try:
      step = ckpt.resolve_step(checkpoint)
      params = ckpt.restore_params(step)
    finally:
      ckpt.close()
    source = f"checkpoint {step} in {path}"
  if subtree is not None and subtree in params:
    params = params[subtree]
  train_lib.check_params_match(params, expected_shapes(config), f"params from {source}")
  return jax.tree.map(jax.numpy.asarray, params), config


def export(params, config: ml_collections.ConfigDict, out_npz) -> pathlib.Path:
  """Writes `params` as `out_npz` and `config` as its `.json` sidecar."""
  out_npz = pathlib.Path(out_npz)
  out_npz.parent.mkdir(parents=True, exist_ok=True)
  train_lib.save_params_npz(params, out_npz)
  save_config(config, sidecar(out_npz))
  return out_npz


def stage_loader(stage: str) -> dict:
  """How to load a stage's inference params: {'shapes': config -> ShapeDtypeStructs, 'best_metric',
  'best_mode', 'subtree'} (the trainers are imported here, not at module level: they pull TensorFlow)."""
  if stage == "landmark":
    from emotalk_jax.train import landmark as train_landmark  # pylint: disable=g-import-not-at-top
    return dict(shapes=train_landmark.param_shapes, best_metric="m_lmd", best_mode="min", subtree=None)
  if stage == "texture":
    from emotalk_jax.train import texture as train_texture  # pylint: disable=g-import-not-at-top
    return dict(shapes=train_texture.generator_shapes, best_metric=train_texture.BEST_METRIC, best_mode="max",
                subtree="generator")
  raise ValueError(f"unknown stage {stage!r}; expected landmark or texture")


def export_run(stage: str, workdir, out_npz, checkpoint: Union[str, int] = "best",
               config: Optional[ml_collections.ConfigDict] = None) -> dict:
  """Exports a training run's params (+ config) for inference; returns {'stage', 'output', 'config'}."""
  loader = stage_loader(stage)
  params, config = load_params(workdir, loader["shapes"], config=config, subtree=loader["subtree"],
                               checkpoint=checkpoint, best_metric=loader["best_metric"],
                               best_mode=loader["best_mode"])
  return {"stage": stage, "output": str(export(params, config, out_npz))}

"""Where params live on disk: Orbax checkpoints of training runs, exported `.npz` files, their
configs.

`CheckpointManager` saves and restores a training run's state (params, optimizer state, step, rng)
and the input iterator's position. Two forms are accepted wherever a trained network is loaded
(`load_params`; `emotalk_jax.stages` says which model each stage's params must fit):
* a training workdir: `checkpoints/<step>/` (Orbax, see `CheckpointManager`) and the run's
  `config.json` (written by the trainers);
* an exported `NAME.npz` (`save_params_npz`: flat '/'-joined names -> arrays, no pickle) with its
  config beside it as `NAME.json`. These are what ships in `emotalk_jax/assets/checkpoints/`.

Params that do not fit the config's model (another size, another architecture) are refused with
every differing name and shape listed (`check_params_match`).
"""

import json
import pathlib
from typing import Any, Callable, Mapping, Optional, Union

import flax
import jax
import ml_collections
import numpy as np

CONFIG_FILE = "config.json"


def _orbax():
  """orbax.checkpoint, imported on first use: exported `.npz` files (all that generation loads)
  need none of it, and importing it costs 0.3 s of start-up."""
  # pylint: disable=g-import-not-at-top,unused-import
  import orbax.checkpoint as ocp
  from orbax.checkpoint.checkpoint_managers import preservation_policy
  return ocp


def sidecar(npz_path) -> pathlib.Path:
  """The config file of an exported params file: NAME.npz -> NAME.json."""
  return pathlib.Path(npz_path).with_suffix(".json")


def save_config(config: ml_collections.ConfigDict, path) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(config.to_json_best_effort(indent=2))


def load_config(path) -> ml_collections.ConfigDict:
  """The config of a workdir (`config.json`) or of an exported `.npz` (its `.json` sidecar)."""
  path = pathlib.Path(path)
  file = sidecar(path) if path.suffix == ".npz" else path / CONFIG_FILE
  if not file.is_file():
    raise FileNotFoundError(f"no config for {path} (expected {file})")
  return ml_collections.ConfigDict(json.loads(file.read_text()))


class CheckpointManager:
  """Orbax checkpoints of the train state (params, opt_state, step, rng) plus the input iterator's
  position (JSON), as one Composite per step: `<directory>/<step>/{state,data}`.

  Keeps the `max_to_keep` latest checkpoints and, among those saved with metrics, the best
  `keep_best` by `metrics[best_metric]` (`best_mode` 'min' or 'max'). Saving is asynchronous;
  `wait()` (or `close()`) blocks until written.
  """

  def __init__(self, directory, *, max_to_keep: int = 3, best_metric: Optional[str] = None,
               best_mode: str = "min", keep_best: int = 1, async_save: bool = True):
    if best_mode not in ("min", "max"):
      raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
    self.directory = pathlib.Path(directory).absolute()
    self.best_metric = best_metric
    self.best_mode = best_mode
    self._ocp = ocp = _orbax()
    policy = ocp.checkpoint_managers.preservation_policy
    policies = [policy.LatestN(max_to_keep)]
    if best_metric:
      self.best_fn = lambda metrics: float(metrics[best_metric])
      policies.append(
          policy.BestN(get_metric_fn=self.best_fn,
                       reverse=best_mode == "min",
                       n=keep_best,
                       keep_checkpoints_without_metrics=False))
    # best_fn/best_mode also make Orbax write the metrics to disk, so the ranking survives a
    # restart.
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy.AnyPreservationPolicy(policies),
        best_fn=self.best_fn if best_metric else None,
        best_mode=best_mode,
        enable_async_checkpointing=async_save,
        create=True)
    self._manager = ocp.CheckpointManager(self.directory,
                                          options=options,
                                          item_names=("state", "data"))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list:
    return list(self._manager.all_steps())

  def best_step(self) -> Optional[int]:
    """The kept step with the best `best_metric` (None: no best_metric, or no checkpoint has
    metrics)."""
    if not self.best_metric:
      return None
    scored = []
    for step in self.all_steps():
      metrics = self._manager.metrics(step)
      if metrics and self.best_metric in metrics:
        scored.append((self.best_fn(metrics), step))
    if not scored:
      return None
    return (min(scored) if self.best_mode == "min" else max(scored))[1]

  def resolve_step(self, checkpoint="latest") -> int:
    """The step of `checkpoint`: 'latest', 'best' (the latest when none was ranked) or a step
    number.

    Raises FileNotFoundError when there is no such checkpoint."""
    latest = self.latest_step()
    if latest is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    if checkpoint == "latest":
      return latest
    if checkpoint == "best":
      best = self.best_step()
      return latest if best is None else best
    if int(checkpoint) not in self.all_steps():
      raise FileNotFoundError(
          f"no checkpoint of step {checkpoint} in {self.directory} (have {self.all_steps()})")
    return int(checkpoint)

  def save(self, step: int, state, data_state: Optional[Mapping[str, Any]] = None,
           metrics: Optional[Mapping[str, float]] = None, force: bool = True) -> bool:
    """Saves the state and the iterator position at `step`; `metrics` (host floats) rank it for
    'best'."""
    if metrics is not None and self.best_metric and self.best_metric not in metrics:
      metrics = None
    ocp = self._ocp
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=ocp.args.JsonSave(dict(data_state or {})))
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    return self._manager.save(int(step), args=args, metrics=metrics, force=force)

  def restore(self, target, step: Optional[int] = None):
    """(state, data_state) of `step` (default: the latest), shaped and sharded like `target`."""
    step = self.resolve_step() if step is None else step
    ocp = self._ocp
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = self._manager.restore(step,
                                     args=ocp.args.Composite(
                                         state=ocp.args.StandardRestore(abstract),
                                         data=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["data"] or {})

  def restore_params(self, step: Optional[int] = None):
    """Only the params of a checkpoint, as numpy arrays (no target needed: for evaluation,
    export)."""
    args = self._ocp.args
    restored = self._manager.restore(self.resolve_step() if step is None else step,
                                     args=args.Composite(state=args.StandardRestore()))
    return jax.tree.map(np.asarray, restored["state"]["params"])

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.close()


def save_params_npz(params, path) -> None:
  """Writes a params pytree as a plain .npz (keys are '/'-joined paths; no pickle)."""
  flat = flax.traverse_util.flatten_dict(
      flax.core.unfreeze(params) if hasattr(params, "unfreeze") else params, sep="/")
  np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})


def load_params_npz(path) -> dict:
  with np.load(path, allow_pickle=False) as data:
    return flax.traverse_util.unflatten_dict({k: data[k] for k in data.files}, sep="/")


def _flat_fits(params, reference):
  """(flat params, flat reference, the '/'-joined names present in both with the same shape)."""
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  ref = flax.traverse_util.flatten_dict(reference, sep="/")
  return flat, ref, {
      k for k in ref.keys() & flat.keys() if tuple(np.shape(flat[k])) == tuple(ref[k].shape)
  }


def check_params_match(params, reference, source: str = "params") -> None:
  """Raises ValueError naming every param of `params` that is missing, unexpected, or shaped unlike
  `reference` (a params pytree or its `jax.eval_shape`), e.g. a checkpoint of another model size."""
  flat, ref, fits = _flat_fits(params, reference)
  problems = [f"{k}: missing" for k in sorted(ref.keys() - flat.keys())]
  problems += [f"{k}: not in the model" for k in sorted(flat.keys() - ref.keys())]
  problems += [f"{k}: shape {tuple(np.shape(flat[k]))}, the model expects {tuple(ref[k].shape)}"
               for k in sorted((ref.keys() & flat.keys()) - fits)]
  if problems:
    shown = "; ".join(
        problems[:12]) + (f"; and {len(problems) - 12} more" if len(problems) > 12 else "")
    raise ValueError(f"{source} do not fit the model ({len(problems)} differ): {shown}")


def merge_params(restored, fresh):
  """Model surgery for a warm start: `fresh` (a params pytree) with every param of `restored` whose
  path
  and shape it shares. Returns (params, names of fresh params kept, names of restored params
  dropped)."""
  flat, ref, fits = _flat_fits(restored, fresh)
  merged = {k: (flat[k] if k in fits else v) for k, v in ref.items()}
  return (flax.traverse_util.unflatten_dict(merged, sep="/"), sorted(ref.keys() - fits),
          sorted(flat.keys() - fits))



def load_params(path,
                expected_shapes: Callable[[ml_collections.ConfigDict], dict],
                *,
                config: Optional[ml_collections.ConfigDict] = None,
                subtree: Optional[str] = None,
                checkpoint: Union[str, int] = "best",
                best_metric: str = "m_lmd",
                best_mode: str = "min"):
  """(params, config) of a workdir or an exported `.npz`, checked against the model the config
  builds.

  Args:
    path: a training workdir or an exported `.npz`.
    expected_shapes: config -> the model's params as ShapeDtypeStructs (`jax.eval_shape` of its
      init).
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
    params = load_params_npz(path)
    source = str(path)
  else:
    ckpt = CheckpointManager(path / "checkpoints", best_metric=best_metric, best_mode=best_mode)
    try:
      step = ckpt.resolve_step(checkpoint)
      params = ckpt.restore_params(step)
    finally:
      ckpt.close()
    source = f"checkpoint {step} in {path}"
  if subtree is not None and subtree in params:
    params = params[subtree]
  check_params_match(params, expected_shapes(config), f"params from {source}")
  return jax.device_put(params), config  # (jnp.asarray would compile a conversion per shape.)


def export(params, config: ml_collections.ConfigDict, out_npz) -> pathlib.Path:
  """Writes `params` as `out_npz` and `config` as its `.json` sidecar."""
  out_npz = pathlib.Path(out_npz)
  out_npz.parent.mkdir(parents=True, exist_ok=True)
  save_params_npz(params, out_npz)
  save_config(config, sidecar(out_npz))
  return out_npz

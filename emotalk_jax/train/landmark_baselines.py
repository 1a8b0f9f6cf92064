"""The baselines stage 1 must beat, evaluated exactly like the model (same test windows, same
metrics).

* `static`: the neutral landmarks for every frame (a face that never moves).
* `mean_motion`: the neutral landmarks + the training set's mean displacement of every node
  (target minus neutral landmarks, averaged over all frames of train-split windows; [68, 2]) for
  every frame: the best prediction that ignores the audio, the emotion and the frame.

Both run through `train_landmark.evaluate` with `train_landmark.jit_eval_step`, the model's own eval
loop: the same `config.num_eval_batches` batches of fixed (unshuffled) test-split windows and the
  same
M-LMD / F-LMD (pixels of a 256 crop); and through `train_landmark.lip_sync` on the whole test clips
with
audio (mouth-opening r and std ratio: a baseline's mouth does not move, so its r is 0 and its ratio
  0).

  emotalk evaluate landmark --config configs/landmark.py --workdir ~/runs/landmark_mead \
      [--checkpoint=best|latest|STEP] [--num_train_batches=N] [--num_eval_batches=N] [--config.x=y]

(also `python -m emotalk_jax.train.landmark_baselines --config ... --workdir ...`) prints the
model's and the baselines' metrics and the model's relative improvement over each, as JSON
(`compare`).
"""

import json
import logging
import pathlib
import sys
from typing import Optional, Union

import jax.numpy as jnp
import ml_collections
import numpy as np

from data_pipelines import input_pipeline  # Import first: keeps TensorFlow off the GPUs.
from emotalk_jax import checkpoints
from emotalk_jax.evaluate import emotion_geometry
from emotalk_jax.models import face_graph
from emotalk_jax import stages
from emotalk_jax.train import landmark as train_landmark
from emotalk_jax.train import loop as train_lib

BASELINES = ("static", "mean_motion")
METRICS = ("m_lmd", "f_lmd", "audio_m_lmd", "audio_f_lmd")


STAGE = stages.get("landmark")

def predict(displacement, batch):
  """Baseline prediction [B, K, 68, 2]: the neutral landmarks + `displacement` [68, 2] in every
  frame."""
  neutral = batch["neutral_landmarks"].astype(jnp.float32)[:, None]  # [B, 1, 68, 2]
  return jnp.broadcast_to(neutral + displacement, batch["landmarks"].shape)


def _eval_config(config, num_eval_batches: Optional[int]):
  if num_eval_batches is None:
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  config.num_eval_batches = int(num_eval_batches)
  return config


def evaluate_baselines(config, num_train_batches: Optional[int] = None,
                       num_eval_batches: Optional[int] = None, *, builder=None, mesh=None) -> dict:
  """M-LMD / F-LMD of the `static` and `mean_motion` baselines on the test windows the model is
  evaluated on.

  Args:
    config: the landmark training config (its dataset, data_dir, splits, window, batch sizes, seed).
    num_train_batches: train windows for the mean displacement (see
      `train_landmark.mean_displacement`).
    num_eval_batches: test batches (default `config.num_eval_batches`, as in training).
    builder, mesh: reuse these (default: from the config / all devices).

  Returns:
    {'static': {...}, 'mean_motion': {...}}: `train_landmark.evaluate`'s metrics (pixels of a 256
    crop) and `train_landmark.lip_sync`'s on the whole test clips with audio.
  """
  builder = train_landmark.get_builder(config) if builder is None else builder
  mesh = input_pipeline.make_mesh() if mesh is None else mesh
  eval_config = _eval_config(config, num_eval_batches)
  step = train_landmark.jit_eval_step(predict, mesh)
  displacements = {
      "static": np.zeros((face_graph.NUM_NODES, 2), np.float32),
      "mean_motion": train_landmark.mean_displacement(config, builder, num_train_batches)
  }
  out = {}
  for name, d in displacements.items():
    d = train_lib.replicate(jnp.asarray(d), mesh)
    out[name] = train_landmark.evaluate(step, d, eval_config, builder, mesh)
    out[name].update(train_landmark.lip_sync(predict, d, config, builder))
  return out


def improvement(model: dict, baseline: dict) -> dict:
  """Relative improvement of the model over a baseline, in %, per metric: 100 (baseline - model)
  / baseline."""
  return {k: 100.0 * (baseline[k] - model[k]) / baseline[k] if baseline[k] else float("nan")
          for k in METRICS if k in model and k in baseline}


def compare(config,
            workdir,
            checkpoint: Union[str, int] = "best",
            num_train_batches: Optional[int] = None,
            num_eval_batches: Optional[int] = None) -> dict:
  """The model of a checkpoint in `workdir` against both baselines, all on the same test windows.

  Args:
    config: the config the run was trained with.
    workdir: the training workdir (its `checkpoints/`).
    checkpoint: 'best' (by the run's `best_metric`, default eval M-LMD; the latest if none was
      ranked), 'latest', or a step.
    num_train_batches, num_eval_batches: as in `evaluate_baselines`.

  Returns:
    {'checkpoint_step', 'num_eval_batches', 'model': {'m_lmd', 'f_lmd', ..., and the lip-motion
     scores of `train_landmark.lip_sync` when the test split has clips with audio},
     'emotion_geometry': {'held_out': `train_landmark.emotion_geometry_scores` per held-out speaker,
     'measured': the real displacements of every speaker with a neutral clip, by face part
     (`evaluate.emotion_geometry.table`)}, 'static': {...},
     'mean_motion': {...}, 'improvement_pct': {'static': {'m_lmd', 'f_lmd'}, 'mean_motion': {...}}}
    (improvement: 100 (baseline - model) / baseline; positive = the model is better).
  """
  directory = pathlib.Path(workdir).absolute() / "checkpoints"
  if not directory.is_dir():
    raise FileNotFoundError(f"no checkpoints directory in {pathlib.Path(workdir).absolute()}")
  ckpt = checkpoints.CheckpointManager(directory,
                                       best_metric=config.get("best_metric", STAGE.best_metric),
                                       best_mode=config.get("best_mode", STAGE.best_mode))
  try:
    step = ckpt.resolve_step(checkpoint)
    params = ckpt.restore_params(step)
  finally:
    ckpt.close()
  builder = train_landmark.get_builder(config)
  mesh = input_pipeline.make_mesh()
  eval_config = _eval_config(config, num_eval_batches)
  network = STAGE.create_model(config)
  params = train_lib.replicate(params, mesh)
  model = train_landmark.evaluate(train_landmark.make_eval_step(network, mesh), params, eval_config,
                                  builder, mesh)
  model.update(train_landmark.lip_sync(train_landmark.predict_fn(network), params, config, builder))
  out = {
      "checkpoint_step": int(step),
      "num_eval_batches": int(eval_config.num_eval_batches),
      "model": model,
      "emotion_geometry": {
          "held_out": train_landmark.emotion_geometry_scores(train_landmark.predict_fn(network),
                                                             params, config, builder),
          "measured": emotion_geometry.table(
              train_landmark.emotion_displacements(config, builder) +
              train_landmark.emotion_displacements(config, builder, config.test_split)),
      },
  }
  out.update(
      evaluate_baselines(config, num_train_batches, num_eval_batches, builder=builder, mesh=mesh))
  out["improvement_pct"] = {name: improvement(model, out[name]) for name in BASELINES}
  return out


def _define_flags(fv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("checkpoint",
                      "best",
                      "which checkpoint: best (by eval M-LMD), latest, or a step.",
                      flag_values=fv)
  flags.DEFINE_integer("num_train_batches",
                       None, "train batches for the mean displacement (default: one "
                       "window of every train clip).",
                       flag_values=fv)
  flags.DEFINE_integer("num_eval_batches",
                       None,
                       "test batches (default: config.num_eval_batches).",
                       flag_values=fv)


def main(argv) -> dict:
  """argv: [stage, --config=..., --workdir=..., --checkpoint=..., --config.x=y, ...]; returns
  `compare`'s dict.

  Raises:
    absl.flags.Error: bad or missing flags, an unreadable config file, or no checkpoint in the
      workdir.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import main as train_main  # pylint: disable=g-import-not-at-top
  usage = ("usage: emotalk evaluate landmark --config CONFIG.py --workdir DIR "
           "[--checkpoint=best|latest|STEP]")
  if not argv or argv[0].startswith("-"):
    raise flags.Error(usage)
  if argv[0] != "landmark":
    raise ValueError(f"unknown stage {argv[0]!r}; expected landmark")
  fv = train_main.parse_flags([f"emotalk evaluate {argv[0]}"] + list(argv[1:]),
                              define_extra=_define_flags)
  checkpoint = fv.checkpoint
  if checkpoint not in ("best", "latest") and not checkpoint.isdigit():
    raise flags.Error(f"--checkpoint must be best, latest or a step, got {checkpoint!r}")
  logging.getLogger().setLevel(logging.INFO)
  try:
    return compare(fv.config, fv.workdir,
                   checkpoint if not checkpoint.isdigit() else int(checkpoint),
                   fv.num_train_batches, fv.num_eval_batches)
  except FileNotFoundError as e:
    raise flags.Error(str(e)) from e


if __name__ == "__main__":
  _argv = sys.argv[1:]
  print(
      json.dumps(main(_argv if _argv and _argv[0] == "landmark" else ["landmark"] + _argv),
                 indent=2))

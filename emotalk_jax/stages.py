"""The two trained stages in one table: how each builds its model, loads and exports its params,
trains and is evaluated. The CLI (`emotalk train|evaluate|export STAGE`), generation and fine-tuning
all go through it.

```python
from emotalk_jax import stages
# a run's best checkpoint
model, params, config = stages.get("texture").load("runs/texture_sample")
# what --checkpoint reads
stages.get("landmark").export_run("runs/landmark_sample", "mine/landmark.npz")
```

Each part is named by module path and imported only when used: the trainers and dataset evaluators
read TFDS datasets and so pull in TensorFlow, which generation and the evaluation harness never
import; and the command line imports this table to list the stages without paying for JAX.
"""

import dataclasses
import importlib
from typing import Optional, Union

import ml_collections


@dataclasses.dataclass(frozen=True)
class Stage:
  """One trained network.

  Attributes:
    name: 'landmark' (stage 1) or 'texture' (stage 2).
    model: module with `create_model(config)` (the Flax module) and `param_shapes(config)` (the
      inference
      params as ShapeDtypeStructs: what a checkpoint must fit).
    subtree: the key of the inference params inside a training run's params (the GAN's 'generator').
    best_metric, best_mode: how the trainer ranks checkpoints ('best'), unless the run's config sets
      `best_metric` / `best_mode`.
    trainer: module with `train_and_evaluate(config, workdir) -> dict`.
    evaluator: module with `main(argv) -> dict`, `emotalk evaluate STAGE` (the model against
      baselines).
  """
  name: str
  model: str
  subtree: Optional[str]
  best_metric: str
  best_mode: str
  trainer: str
  evaluator: str

  def create_model(self, config: ml_collections.ConfigDict):
    return importlib.import_module(self.model).create_model(config)

  def param_shapes(self, config: ml_collections.ConfigDict) -> dict:
    """The params of the config's model as ShapeDtypeStructs (traced once per machine: `cache`)."""
    from emotalk_jax import cache  # pylint: disable=g-import-not-at-top
    return cache.param_shapes(self.model, config.to_json_best_effort(sort_keys=True),
                              lambda: importlib.import_module(self.model).param_shapes(config))

  def train_and_evaluate(self, config: ml_collections.ConfigDict, workdir) -> dict:
    return importlib.import_module(self.trainer).train_and_evaluate(config, workdir)

  def evaluate(self, argv) -> dict:
    return importlib.import_module(self.evaluator).main(argv)

  def load_params(self, path, config: Optional[ml_collections.ConfigDict] = None,
                  checkpoint: Union[str, int] = "best"):
    """(params, config) of a training workdir (its `checkpoint`: 'best', 'latest' or a step) or of
    an exported `.npz` (+ its `.json` config), checked against the model the config builds.

    Raises:
      FileNotFoundError: no such file, checkpoint or config.
      ValueError: the params do not fit the config's model (naming every param that differs).
    """
    from emotalk_jax import checkpoints  # pylint: disable=g-import-not-at-top
    config = checkpoints.load_config(path) if config is None else config
    # A run's config may rank its checkpoints by another metric than the stage's default.
    return checkpoints.load_params(path, self.param_shapes, config=config, subtree=self.subtree,
                                   checkpoint=checkpoint,
                                   best_metric=config.get("best_metric", self.best_metric),
                                   best_mode=config.get("best_mode", self.best_mode))

  def load(self, path, config: Optional[ml_collections.ConfigDict] = None,
           checkpoint: Union[str, int] = "best"):
    """(model, params, config) for inference; see `load_params`."""
    params, config = self.load_params(path, config, checkpoint)
    return self.create_model(config), params, config

  def export_run(self, workdir, out_npz, checkpoint: Union[str, int] = "best",
                 config: Optional[ml_collections.ConfigDict] = None) -> dict:
    """Writes a run's inference params as `out_npz` + its `.json` config; returns {'stage',
    'output'}."""
    from emotalk_jax import checkpoints  # pylint: disable=g-import-not-at-top
    params, config = self.load_params(workdir, config, checkpoint)
    return {"stage": self.name, "output": str(checkpoints.export(params, config, out_npz))}


STAGES = {
    "landmark": Stage("landmark", "emotalk_jax.models.landmark_model", subtree=None,
                      best_metric="m_lmd", best_mode="min", trainer="emotalk_jax.train.landmark",
                      evaluator="emotalk_jax.train.landmark_baselines"),
    "texture": Stage("texture", "emotalk_jax.models.texture_model", subtree="generator",
                     best_metric="psnr", best_mode="max", trainer="emotalk_jax.train.texture",
                     evaluator="emotalk_jax.train.texture_baselines"),
}


def get(name: str) -> Stage:
  """The stage called `name`; ValueError naming the known ones otherwise."""
  if name not in STAGES:
    raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(STAGES)}")
  return STAGES[name]

"""A hyperparameter sweep over the stage 1 config: learning rate x mouth weight (3 x 3 = 9 runs).

`get_sweep(hyper)` follows the convention that launchers (XManager-style `hyper` modules) take:
`hyper.product([hyper.sweep(field, values), ...])` is the list of override dicts. Without a
launcher, `configs.landmark_sweep.sweep_overrides()` gives that list with a tiny built-in `hyper`,
and each entry becomes command-line overrides, e.g. (one run per line):

  python -c "from configs import landmark_sweep as s; \\
    print(*s.sweep_commands('~/runs/sweep'), sep='\\n')" | sh

which runs, for each point i, `emotalk train landmark --config configs/landmark_sweep.py
--workdir ~/runs/sweep/<i> --config.learning_rate=... --config.mouth_weight=...`.
"""

import itertools

from configs import landmark

LEARNING_RATES = (3e-4, 1e-3, 3e-3)
MOUTH_WEIGHTS = (1.0, 3.0, 10.0)


def get_config():
  return landmark.get_config()


def get_sweep(hyper):
  return hyper.product([
      hyper.sweep("config.learning_rate", list(LEARNING_RATES)),
      hyper.sweep("config.mouth_weight", list(MOUTH_WEIGHTS)),
  ])


class _Hyper:
  """The two functions of a launcher's `hyper` module that `get_sweep` uses."""

  @staticmethod
  def sweep(name, values):
    return [{name: v} for v in values]

  @staticmethod
  def product(sweeps):
    return [dict(kv for d in combo for kv in d.items()) for combo in itertools.product(*sweeps)]


def sweep_overrides():
  """The sweep as a list of {'config.field': value} dicts."""
  return get_sweep(_Hyper)


def sweep_commands(workdir_root: str, config_path: str = "configs/landmark_sweep.py"):
  """One `emotalk train landmark` command line per sweep point."""
  return [f"emotalk train landmark --config {config_path} --workdir {workdir_root}/{i} "
          + " ".join(f"--{k}={v}" for k, v in point.items())
          for i, point in enumerate(sweep_overrides())]

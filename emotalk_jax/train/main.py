"""`emotalk train <stage> --config CONFIG.py --workdir DIR [--config.field=value ...]`.

Flags are parsed with absl and `ml_collections.config_flags`, so every config field can be
overridden on the command line (`--config.learning_rate=1e-3`, `--config.model.dtype=bfloat16`).
Also runnable as `python -m emotalk_jax.train.main landmark --config ... --workdir ...`.
"""

import json
import logging
import sys

from absl import flags
import ml_collections
from ml_collections import config_flags

from emotalk_jax import stages


def parse(argv):
  """(config, workdir) from absl-style arguments (argv[0] is the program name)."""
  fv = parse_flags(argv)
  return fv.config, fv.workdir


def parse_flags(argv, define_extra=None) -> flags.FlagValues:
  """The parsed `--config`, `--workdir` (+ `--config.x=y`) flags; `define_extra(flag_values)` may
  define
  more flags (e.g. `emotalk evaluate`'s `--checkpoint`)."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config",
                                  None,
                                  "training configuration file (get_config()).",
                                  flag_values=fv,
                                  lock_config=True,
                                  sys_argv=list(argv))
  flags.DEFINE_string("workdir",
                      None,
                      "directory for checkpoints, metrics and plots.",
                      flag_values=fv)
  if define_extra is not None:
    define_extra(fv)
  try:
    rest = fv(list(argv))
  except (AttributeError, KeyError, TypeError, ValueError) as e:  # e.g. --config.no_such_field=1
    raise flags.Error(f"bad --config override: {e}") from e
  if len(rest) > 1:
    raise flags.Error(f"unexpected arguments: {' '.join(rest[1:])}")
  for name in ("config", "workdir"):
    if fv[name].value is None:
      raise flags.Error(f"--{name} is required")
  config = fv.config
  if not isinstance(config, ml_collections.ConfigDict):  # The config file failed to load.
    try:
      config.to_dict()
    except Exception as e:  # pylint: disable=broad-except
      raise flags.Error(f"cannot load the config file {fv['config'].config_filename}: "
                        f"{str(e).strip().splitlines()[-1].strip()}") from e
  return fv


def load_config_file(path) -> ml_collections.ConfigDict:
  """`get_config()` of a config file, e.g. configs/landmark_sample.py."""
  fv = parse_flags(["emotalk", f"--config={path}", "--workdir=."])
  return fv.config


def main(argv) -> dict:
  """argv: [stage, --config=..., --workdir=..., --config.x=y, ...]. Returns the final metrics."""
  if not argv or argv[0].startswith("-"):
    raise flags.Error(
        f"usage: emotalk train {{{','.join(stages.STAGES)}}} --config CONFIG.py --workdir DIR "
        "[--config.x=y]")
  stage, rest = stages.get(argv[0]), list(argv[1:])
  config, workdir = parse([f"emotalk train {stage.name}"] + rest)
  logging.getLogger().setLevel(logging.INFO)
  logging.info("config:\n%s", config)
  return stage.train_and_evaluate(config, workdir)


if __name__ == "__main__":
  print(json.dumps(main(sys.argv[1:]), indent=2))

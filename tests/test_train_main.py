"""train/main.py: `emotalk train STAGE --config FILE --workdir DIR --config.FIELD=VALUE`."""

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_train_flags_override_config_fields():
  from emotalk_jax.train import main as train_main  # pylint: disable=g-import-not-at-top
  config, workdir = train_main.parse([
      "emotalk train landmark", "--config",
      str(REPO_ROOT / "configs" / "landmark.py"), "--workdir=/tmp/w", "--config.learning_rate=2e-3",
      "--config.model.dtype=bfloat16", "--config.num_train_steps=3"
  ])
  assert (config.learning_rate, config.model.dtype, config.num_train_steps,
          workdir) == (2e-3, "bfloat16", 3, "/tmp/w")
  assert config.dataset == "mead" and config.batch_size == 32 and config.window == 8
  with pytest.raises(Exception, match="workdir"):
    train_main.parse(["emotalk", "--config", str(REPO_ROOT / "configs" / "landmark.py")])
  with pytest.raises(Exception, match=r"bad --config override: .*no_such_field"):
    train_main.parse([
        "emotalk", "--config",
        str(REPO_ROOT / "configs" / "landmark.py"), "--workdir=w", "--config.no_such_field=1"
    ])
  with pytest.raises(Exception, match=r"cannot load the config file nope\.py: .*No such file"):
    train_main.parse(["emotalk", "--config", "nope.py", "--workdir=w"])
  with pytest.raises(ValueError, match=r"unknown stage .nope.; expected one of landmark, texture"):
    train_main.main(["nope", "--config", "x", "--workdir", "y"])

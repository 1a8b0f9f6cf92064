"""checkpoints.py: Orbax checkpoints of training runs (CheckpointManager), exported .npz params,
shape
checks (check_params_match) and partial loads (merge_params)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from emotalk_jax import checkpoints
from emotalk_jax.train import loop as train_lib


def _state(value=0.0, step=0):
  tx = optax.adam(1e-3)
  params = {"dense": {"kernel": jnp.full((2, 3), value), "bias": jnp.zeros(3)}}
  state = train_lib.TrainState.create(params, tx, jax.random.PRNGKey(1))
  return state.replace(step=jnp.asarray(step, jnp.int32))


def test_checkpoint_round_trip_with_iterator_state(tmp_path):
  ckpt = checkpoints.CheckpointManager(tmp_path / "ckpt")
  assert ckpt.latest_step() is None
  data_state = {"format": "x", "positions": {"0": {"epoch": 2, "position": 17}}}
  saved = _state(1.5, step=12)
  ckpt.save(12, saved, data_state)
  ckpt.wait()
  state, data = ckpt.restore(_state())
  assert data == data_state
  assert int(state.step) == 12
  jax.tree.map(np.testing.assert_array_equal, state, saved)
  np.testing.assert_array_equal(ckpt.restore_params()["dense"]["kernel"], np.full((2, 3), 1.5))
  ckpt.close()
  with pytest.raises(FileNotFoundError):
    checkpoints.CheckpointManager(tmp_path / "empty").restore(_state())


def test_checkpoints_keep_last_n_and_best(tmp_path):
  ckpt = checkpoints.CheckpointManager(tmp_path,
                                       max_to_keep=2,
                                       best_metric="m_lmd",
                                       best_mode="min")
  # step -> eval M-LMD (None: saved without an eval).
  for step, m_lmd in [(1, 3.0), (2, 1.0), (3, None), (4, 2.0), (5, 4.0), (6, None)]:
    if step == 4:  # A restart in between: the ranking comes back from disk.
      ckpt.close()
      ckpt = checkpoints.CheckpointManager(tmp_path,
                                           max_to_keep=2,
                                           best_metric="m_lmd",
                                           best_mode="min")
      assert ckpt.best_step() == 2
    ckpt.save(step,
              _state(step=step), {},
              metrics=None if m_lmd is None else {
                  "m_lmd": m_lmd,
                  "f_lmd": 9.0
              })
    ckpt.wait()
  assert sorted(ckpt.all_steps()) == [2, 5, 6]
  assert ckpt.best_step() == 2 and ckpt.latest_step() == 6
  ckpt.close()
  maximise = checkpoints.CheckpointManager(tmp_path / "max",
                                           max_to_keep=1,
                                           best_metric="acc",
                                           best_mode="max")
  for step, acc in [(1, 0.2), (2, 0.9), (3, 0.5), (4, 0.1)]:
    maximise.save(step, _state(step=step), {}, metrics={"acc": acc})
    maximise.wait()
  assert sorted(maximise.all_steps()) == [2, 4] and maximise.best_step() == 2
  maximise.close()


def test_save_params_npz_round_trip(tmp_path):
  params = _state(2.0).params
  checkpoints.save_params_npz(params, tmp_path / "p.npz")
  loaded = checkpoints.load_params_npz(tmp_path / "p.npz")
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.device_get(params))


def test_merge_params_keeps_what_fits_and_reports_the_rest():
  fresh = {
      "a": {
          "kernel": jnp.zeros((3, 4)),
          "bias": jnp.zeros(4)
      },
      "new": {
          "kernel": jnp.zeros(2)
      }
  }
  restored = {"a": {"kernel": np.ones((3, 5)), "bias": np.ones(4)}, "old": {"kernel": np.ones(2)}}
  merged, kept, dropped = checkpoints.merge_params(restored, fresh)
  np.testing.assert_array_equal(merged["a"]["bias"], 1.0)   # Same path and shape: restored.
  np.testing.assert_array_equal(merged["a"]["kernel"], 0.0)  # Reshaped layer: fresh.
  np.testing.assert_array_equal(merged["new"]["kernel"], 0.0)
  assert jax.tree.structure(merged) == jax.tree.structure(fresh)
  assert kept == ["a/kernel", "new/kernel"] and dropped == ["a/kernel", "old/kernel"]


def test_check_params_match_names_missing_unexpected_and_reshaped():
  reference = {
      "a": {
          "kernel": jnp.zeros((3, 4)),
          "bias": jnp.zeros(4)
      },
      "b": {
          "kernel": jnp.zeros(2)
      }
  }
  # Fits: no error.
  checkpoints.check_params_match(jax.tree.map(np.ones_like, reference), reference)
  checkpoints.check_params_match(reference, jax.eval_shape(lambda: reference))  # Shapes only.
  params = {"a": {"kernel": np.ones((3, 5)), "bias": np.ones(4)}, "c": {"kernel": np.ones(2)}}
  with pytest.raises(ValueError,
                     match=r"^ckpt do not fit the model \(3 differ\): b/kernel: missing; "
                     r"c/kernel: not in the model; "
                     r"a/kernel: shape \(3, 5\), the model expects \(3, 4\)$"):
    checkpoints.check_params_match(params, reference, "ckpt")

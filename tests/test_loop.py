"""train/loop.py: optimizer and schedules, sharded train step, NaN check, preemption, metric writers
(the checkpoints it writes: test_checkpoints.py)."""

import json
import os
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from data_pipelines import input_pipeline
from emotalk_jax import checkpoints
from emotalk_jax.train import loop as train_lib


def _config(**kw):
  config = ml_collections.ConfigDict(
      dict(optimizer="adam",
           learning_rate=1.0,
           lr_schedule="cosine",
           warmup_steps=10,
           num_train_steps=110,
           end_lr_factor=0.0,
           grad_clip_norm=0.0))
  config.update(kw)
  return config


def test_schedules():
  cosine = train_lib.make_schedule(_config())
  np.testing.assert_allclose(
      [cosine(0), cosine(5), cosine(10), cosine(60),
       cosine(110)], [0, 0.5, 1, 0.5, 0], atol=1e-6)
  constant = train_lib.make_schedule(_config(lr_schedule="constant", warmup_steps=0))
  assert float(constant(0)) == float(constant(1000)) == 1.0
  warm = train_lib.make_schedule(_config(lr_schedule="constant", warmup_steps=4))
  np.testing.assert_allclose([warm(0), warm(2), warm(4), warm(100)], [0, 0.5, 1, 1])
  with pytest.raises(ValueError, match="lr_schedule"):
    train_lib.make_schedule(_config(lr_schedule="linear"))


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_and_clipping(name):
  params = {"w": jnp.ones(4)}
  grads = {"w": jnp.full(4, 100.0)}
  tx, _ = train_lib.make_optimizer(_config(optimizer=name, lr_schedule="constant", warmup_steps=0,
                                           learning_rate=0.1, grad_clip_norm=1.0, momentum=None))
  updates, _ = tx.update(grads, tx.init(params), params)
  if name == "sgd":  # Clipped to global norm 1 first: each entry 0.5, times lr.
    np.testing.assert_allclose(updates["w"], -0.05, rtol=1e-6)
  else:
    assert np.all(np.asarray(updates["w"]) < 0)
  with pytest.raises(ValueError, match="optimizer"):
    train_lib.make_optimizer(_config(optimizer="lion"))


def test_frozen_params_never_change():
  params = {"encoder": {"w": jnp.ones(4)}, "prior": jnp.ones(2)}
  grads = {"encoder": {"w": jnp.ones(4)}, "prior": jnp.ones(2)}
  tx, _ = train_lib.make_optimizer(
      _config(optimizer="adamw",
              lr_schedule="constant",
              warmup_steps=0,
              learning_rate=0.1,
              frozen_params=("prior",)))
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["prior"], 0.0)  # Not even weight decay moves it.
  assert np.all(np.asarray(updates["encoder"]["w"]) < 0)


def _loss_fn(params, batch, rng):
  del rng
  pred = batch["x"] @ params["w"] + params["b"]
  loss = jnp.mean((pred - batch["y"]) ** 2)
  return loss, {"mse": loss}


def test_train_step_shards_and_donates():
  mesh = input_pipeline.make_mesh()
  tx, schedule = train_lib.make_optimizer(
      _config(optimizer="sgd",
              lr_schedule="constant",
              warmup_steps=0,
              learning_rate=0.1,
              momentum=None))
  params = {"w": jnp.zeros((3,)), "b": jnp.zeros(())}
  state = train_lib.replicate(train_lib.TrainState.create(params, tx, jax.random.PRNGKey(0)), mesh)
  assert state.params["w"].sharding == train_lib.replicated_sharding(mesh)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 3)).astype(np.float32)
  batch = train_lib.shard_batch({"x": x, "y": x @ np.array([1.0, -2.0, 0.5], np.float32)}, mesh)
  assert batch["x"].sharding == train_lib.data_sharding(mesh)
  grads = jax.grad(lambda p: _loss_fn(p, batch, None)[0])(params)
  grads = jax.tree.map(np.asarray, grads)
  step = train_lib.make_train_step(_loss_fn, tx, mesh, schedule)
  old = state
  state, metrics = step(state, batch)
  assert old.params["w"].is_deleted()  # Donated.
  assert int(state.step) == 1 and not np.array_equal(state.rng, np.asarray(jax.random.PRNGKey(0)))
  np.testing.assert_allclose(state.params["w"], -0.1 * grads["w"], rtol=1e-6)
  assert set(metrics) == {"loss", "mse", "grad_norm", "param_norm", "learning_rate"}
  np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-6)


def test_check_finite_names_step_and_checkpoint(tmp_path):
  train_lib.check_finite({"loss": 1.0, "grad_norm": 2.0}, 5)
  with pytest.raises(FloatingPointError, match="non-finite loss=nan at step 7; no checkpoint"):
    train_lib.check_finite({"loss": np.float32("nan"), "grad_norm": 1.0}, 7)
  ckpt = checkpoints.CheckpointManager(tmp_path)
  ckpt.save(3, _state(), {"pos": 1})
  ckpt.wait()
  with pytest.raises(FloatingPointError,
                     match=r"grad_norm=inf at step 9; last good checkpoint: step 3 in "):
    train_lib.check_finite({"loss": 1.0, "grad_norm": np.inf}, 9, ckpt)
  ckpt.close()


def _state(value=0.0, step=0):
  tx = optax.adam(1e-3)
  params = {"dense": {"kernel": jnp.full((2, 3), value), "bias": jnp.zeros(3)}}
  state = train_lib.TrainState.create(params, tx, jax.random.PRNGKey(1))
  return state.replace(step=jnp.asarray(step, jnp.int32))


def test_preemption_handler_catches_sigterm():
  before = signal.getsignal(signal.SIGTERM)
  with train_lib.PreemptionHandler() as preempt:
    assert not preempt.should_stop()
    os.kill(os.getpid(), signal.SIGTERM)
    assert preempt.requested and preempt.should_stop()
  assert signal.getsignal(signal.SIGTERM) is before


def test_metric_writer_jsonl_and_tensorboard(tmp_path):
  writer = train_lib.MetricWriter(tmp_path)
  writer.write_scalars(1, {"train/loss": np.float32(0.5), "eval/m_lmd": jnp.asarray(2.0)})
  writer.write_scalars(2, {"train/loss": float("nan")})
  writer.close()
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(l["step"], l["train/loss"]) for l in lines] == [(1, 0.5), (2, "nan")
                                                          ] and lines[0]["eval/m_lmd"] == 2.0
  events = list(tmp_path.glob("events.out.tfevents.*"))
  assert events
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tags = {
      v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0])) for v in e.summary.value
  }
  assert {"train/loss", "eval/m_lmd"} <= tags


def test_maybe_initialize_distributed_is_off_by_default(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  assert not train_lib.maybe_initialize_distributed(
      ml_collections.ConfigDict({"distributed": False}))
  assert train_lib.maybe_initialize_distributed(
      ml_collections.ConfigDict({
          "distributed": True,
          "coordinator_address": "h:1234",
          "num_processes": 2,
          "process_id": None
      }))
  assert calls == [{"coordinator_address": "h:1234", "num_processes": 2}]


def test_progress_bar_and_mean_metrics():
  bar = train_lib.progress_bar(10, initial=4, enabled=False)
  bar.update(1)
  bar.close()
  assert train_lib.mean_metrics([{"a": 1.0}, {"a": 3.0}]) == {"a": 2.0}
  assert train_lib.mean_metrics([]) == {}

"""Generic training machinery shared by the training stages (landmark GCN, texture network).

A trainer (e.g. `emotalk_jax.train.landmark`) combines these pieces:

```python
tx, schedule = train_lib.make_optimizer(config)
state = train_lib.TrainState.create(params, tx, rng)
ckpt = checkpoints.CheckpointManager(workdir / "checkpoints", max_to_keep=3, best_metric="m_lmd")
if ckpt.latest_step() is not None:
  state, data_state = ckpt.restore(state)        # params, opt_state, step, rng + iterator position
  train_iter.set_state(data_state)
state = train_lib.replicate(state, mesh)          # params replicated: NamedSharding(mesh, P())
step_fn = train_lib.make_train_step(loss_fn, tx, mesh, schedule)   # jit, state donated
with train_lib.PreemptionHandler() as preempt:    # SIGTERM -> preempt.requested
  state, metrics = step_fn(state, batch)          # batch sharded P('data')
  # FloatingPointError naming the step + last checkpoint
  train_lib.check_finite(metrics, step, ckpt)
```

Parallelism is `jax.jit` over a 1-D ('data',) device mesh
(`data_pipelines.input_pipeline.make_mesh`): parameters and optimizer state are replicated, the
batch is sharded along 'data', and XLA inserts the gradient all-reduce. The same code runs on one
CPU, 8 simulated CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8`), a GPU or a TPU
pod slice.

Multi-host: every process runs the same program. Set `config.distributed = True` so that
`maybe_initialize_distributed(config)` calls `jax.distributed.initialize()` (it reads the
coordinator address, process count and index from the cluster environment: Cloud TPU, SLURM, Open
MPI, or the `JAX_COORDINATOR_ADDRESS` / `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID` variables); it must
run before any other JAX call. Each process then reads its own part of the data (the input pipeline
does that), Orbax writes the checkpoint collectively, and only process 0 writes metrics and plots.
"""

import json
import logging
import math
import pathlib
import signal
import threading
import time
from typing import Any, Callable, Mapping, Optional

import flax
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import jax.numpy as jnp
import numpy as np
import optax
import ml_collections

from emotalk_jax import checkpoints

DATA_AXIS = "data"


# Distributed --------------------------------------------------------------------------------------

def maybe_initialize_distributed(config) -> bool:
  """Calls `jax.distributed.initialize()` when `config.distributed` is true (multi-host runs only).

  Optional `config.coordinator_address`, `config.num_processes`, `config.process_id` pass through;
  left unset, JAX detects them from the cluster environment. Returns whether it initialised.
  """
  if not config.get("distributed", False):
    return False
  kwargs = {k: config.get(k) for k in ("coordinator_address", "num_processes", "process_id")
            if config.get(k) is not None}
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed initialised: process %d of %d", jax.process_index(),
               jax.process_count())
  return True


# Train state and optimizer ------------------------------------------------------------------------

def start_run(config: ml_collections.ConfigDict, workdir) -> pathlib.Path:
  """What every trainer does first: multi-host init (if configured), the absolute workdir created,
  and the
  run's config saved there (process 0) so `load_config` can rebuild the model from the workdir."""
  maybe_initialize_distributed(config)
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    checkpoints.save_config(config, workdir / checkpoints.CONFIG_FILE)
  return workdir


@flax.struct.dataclass
class TrainState:
  """What a training step changes: a pytree (params are plain dicts; apply_fn and tx stay outside).

  step: int32 scalar; params: the model's params; opt_state: the optax state; rng: a raw uint32[2]
  PRNG key (split once per step, so a resumed run draws the same randomness).
  """
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array

  @classmethod
  def create(cls, params, tx: optax.GradientTransformation, rng) -> "TrainState":
    rng = jnp.asarray(
        jax.random.key_data(rng)
        if jnp.issubdtype(jnp.asarray(rng).dtype, jax.dtypes.prng_key) else rng, jnp.uint32)
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng)


def make_schedule(config) -> optax.Schedule:
  """Learning rate per step: `config.lr_schedule` 'constant' or 'cosine' (linear warmup over
  `config.warmup_steps`, then cosine decay to `config.get('end_lr_factor', 0.0)` x the peak over the
  rest of `config.num_train_steps`)."""
  lr = float(config.learning_rate)
  kind = config.get("lr_schedule", "cosine")
  warmup = int(config.get("warmup_steps", 0))
  if kind == "constant":
    if warmup > 0:
      return optax.join_schedules(
          [optax.linear_schedule(0.0, lr, warmup),
           optax.constant_schedule(lr)], [warmup])
    return optax.constant_schedule(lr)
  if kind == "cosine":
    total = max(int(config.num_train_steps), warmup + 1)
    return optax.warmup_cosine_decay_schedule(0.0 if warmup else lr,
                                              lr,
                                              warmup,
                                              total,
                                              end_value=lr *
                                              float(config.get("end_lr_factor", 0.0)))
  raise ValueError(f"unknown lr_schedule {kind!r}; expected 'constant' or 'cosine'")


def make_optimizer(config):
  """(optax transformation, lr schedule) from the config.

  Fields: `optimizer` ('adam', 'adamw' or 'sgd'), `learning_rate`, `lr_schedule`, `warmup_steps`,
  `num_train_steps`, optional `weight_decay` (adamw), `b1`, `b2`, `eps`, `momentum` (sgd) and
  `grad_clip_norm` (clip by global norm before the update; 0 or None: no clipping) and
  `frozen_params` (top-level param names that never change, e.g. ('audio_encoder',)).
  """
  schedule = make_schedule(config)
  name = config.get("optimizer", "adam")
  b1, b2, eps = float(config.get("b1",
                                 0.9)), float(config.get("b2",
                                                         0.999)), float(config.get("eps", 1e-8))
  if name == "adam":
    opt = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
  elif name == "adamw":
    opt = optax.adamw(schedule,
                      b1=b1,
                      b2=b2,
                      eps=eps,
                      weight_decay=float(config.get("weight_decay", 1e-4)))
  elif name == "sgd":
    opt = optax.sgd(schedule, momentum=config.get("momentum", 0.9) or None)
  else:
    raise ValueError(f"unknown optimizer {name!r}; expected 'adam', 'adamw' or 'sgd'")
  clip = config.get("grad_clip_norm", None)
  if clip:
    opt = optax.chain(optax.clip_by_global_norm(float(clip)), opt)
  frozen = set(config.get("frozen_params", ()) or ())
  if frozen:
    labels = lambda params: {k: "frozen" if k in frozen else "train" for k in params}
    opt = optax.multi_transform({"train": opt, "frozen": optax.set_to_zero()}, labels)
  return opt, schedule


# Sharding -----------------------------------------------------------------------------------------

def replicated_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree, mesh):
  """Puts every leaf on all devices of the mesh (NamedSharding(mesh, P())).

  The result may share buffers with `tree` (one device): after a donating step, don't reuse `tree`.
  """
  return jax.device_put(tree, replicated_sharding(mesh))


def shard_batch(batch: Mapping[str, Any], mesh) -> dict:
  """A batch (numpy or jax arrays holding the GLOBAL batch, single process) -> arrays sharded along
  'data'; text arrays are dropped. Multi-host input uses `input_pipeline.to_global_batch`
  instead."""
  sharding = data_sharding(mesh)
  return {
      k: v if isinstance(v, jax.Array) and v.sharding == sharding else jax.device_put(v, sharding)
      for k, v in batch.items()
      if np.asarray(v).dtype.kind not in "OSU"
  }


def to_host(x) -> np.ndarray:
  """A (global) jax.Array as numpy on this host (gathers across processes when needed)."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def make_train_step(loss_fn: Callable,
                    tx: optax.GradientTransformation,
                    mesh,
                    schedule: Optional[optax.Schedule] = None,
                    with_extra: bool = False) -> Callable:
  """Jitted `step(state, batch) -> (state, metrics)`; the state's buffers are donated.

  loss_fn(params, batch, rng) -> (scalar loss, dict of scalar metrics). The step splits the state's
  rng, takes the gradient, applies `tx`, and returns metrics with 'loss', 'grad_norm' (before
  clipping), 'param_norm' and 'learning_rate' added. State in and out is replicated, the batch
  sharded along 'data'. With `with_extra`, the step is `step(state, batch, extra)` and the loss
  `loss_fn(params, batch, rng, extra)`: `extra` is a replicated pytree the loss reads but nothing
  trains (e.g. frozen VGG weights), passed as an argument so that it is not baked into the program.
  """

  def step(state: TrainState, batch, *extra):
    rng, step_rng = jax.random.split(state.rng)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, step_rng,
                                                                   *extra)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(aux,
                   loss=loss,
                   grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params))
    if schedule is not None:
      metrics["learning_rate"] = schedule(state.step)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state, rng=rng), metrics

  repl = replicated_sharding(mesh)
  in_shardings = (repl, data_sharding(mesh)) + ((repl,) if with_extra else ())
  return jax.jit(step, in_shardings=in_shardings, out_shardings=(repl, repl), donate_argnums=(0,))


def check_finite(
    metrics: Mapping[str, Any],
    step: int,
    ckpt: Optional[checkpoints.CheckpointManager] = None,
    keys=("loss", "grad_norm")) -> None:
  """Raises FloatingPointError if any of `keys` in the (host) metrics is NaN or Inf, naming the step
  and the last checkpoint that was saved before it (the one to resume from)."""
  bad = {k: float(metrics[k]) for k in keys if k in metrics and not np.all(np.isfinite(metrics[k]))}
  if not bad:
    return
  last = None if ckpt is None else ckpt.latest_step()
  where = (f"last good checkpoint: step {last} in {ckpt.directory}" if last is not None
           else "no checkpoint was saved before it")
  raise FloatingPointError(
      f"non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}; {where}")


# Preemption ---------------------------------------------------------------------------------------

class PreemptionHandler:
  """Context manager: while active, SIGTERM (and optionally SIGINT) only sets `requested`, so the
  loop can save a checkpoint and return cleanly. The previous handlers come back on exit.

  With several processes, `should_stop()` agrees across them (any process asked -> all stop), so
  that all of them save the same step; it is a collective: call it at the same steps on every
  process.
  """

  def __init__(self, signals=(signal.SIGTERM,)):
    self.signals = tuple(signals)
    self.requested = False
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    logging.warning("received signal %d: will save a checkpoint and stop after this step", signum)
    self.requested = True

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, h in self._previous.items():
      signal.signal(s, h)
    self._previous = {}
    return False

  def should_stop(self) -> bool:
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    flags = multihost_utils.process_allgather(np.array([int(self.requested)], np.int32))
    return bool(np.asarray(flags).any())


# Metrics ------------------------------------------------------------------------------------------

class MetricWriter:
  """Scalars to TensorBoard (tf.summary event files in `logdir`) and to `logdir/metrics.jsonl`
  (one JSON object per write: {"step": s, "<prefix>/<name>": value, ...}). Only process 0 writes."""

  def __init__(self, logdir, enabled: Optional[bool] = None):
    self.logdir = pathlib.Path(logdir)
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._tb = None
    self._jsonl = None
    if self.enabled:
      self.logdir.mkdir(parents=True, exist_ok=True)
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._tf = tf
      self._tb = tf.summary.create_file_writer(str(self.logdir))
      self._jsonl = open(self.logdir / "metrics.jsonl", "a", encoding="utf-8")

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    scalars = {k: float(np.asarray(v)) for k, v in scalars.items()}
    with self._tb.as_default():
      for k, v in scalars.items():
        self._tf.summary.scalar(k, v, step=int(step))
    self._tb.flush()
    record = {"step": int(step), "time": round(time.time(), 3)}
    record.update({k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()})
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._jsonl.close()
      self._tb = self._jsonl = None


def progress_bar(total: int, initial: int = 0, desc: str = "train", enabled: Optional[bool] = None):
  """A tqdm bar over steps (steps/s and ETA), shown on process 0 only."""
  from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  enabled = jax.process_index() == 0 if enabled is None else enabled
  return tqdm.tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled,
                   dynamic_ncols=True, mininterval=1.0)


def mean_metrics(history) -> dict:
  """Mean over a list of host metric dicts."""
  if not history:
    return {}
  return {k: float(np.mean([float(h[k]) for h in history])) for k in history[0]}


# The training loop --------------------------------------------------------------------------------


def train_loop(config,
               workdir,
               *,
               state: TrainState,
               train_step: Callable,
               train_iter,
               ckpt: checkpoints.CheckpointManager,
               evaluate_fn: Callable,
               step_args=()) -> dict:
  """The loop a trainer runs once it has its state, step and data: log, evaluate, checkpoint, stop.

  Per step: next batch, `train_step(state, batch, *step_args)`, NaN/Inf check (`check_finite`),
  progress bar; every `config.log_every_steps` the mean train metrics go to the `MetricWriter` of
  `workdir`; every `config.eval_every_steps` (and at the last step) `evaluate_fn(state, step) ->
  dict` of eval scalars (it may write plots); every `config.checkpoint_every_steps`, at the last
  step and on SIGTERM a checkpoint (state + `train_iter.get_state()`, ranked by the eval metrics of
  that step if any). Closes `ckpt`.

  Returns:
    {'step', 'preempted', 'train/<m>' (mean over the last log interval), 'eval/<m>' (last eval)}.
  """
  writer = MetricWriter(workdir)
  step = int(state.step)
  total = int(config.num_train_steps)
  history, final, eval_metrics = [], {}, {}
  preempted = False
  bar = progress_bar(total, initial=step)
  try:
    with PreemptionHandler() as preempt:
      while step < total:
        batch = next(train_iter)
        state, metrics = train_step(state, batch, *step_args)
        step += 1
        metrics = jax.device_get(metrics)
        check_finite(metrics, step, ckpt)
        history.append(metrics)
        bar.update(1)
        bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", refresh=False)
        is_last = step == total
        if step % config.log_every_steps == 0 or is_last:
          final = {f"train/{k}": v for k, v in mean_metrics(history).items()}
          writer.write_scalars(step, final)
          history = []
        evaluated = False
        if (config.eval_every_steps and step % config.eval_every_steps == 0) or is_last:
          eval_metrics = evaluate_fn(state, step)
          writer.write_scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
          evaluated = True
        stop = preempt.should_stop()
        if step % config.checkpoint_every_steps == 0 or is_last or stop:
          ckpt.save(step,
                    state,
                    train_iter.get_state(),
                    metrics=eval_metrics if evaluated else None)
        if stop:
          logging.warning("stopping at step %d on request (SIGTERM); checkpoint saved", step)
          preempted = True
          break
  finally:
    bar.close()
    ckpt.wait()
    ckpt.close()
    writer.close()
  out = {"step": step, "preempted": preempted}
  out.update(final)
  out.update({f"eval/{k}": v for k, v in eval_metrics.items()})
  return out

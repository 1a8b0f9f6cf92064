"""Stage 1 training: the landmark graph network (speech + emotion + neutral face -> landmarks per
frame).

A library in the style of the google/flax examples: `train_and_evaluate(config, workdir)` does the
whole run; `emotalk train landmark --config configs/landmark.py --workdir DIR` calls it.

What it writes in `workdir`:
  checkpoints/<step>/   Orbax: params, opt_state, step, rng + the input iterator's position
                        (the last `max_checkpoints_to_keep` and the best by eval M-LMD).
  metrics.jsonl         one JSON line per log/eval write ('train/...' and 'eval/...' keys).
  events.out.tfevents.* TensorBoard scalars (same values).
  config.json           the run's config (`emotalk_jax.checkpoints` rebuilds the model from it).
  plots/step_<N>.png    predicted vs true landmarks for a few frames of the first eval example.

Running it again with the same workdir resumes from the latest checkpoint exactly: same params,
optimizer state, step, rng and next batch. SIGTERM makes it save a checkpoint and return.

Loss: `landmark_losses.landmark_loss` (mouth-weighted landmark L2 plus velocity; clips without audio
  count
`config.silent_weight` through what they can teach) + `config.emotion_weight` x
`landmark_losses.emotion_loss` of the emotion head; each example is mirrored left-right with
probability `config.flip_prob`.
Eval: M-LMD and F-LMD in pixels of a 256 crop on `config.num_eval_batches` batches of the test split
(fixed windows, not shuffled, so the numbers are comparable across evals), over all windows and over
the windows of clips with audio (`audio_m_lmd`, `audio_f_lmd`).
"""

import logging
import os
import pathlib
from typing import Optional

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from data_pipelines import input_pipeline  # Import first: keeps TensorFlow off the GPUs.
from emotalk_jax import checkpoints
from emotalk_jax import emotions
from emotalk_jax.evaluate import emotion_geometry
from emotalk_jax.evaluate import lipsync
from emotalk_jax.evaluate import lmd
from emotalk_jax.media import landmarks
from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_losses
from emotalk_jax.models import landmark_model
from emotalk_jax import stages
from emotalk_jax.train import loop as train_lib

STAGE = stages.get("landmark")

def dataset_name(config) -> str:
  """The TFDS name to read: `config.dataset` (a name or a prepared dataset directory), with
  `/<config.dataset_config>` appended when set."""
  name = str(config.dataset)
  if config.get("dataset_config"):
    name = f"{name}/{config.dataset_config}"
  return name


def get_builder(config):
  """The TFDS builder of `config.dataset` (/`dataset_config`) in `config.data_dir`."""
  return input_pipeline.get_builder(dataset_name(config), config.get("data_dir") or None)


def mean_displacement(config, builder=None, num_train_batches: Optional[int] = None,
                      basis: Optional[np.ndarray] = None) -> np.ndarray:
  """The mean of (landmarks - neutral landmarks) per node over all real frames of train-split
  windows, less each window's emotion offset when `basis` is given (the model adds that itself).

  Args:
    config: a landmark training config (dataset, train_split, window, batch_size, seed).
    builder: the dataset's builder (default: the config's).
    num_train_batches: None: one window of every train clip (one pass over the split); N: N batches
      of `config.batch_size` windows (the training stream's windows, unshuffled, over as many epochs
      as needed).
    basis: the model's `emotion_basis` [8, 68, 2], or None.

  Returns:
    float32 [68, 2], in the [-1, 1] landmark coordinates.
  """
  builder = get_builder(config) if builder is None else builder
  one_pass = num_train_batches is None
  it = input_pipeline.InputIterator(builder,
                                    config.train_split,
                                    batch_size=config.batch_size,
                                    window=config.window,
                                    seed=config.seed,
                                    mesh=None,
                                    shuffle=False,
                                    repeat=not one_pass,
                                    drop_remainder=not one_pass)
  total = np.zeros((face_graph.NUM_NODES, 2), np.float64)
  count = 0
  for i, batch in enumerate(it):
    if not one_pass and i >= num_train_batches:
      break
    shift = batch["landmarks"].astype(np.float64) - batch["neutral_landmarks"][:, None].astype(
        np.float64)
    if basis is not None:
      shift -= np.asarray(landmark_model.emotion_offset(batch["emotion"], basis, shift.shape[1]))
    mask = batch["frame_mask"].astype(np.float64)[..., None, None]  # [B, K, 1, 1]
    total += (shift * mask).sum(axis=(0, 1))
    count += int(batch["frame_mask"].sum())
  if count == 0:
    raise ValueError(f"no train windows in {builder.info.full_name} {config.train_split}")
  return (total / count).astype(np.float32)


def emotion_displacements(config, builder, split: Optional[str] = None) -> list:
  """`evaluate.emotion_geometry.displacements` of the clips with exact labels in `split` (default
  the train split)."""
  keys = ["speaker", "emotion", "intensity", "emotion_exact", "landmarks"]
  clips = [
      emotion_geometry.Clip(ex["speaker"].decode(), emotions.EMOTIONS[int(ex["emotion"])],
                            float(ex["intensity"]), ex["landmarks"])
      for ex in input_pipeline.whole_clips(builder, split or config.train_split, keys)
      if ex["emotion_exact"]
  ]
  return emotion_geometry.displacements(clips)


def augment(batch, rng, flip_prob: float) -> dict:
  """Mirrors each example's landmarks (targets and neutral) left-right with probability `flip_prob`.

  A mirrored face is as plausible as the original and says the same words with the same emotion, so
  this doubles the faces a small dataset shows the model; mel and emotion are unchanged.
  """
  if not flip_prob:
    return batch
  flip = jax.random.bernoulli(rng, flip_prob, (batch["landmarks"].shape[0],))
  return dict(batch,
              landmarks=jnp.where(flip[:, None, None, None],
                                  landmarks.mirror(batch["landmarks"], jnp), batch["landmarks"]),
              neutral_landmarks=jnp.where(flip[:, None, None],
                                          landmarks.mirror(batch["neutral_landmarks"], jnp),
                                          batch["neutral_landmarks"]))


def make_loss_fn(model, config):
  """loss_fn(params, batch, rng) -> (loss, metrics) for `train_lib.make_train_step`."""

  def loss_fn(params, batch, rng):
    flip_rng, dropout_rng = jax.random.split(rng)
    batch = augment(batch, flip_rng, config.get("flip_prob", 0.0))
    out = landmark_model.apply(model, params, batch, train=True, rngs={"dropout": dropout_rng})
    loss, aux = landmark_losses.landmark_loss(out["landmarks"],
                                              batch["landmarks"],
                                              batch["has_audio"],
                                              mouth_weight=config.mouth_weight,
                                              velocity_weight=config.velocity_weight,
                                              silent_weight=config.get("silent_weight", 0.0),
                                              head_motion_weight=config.get(
                                                  "head_motion_weight", 1.0),
                                              distance=config.get("landmark_distance", "squared"))
    aux = {f"landmark_{k}": v for k, v in aux.items()}
    aux["landmark_loss"] = loss
    opening_weights = {name: config.get(f"{name}_weight", 0.0)
                       for name in ("opening", "opening_velocity", "opening_std")}
    if any(opening_weights.values()):
      terms = landmark_losses.opening_loss(out["landmarks"], batch["landmarks"], batch["has_audio"])
      aux.update(terms)
      loss = loss + sum(w * terms[name] for name, w in opening_weights.items() if w)
    if "emotion_logits" in out and config.emotion_weight > 0:
      emo = landmark_losses.emotion_loss(out["emotion_logits"], batch["emotion"])
      aux["emotion_loss"] = emo
      loss = loss + config.emotion_weight * emo
    return loss, aux

  return loss_fn


def landmark_metrics(pred, target) -> dict:
  """Per-example M-LMD and F-LMD ([B] each, pixels of a 256 crop) of predicted vs true landmarks
  [B, K, 68, 2]."""
  return {"m_lmd": jax.vmap(lambda p, t: lmd.m_lmd(p, t, size=256))(pred, target),
          "f_lmd": jax.vmap(lambda p, t: lmd.f_lmd(p, t, size=256))(pred, target)}


def jit_eval_step(predict_fn, mesh):
  """Jitted eval_step(params, batch) -> (metrics, predicted landmarks [B, K, 68, 2]) for any
  `predict_fn(params, batch) -> landmarks [B, K, 68, 2]` (the model, or a baseline: see
  `emotalk_jax.train.landmark_baselines`); `evaluate` runs it over the test split."""

  def eval_step(params, batch):
    pred = predict_fn(params, batch).astype(jnp.float32)
    return landmark_metrics(pred, batch["landmarks"]), pred

  repl = train_lib.replicated_sharding(mesh)
  return jax.jit(eval_step, in_shardings=(repl, train_lib.data_sharding(mesh)),
                 out_shardings=(repl, train_lib.data_sharding(mesh)))


def predict_fn(model):
  """(params, batch) -> the model's landmarks [B, T, 68, 2] (what `jit_eval_step` and `lip_sync`
  take)."""
  return lambda params, batch: landmark_model.apply(model, params, batch)["landmarks"]


def make_eval_step(model, mesh):
  """Jitted eval_step(params, batch) -> (metrics, predicted landmarks [B, K, 68, 2]) of the
  model."""
  return jit_eval_step(predict_fn(model), mesh)


def plot_landmarks(path, pred, target, frames=None, title: str = "") -> None:
  """PNG of predicted (red) vs true (green) landmarks [K, 68, 2] in [-1, 1], for frames `frames`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  k = pred.shape[0]
  frames = sorted(set(frames if frames is not None else (0, k // 2, k - 1)))
  fig, axes = plt.subplots(1, len(frames), figsize=(3 * len(frames), 3.2), squeeze=False)
  for ax, j in zip(axes[0], frames):
    ax.scatter(target[j, :, 0], target[j, :, 1], s=6, c="tab:green", label="true")
    ax.scatter(pred[j, :, 0], pred[j, :, 1], s=6, c="tab:red", marker="x", label="predicted")
    ax.set_xlim(-1, 1)
    ax.set_ylim(1, -1)  # Image coordinates: y down.
    ax.set_aspect("equal")
    ax.set_title(f"frame {j}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  axes[0][0].legend(loc="lower left", fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.stem + ".tmp.png")
  fig.savefig(tmp, dpi=80)
  plt.close(fig)
  os.replace(tmp, path)


def evaluate(eval_step, params, config, builder, mesh, *, plot_path=None) -> dict:
  """M-LMD / F-LMD over `config.num_eval_batches` batches of the test split (fixed windows).

  Returns {'m_lmd', 'f_lmd'} averaged over all windows, and {'audio_m_lmd', 'audio_f_lmd'} over the
  windows of clips with audio (the only ones whose mouth motion can be predicted; absent when there
  are none), plus 'num_windows' and 'num_audio_windows'.
  """
  it = input_pipeline.test_windows(builder, config, mesh)
  sums, audio_sums, n, n_audio = {}, {}, 0, 0
  for i in range(config.num_eval_batches):
    batch = next(it)
    metrics, pred = eval_step(params, batch)
    has_audio = train_lib.to_host(batch["has_audio"]).astype(bool)
    for k, v in jax.device_get(metrics).items():
      v = np.asarray(v, np.float64)
      sums[k] = sums.get(k, 0.0) + v.sum()
      audio_sums[k] = audio_sums.get(k, 0.0) + v[has_audio].sum()
    n += has_audio.size
    n_audio += int(has_audio.sum())
    if i == 0 and plot_path is not None:
      pred0, target0 = train_lib.to_host(pred)[0], train_lib.to_host(batch["landmarks"])[0]
      if jax.process_index() == 0:
        plot_landmarks(plot_path, pred0, target0, title=pathlib.Path(plot_path).stem)
  out = {k: float(v / max(n, 1)) for k, v in sums.items()}
  if n_audio:
    out.update({f"audio_{k}": float(v / n_audio) for k, v in audio_sums.items()})
  out.update(num_windows=n, num_audio_windows=n_audio)
  return out


# Whole clips are padded to a multiple of this many frames: one compilation per length.
CLIP_PAD = 64
NEUTRAL_INDEX = emotions.EMOTIONS.index("neutral")


def test_clips_with_audio(config, builder, max_clips: Optional[int] = None):
  """Yields the whole test clips that have audio, each as a model batch of one: 'mel' [1, T, 16,
  80], 'speech' [1, T, 384] (when the dataset stores it), 'emotion' [1, 9], 'neutral_landmarks' [1,
  68, 2], 'landmarks' [1, T, 68, 2] (the true ones), T padded to a multiple of `CLIP_PAD` by
  repeating the last
  frame, and 'num_frames' (the clip's real T)."""
  keys = ["landmarks", "mel", "has_audio", "emotion", "intensity", "neutral_landmarks", "speech"]
  count = 0
  for ex in input_pipeline.whole_clips(builder, config.test_split, keys):
    if not ex["has_audio"]:
      continue
    if max_clips is not None and count >= max_clips:
      return
    count += 1
    num_frames = len(ex["landmarks"])
    index = np.minimum(np.arange(-(-num_frames // CLIP_PAD) * CLIP_PAD), num_frames - 1)
    emotion = np.zeros(landmark_model.EMOTION_VECTOR_SIZE, np.float32)
    emotion[int(ex["emotion"])], emotion[-1] = 1.0, float(ex["intensity"])
    clip = {
        "mel": ex["mel"][index][None],
        "emotion": emotion[None],
        "num_frames": num_frames,
        "neutral_landmarks": ex["neutral_landmarks"][None],
        "landmarks": ex["landmarks"][index][None]
    }
    if "speech" in ex:
      clip["speech"] = ex["speech"][index][None].astype(np.float32)
    yield clip


def lip_sync(predict_fn, params, config, builder, max_clips: Optional[int] = None) -> dict:
  """How the predicted mouth moves with the speech, on the whole test clips with audio.

  Per clip, the predicted and the true mouth opening (`face_graph.mouth_opening`, pixels of a 256
  crop) give Pearson's r and the ratio of their standard deviations (`evaluate.lipsync.lip_motion`).

  Args:
    predict_fn: (params, batch) -> landmarks [B, T, 68, 2], as for `jit_eval_step` (jitted here).
    params: its params.
    config, builder: the test split's config and dataset.
    max_clips: clips at most (default all).

  Returns:
    {'lip_r', 'lip_std_ratio' (means over clips), 'lip_error' = (1 - lip_r) + |log lip_std_ratio|
    (0 is perfect: in step with the true mouth and moving as much), 'num_lip_clips'}; {} without
      such clips.
  """
  predict = jax.jit(predict_fn)
  scores = []
  for clip in test_clips_with_audio(config, builder, max_clips):
    n = clip.pop("num_frames")
    pred = np.asarray(predict(params, clip), np.float64)[0, :n]
    true = clip["landmarks"][0, :n].astype(np.float64)
    scores.append(lipsync.lip_motion(face_graph.mouth_opening(pred * 128, np),
                                     face_graph.mouth_opening(true * 128, np)))
  if not scores:
    return {}
  r = float(np.nanmean([s["r"] for s in scores])) if any(
      np.isfinite(s["r"]) for s in scores) else 0.0
  ratio = float(np.nanmean([s["std_ratio"] for s in scores]))
  return {
      "lip_r": r,
      "lip_std_ratio": ratio,
      "lip_error": (1.0 - r) + abs(float(np.log(max(ratio, 1e-6)))),
      "num_lip_clips": len(scores)
  }


def _emotion_vector(name: str, intensity: float) -> np.ndarray:
  vector = np.zeros((1, landmark_model.EMOTION_VECTOR_SIZE), np.float32)
  vector[0, emotions.EMOTIONS.index(name)], vector[0, -1] = 1.0, intensity
  return vector


def emotion_geometry_scores(predict_fn, params, config, builder) -> dict:
  """Held-out emotion geometry (`evaluate.emotion_geometry.score`), per test speaker who has a
  neutral clip and emotional ones: the displacement predicted from that speaker's neutral landmarks
  for each of their emotions at intensity 1 and 0.5, with the speech of the first test clip with
  audio held fixed, against the speaker's real displacement.

  Returns:
    {speaker: score} ({} without such speakers or without a test clip with audio).
  """
  keys = ["speaker", "emotion", "intensity", "emotion_exact", "landmarks", "neutral_landmarks"]
  clips = [ex for ex in input_pipeline.whole_clips(builder, config.test_split, keys)
           if ex["emotion_exact"]]
  measured = emotion_geometry.displacements(
      emotion_geometry.Clip(ex["speaker"].decode(), emotions.EMOTIONS[int(ex["emotion"])],
                            float(ex["intensity"]), ex["landmarks"]) for ex in clips)
  speech = next(test_clips_with_audio(config, builder, 1), None)
  if not measured or speech is None:
    return {}
  num_frames = speech.pop("num_frames")
  predict = jax.jit(predict_fn)
  out = {}
  for speaker in sorted({d.speaker for d in measured}):
    neutral = next(ex["neutral_landmarks"] for ex in clips
                   if ex["speaker"].decode() == speaker and int(ex["emotion"]) == NEUTRAL_INDEX)
    real = [d for d in measured if d.speaker == speaker]

    def run(name, intensity):
      batch = dict(speech, emotion=_emotion_vector(name, intensity),
                   neutral_landmarks=neutral[None])
      return np.asarray(predict(params, batch), np.float64)[0, :num_frames]

    sequences = {"neutral": run("neutral", 1.0)}
    for d in real:
      sequences[d.emotion] = run(d.emotion, 1.0)
      sequences[f"{d.emotion}@0.5"] = run(d.emotion, 0.5)
    predicted = emotion_geometry.predicted_displacement(sequences)
    out[speaker] = emotion_geometry.score(real, {d.emotion: predicted[d.emotion] for d in real},
                                          {d.emotion: predicted[f"{d.emotion}@0.5"] for d in real})
  return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
  """Trains the landmark network, evaluating and checkpointing periodically; resumes from `workdir`.

  Returns the final metrics: {'step', 'preempted', 'train/<m>' (mean over the last log interval),
  'eval/m_lmd', 'eval/f_lmd' (last eval)}.

  Raises:
    FloatingPointError: the loss or gradient norm became NaN/Inf (message: the step and the last
      checkpoint to resume from).
  """
  workdir = train_lib.start_run(config, workdir)
  mesh = input_pipeline.make_mesh()
  builder = get_builder(config)
  logging.info("training on %s with %d device(s) over %d process(es)", builder.info.full_name,
               jax.device_count(), jax.process_count())

  balance = {"balance_speakers": True} if config.get("balance_speakers", False) else {}
  train_iter = input_pipeline.InputIterator(builder,
                                            config.train_split,
                                            batch_size=config.batch_size,
                                            window=config.window,
                                            seed=config.seed,
                                            mesh=mesh,
                                            shuffle_buffer=config.shuffle_buffer,
                                            **balance)
  model = landmark_model.create_model(config)
  tx, schedule = train_lib.make_optimizer(config)
  init_rng, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  params = landmark_model.init_params(model, init_rng, num_frames=config.window)
  basis = None
  if model.emotion_basis:
    measured = emotion_displacements(config, builder)
    basis = emotion_geometry.estimate_basis(measured)
    for row in emotion_geometry.table(measured):
      logging.info("emotion geometry (px of a 256 crop): %s", row)
    params = dict(params, emotion_basis=jnp.asarray(basis))
  if config.get("init_mean_displacement", False):
    mean = mean_displacement(config, builder, basis=basis)
    if jax.process_count() > 1:  # Each process saw its own shard: all take process 0's.
      mean = multihost_utils.broadcast_one_to_all(mean)
    params = dict(params, mean_displacement=jnp.asarray(mean))
  state = train_lib.TrainState.create(params, tx, train_rng)
  ckpt = checkpoints.CheckpointManager(workdir / "checkpoints",
                                       max_to_keep=config.max_checkpoints_to_keep,
                                       best_metric=config.get("best_metric", STAGE.best_metric),
                                       best_mode=config.get("best_mode", STAGE.best_mode))
  if ckpt.latest_step() is not None:
    state, data_state = ckpt.restore(state)
    train_iter.set_state(data_state)
    logging.info("resumed from checkpoint step %d", int(state.step))
  state = train_lib.replicate(state, mesh)
  train_step = train_lib.make_train_step(make_loss_fn(model, config), tx, mesh, schedule)
  eval_step = make_eval_step(model, mesh)

  def evaluate_fn(state, step):
    plot = workdir / "plots" / f"step_{step:06d}.png" if config.num_plots else None
    metrics = evaluate(eval_step, state.params, config, builder, mesh, plot_path=plot)
    if config.get("lip_eval_clips", 0):
      metrics.update(
          lip_sync(predict_fn(model), state.params, config, builder, config.lip_eval_clips))
    return metrics

  return train_lib.train_loop(config,
                              workdir,
                              state=state,
                              train_step=train_step,
                              train_iter=train_iter,
                              ckpt=ckpt,
                              evaluate_fn=evaluate_fn)

"""Stage 2 evaluation: the texture network against two baselines on held-out clips.

Protocol: every clip of the test split (speaker-disjoint in the sample and MEAD configs) is driven
from its own first frame: source = frame 0 with its landmarks, targets = frames `frame_stride`,
2 `frame_stride`, ... (at most `max_frames`), each generated from the source image, the source
landmarks, the target's ground-truth landmarks and the clip's emotion. Methods:

* `model`: the texture network (a checkpoint of a run).
* `copy`: the first frame itself for every target (no motion at all).
* `tps`: the first frame warped by a thin-plate spline that moves its 68 landmarks onto the target's
  (plus 8 fixed points on the border, so the background stays put): motion from the landmark
  displacement alone, no learned texture.

Metrics, all against the ground-truth frames: PSNR and SSIM at the config's `image_size`
(`emotalk_jax.evaluate.image_metrics` conventions: RGB uint8, per frame, then averaged over all
frames of all clips), and F-LMD (`emotalk_jax.evaluate.lmd.f_lmd`, pixels of a 256 crop): dlib's 68
landmarks of the generated frame (upsampled to 256) against dlib's landmarks of the true 256 frame,
both predicted in the same box (the one tracking uses, `face.predictor_box` of the true landmarks),
so detector framing is not part of the score; PSNR and SSIM again over the box around the target's
true mouth (`mouth_psnr`, `mouth_ssim`; `texture_losses.mouth_box`), where a closed-lipped source
must open; and on clips whose mouth moves, how the inner-lip gap dlib reads in the generated frames
follows the true one (`mouth_motion`: per-clip Pearson r and std ratio, `lipsync.lip_motion`): how
much of the landmarks' mouth motion the renderer shows. Whether the model beats a baseline is read
from `paired`: the per-frame difference on the same frames with a 95 % interval from resampling
clips (`paired_difference`); an interval that spans 0 is a tie, whatever the means say.

  emotalk evaluate texture --config configs/texture_sample.py --workdir runs/texture_sample \
      [--checkpoint=best|latest|STEP] [--frame_stride=N] [--max_frames=N] [--config.x=y]
"""

import json
import logging
import pathlib
import sys
from typing import Optional, Union

import cv2
import jax
import jax.numpy as jnp
import numpy as np

# Import first: keeps TensorFlow off the GPUs.
from data_pipelines import input_pipeline  # pylint: disable=unused-import
from emotalk_jax import checkpoints
from emotalk_jax import emotions
from emotalk_jax.evaluate import image_metrics
from emotalk_jax.evaluate import lipsync
from emotalk_jax.evaluate import lmd
from emotalk_jax.media import face
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.models import texture_losses
from emotalk_jax.models import texture_model
from emotalk_jax.models import warp
from emotalk_jax import stages
from emotalk_jax.train import landmark as train_landmark

METHODS = ("model", "copy", "tps")
METRICS = ("psnr", "ssim", "f_lmd", "mouth_psnr", "mouth_ssim")
# A clip counts for `mouth_motion` when its true inner-lip gap varies this much (std, px of the
# 256 crop): with a still mouth, r and the std ratio measure dlib's jitter.
MIN_MOUTH_STD_PX = 1.0
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "f_lmd": False, "mouth_psnr": True,
                    "mouth_ssim": True}
LMD_SIZE = 256


# Thin-plate spline --------------------------------------------------------------------------------

def tps_warp(image, source_landmarks, target_landmarks) -> np.ndarray:
  """Warps `image` [S, S, 3] uint8 so that its landmarks (`source_landmarks` [68, 2] in [-1, 1])
  move to `target_landmarks`, with the border fixed (`warp.tps_flow`, the same spline the texture
  network starts
  from). Returns [S, S, 3] uint8."""
  s = image.shape[0]
  flow = warp.tps_flow(jnp.asarray(source_landmarks)[None], jnp.asarray(target_landmarks)[None], s)
  out = warp.warp(jnp.asarray(image, jnp.float32)[None], flow, padding="border")
  return np.clip(np.rint(np.asarray(out[0])), 0, 255).astype(np.uint8)


# Test clips ---------------------------------------------------------------------------------------

def resize(frames, size: int) -> np.ndarray:
  """[..., H, W, 3] uint8 -> [..., size, size, 3] (area interpolation down, bicubic up)."""
  frames = np.asarray(frames)
  if frames.shape[-2] == size:
    return frames
  how = cv2.INTER_AREA if frames.shape[-2] > size else cv2.INTER_CUBIC
  flat = frames.reshape((-1,) + frames.shape[-3:])
  out = np.stack([cv2.resize(f, (size, size), interpolation=how) for f in flat])
  return out.reshape(frames.shape[:-3] + out.shape[-3:])


def test_clips(config,
               frame_stride: int = 4,
               max_frames: int = 20,
               max_clips: Optional[int] = None):
  """Yields the test clips as dicts: 'clip_id', 'frames' [T, 256, 256, 3] uint8 (frame 0 the source,
  then the
  targets; resized to 256 if stored smaller), 'landmarks' [T, 68, 2] in [-1, 1], 'emotion' [9]."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = train_landmark.get_builder(config)
  ds = builder.as_dataset(split=config.test_split, shuffle_files=False)
  for i, ex in enumerate(tfds.as_numpy(ds)):
    if max_clips is not None and i >= max_clips:
      break
    index = np.arange(0, len(ex["frames"]), frame_stride)[:max_frames + 1]
    vector = np.zeros(emotions.NUM_EMOTIONS + 1, np.float32)
    vector[int(ex["emotion"])] = 1.0
    vector[-1] = float(ex["intensity"])
    yield {"clip_id": ex["clip_id"].decode(), "frames": resize(ex["frames"][index], LMD_SIZE),
           "landmarks": ex["landmarks"][index], "emotion": vector}


# Methods ------------------------------------------------------------------------------------------


def predict_model(apply,
                  params,
                  frames,
                  landmarks,
                  emotion,
                  size: int,
                  batch_size: int = 16) -> np.ndarray:
  """The texture network's frames [T-1, size, size, 3] uint8 for targets 1.. driven from frame 0.

  `apply` is the network's jitted apply (one per evaluation: a fresh `jax.jit` would compile for
  every clip)."""
  source = texture_model.to_float_image(jnp.asarray(resize(frames[0], size)))
  outs = []
  for start in range(1, len(frames), batch_size):
    lm = jnp.asarray(landmarks[start:start + batch_size], jnp.float32)
    n = lm.shape[0]
    out = apply({"params": params}, jnp.broadcast_to(source, (n,) + source.shape),
                jnp.broadcast_to(jnp.asarray(landmarks[0], jnp.float32), (n, 68, 2)), lm,
                jnp.broadcast_to(jnp.asarray(emotion), (n, emotion.shape[-1])))
    outs.append(texture_model.to_uint8_image(out["image"]))
  return np.concatenate(outs)


def predict_copy(frames, size: int) -> np.ndarray:
  return np.repeat(resize(frames[:1], size), len(frames) - 1, axis=0)


def predict_tps(frames, landmarks, size: int) -> np.ndarray:
  source = resize(frames[0], size)
  return np.stack([tps_warp(source, landmarks[0], lm) for lm in landmarks[1:]])


# Metrics ------------------------------------------------------------------------------------------

def dlib_landmarks(frames_256, boxes) -> np.ndarray:
  """dlib's 68 landmarks [T, 68, 2] (normalised, 256 crop) of frames [T, 256, 256, 3] in the
  given boxes."""
  detector = face.default_detector()
  return np.stack([
      landmarks_lib.normalize(detector.landmarks(f, b), LMD_SIZE)
      for f, b in zip(frames_256, boxes)
  ])


def mouth_scores(generated, truth, landmarks) -> dict:
  """Per-frame {'mouth_psnr', 'mouth_ssim'} over the box around each target's true mouth
  (`texture_losses.mouth_box` of `landmarks` [T, 68, 2], clipped to the frame) of generated frames
  [T, s, s, 3] vs `truth` of the same size."""
  size = generated.shape[1]
  boxes = texture_losses.mouth_box(np.asarray(landmarks, np.float64), size)
  # SSIM's window must fit: a box narrower than it (a small image) grows about its centre.
  half = np.maximum(boxes[:, 2:] - boxes[:, :2], image_metrics.SSIM_WINDOW) / 2
  centre = np.clip((boxes[:, :2] + boxes[:, 2:]) / 2, half, size - half)
  low, high = np.floor(centre - half).astype(int), np.ceil(centre + half).astype(int)
  psnr, ssim = [], []
  for g, t, (x0, y0), (x1, y1) in zip(generated, truth, np.maximum(low, 0),
                                      np.minimum(high, size)):
    psnr.append(float(image_metrics.psnr(g[y0:y1, x0:x1], t[y0:y1, x0:x1])))
    ssim.append(image_metrics.ssim_frame(g[y0:y1, x0:x1], t[y0:y1, x0:x1]))
  return {"mouth_psnr": np.array(psnr), "mouth_ssim": np.array(ssim)}


def clip_scores(generated, truth_256, truth_dlib, boxes, landmarks, size: int) -> dict:
  """Per-frame {'psnr', 'ssim', 'f_lmd', 'mouth_psnr', 'mouth_ssim'} of generated frames
  [T, size, size, 3] vs the truth (`landmarks` [T, 68, 2]: the targets' own), and 'opening': the
  inner-lip gap dlib reads in them ([T], normalised units)."""
  truth = resize(truth_256, size)
  scores = image_metrics.image_scores(generated, truth)
  pred = dlib_landmarks(resize(generated, LMD_SIZE), boxes)
  f_lmd = np.array(
      [float(lmd.f_lmd(p[None], t[None], size=LMD_SIZE)) for p, t in zip(pred, truth_dlib)])
  return {"psnr": scores["psnr"], "ssim": scores["ssim"], "f_lmd": f_lmd,
          **mouth_scores(generated, truth, landmarks), "opening": lipsync.mouth_opening(pred)}


def improvement(model: dict, baseline: dict) -> dict:
  """Relative improvement of the model over a baseline per metric, in % (positive = the model is
  better)."""
  out = {}
  for k in METRICS:
    if k in model and k in baseline and baseline[k]:
      sign = 1.0 if HIGHER_IS_BETTER[k] else -1.0
      out[k] = 100.0 * sign * (model[k] - baseline[k]) / abs(baseline[k])
  return out


def paired_difference(model_clips,
                      baseline_clips,
                      higher_is_better: bool,
                      num_resamples: int = 2000,
                      seed: int = 0) -> dict:
  """How the model differs from a baseline on the same frames, with a confidence interval over
  clips.

  Frames of one clip are not independent (same face, same source frame), so the 95 % interval comes
  from resampling whole clips (cluster bootstrap) rather than frames.

  Args:
    model_clips, baseline_clips: per clip, the per-frame scores [T_c] of the same frames.
    higher_is_better: the metric's direction.

  Returns:
    {'mean': mean over all frames of model - baseline, 'ci95': [low, high] of that mean,
     'clips_better': how many clips' mean favours the model, 'num_clips', 'verdict': 'better' /
     'worse' (the interval excludes 0 on that side) or 'tie'}; with a single clip 'ci95' is None and
     the verdict 'unknown'.
  """
  diffs = [
      np.asarray(m, np.float64) - np.asarray(b, np.float64)
      for m, b in zip(model_clips, baseline_clips)
  ]
  sums, counts = np.array([d.sum() for d in diffs]), np.array([d.size for d in diffs])
  sign = 1.0 if higher_is_better else -1.0
  out = {
      "mean": float(sums.sum() / counts.sum()),
      "ci95": None,
      "clips_better": int(np.sum(sign * sums > 0)),
      "num_clips": len(diffs),
      "verdict": "unknown"
  }
  if len(diffs) < 2:  # One clip has no spread between clips to resample.
    return out
  picks = np.random.default_rng(seed).integers(0, len(diffs), (num_resamples, len(diffs)))
  interval = np.percentile(sums[picks].sum(1) / counts[picks].sum(1), [2.5, 97.5])
  gain = sign * interval  # > 0: the model is better.
  out["ci95"] = [float(x) for x in interval]
  out["verdict"] = "better" if gain.min() > 0 else "worse" if gain.max() < 0 else "tie"
  return out


def compare(config,
            workdir,
            checkpoint: Union[str, int] = "best",
            frame_stride: int = 4,
            max_frames: int = 20,
            max_clips: Optional[int] = None) -> dict:
  """The model of a run against `copy` and `tps` on the test clips (see the module docstring).

  Returns:
    {'checkpoint_step', 'num_clips', 'num_frames', 'image_size', 'model' / 'copy' / 'tps': {'psnr',
     'ssim', 'f_lmd'}, 'improvement_pct': {'copy': {...}, 'tps': {...}}, 'paired': {'copy': {metric:
     `paired_difference`}, 'tps': {...}}, 'mouth_motion': {method: {'r', 'std_ratio',
     'num_clips'}}, 'per_clip': {clip_id: {method: {...}}}}.
  """
  stage = stages.get("texture")
  model, params, _ = stage.load(workdir, config=config, checkpoint=checkpoint)
  step = None
  if pathlib.Path(workdir).suffix != ".npz":
    ckpt = checkpoints.CheckpointManager(pathlib.Path(workdir) / "checkpoints",
                                         best_metric=stage.best_metric,
                                         best_mode=stage.best_mode)
    step = ckpt.resolve_step(checkpoint)
    ckpt.close()
  size, apply = int(config.image_size), jax.jit(model.apply)
  all_scores = {m: {k: [] for k in METRICS} for m in METHODS}
  motion = {m: [] for m in METHODS}
  per_clip, num_frames = {}, 0
  for clip in test_clips(config, frame_stride, max_frames, max_clips):
    frames, lms = clip["frames"], clip["landmarks"]
    if len(frames) < 2:
      continue
    truth = frames[1:]
    boxes = [face.predictor_box(landmarks_lib.denormalize(lm, LMD_SIZE)) for lm in lms[1:]]
    truth_dlib = dlib_landmarks(truth, boxes)
    true_opening = lipsync.mouth_opening(truth_dlib)
    moves = np.std(true_opening) * LMD_SIZE / 2 >= MIN_MOUTH_STD_PX
    preds = {"model": predict_model(apply, params, frames, lms, clip["emotion"], size),
             "copy": predict_copy(frames, size), "tps": predict_tps(frames, lms, size)}
    per_clip[clip["clip_id"]] = {}
    for method, generated in preds.items():
      scores = clip_scores(generated, truth, truth_dlib, boxes, lms[1:], size)
      opening = scores.pop("opening")
      per_clip[clip["clip_id"]][method] = {k: float(np.mean(v)) for k, v in scores.items()}
      if moves:
        lip = lipsync.lip_motion(opening, true_opening)
        per_clip[clip["clip_id"]][method].update(
            {f"mouth_{k}": v if np.isfinite(v) else None for k, v in lip.items()})
        motion[method].append(lip)
      for k, v in scores.items():
        all_scores[method][k].append(v)
    num_frames += len(truth)
    logging.info("%s: %s", clip["clip_id"], per_clip[clip["clip_id"]])
  if not num_frames:
    raise ValueError(f"no test clips with 2 or more frames in {config.dataset} {config.test_split}")
  out = {
      "checkpoint_step": step,
      "num_clips": len(per_clip),
      "num_frames": num_frames,
      "image_size": size
  }
  for method in METHODS:
    out[method] = {k: float(np.mean(np.concatenate(v))) for k, v in all_scores[method].items()}
  out["improvement_pct"] = {b: improvement(out["model"], out[b]) for b in ("copy", "tps")}
  out["paired"] = {
      b: {
          k: paired_difference(all_scores["model"][k], all_scores[b][k], HIGHER_IS_BETTER[k])
          for k in METRICS
      } for b in ("copy", "tps")
  }

  def mean(values):  # Over the clips where the value is defined (see `lipsync.lip_motion`).
    values = [x for x in values if np.isfinite(x)]
    return float(np.mean(values)) if values else None

  out["mouth_motion"] = {
      m: {"r": mean([x["r"] for x in v]), "std_ratio": mean([x["std_ratio"] for x in v]),
          "num_clips": len(v)} for m, v in motion.items()
  }
  out["per_clip"] = per_clip
  return out


def _define_flags(fv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("checkpoint",
                      "best",
                      "which checkpoint: best (by eval PSNR), latest, or a step.",
                      flag_values=fv)
  flags.DEFINE_integer("frame_stride",
                       4,
                       "use every N-th frame of a clip as a target.",
                       flag_values=fv)
  flags.DEFINE_integer("max_frames", 20, "targets per clip at most.", flag_values=fv)
  flags.DEFINE_integer("max_clips", None, "test clips at most (default all).", flag_values=fv)


def main(argv) -> dict:
  """argv: ['texture', --config=..., --workdir=..., --checkpoint=..., ...]; returns `compare`'s
  dict.

  Raises:
    absl.flags.Error: bad or missing flags, an unreadable config file, or no checkpoint in the
      workdir.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import main as train_main  # pylint: disable=g-import-not-at-top
  if not argv or argv[0] != "texture":
    raise flags.Error(
        "usage: emotalk evaluate texture --config CONFIG.py --workdir DIR "
        "[--checkpoint=best|latest|STEP]")
  fv = train_main.parse_flags(["emotalk evaluate texture"] + list(argv[1:]),
                              define_extra=_define_flags)
  checkpoint = fv.checkpoint
  if checkpoint not in ("best", "latest") and not checkpoint.isdigit():
    raise flags.Error(f"--checkpoint must be best, latest or a step, got {checkpoint!r}")
  logging.getLogger().setLevel(logging.INFO)
  try:
    return compare(fv.config, fv.workdir, int(checkpoint) if checkpoint.isdigit() else checkpoint,
                   fv.frame_stride, fv.max_frames, fv.max_clips)
  except FileNotFoundError as e:
    raise flags.Error(str(e)) from e


if __name__ == "__main__":
  _argv = sys.argv[1:]
  print(
      json.dumps(main(_argv if _argv and _argv[0] == "texture" else ["texture"] + _argv), indent=2))

"""Scores the shipped sample checkpoints on the sample dataset's held-out speakers, next to two
baselines.

Usage (from the repository root, with the sample dataset built into /tmp/tfds_data):

  nice python tools/eval_sample_checkpoints.py [--max-frames 100] [--csim-every 5] \
      [--json OUT.json] [--markdown OUT.md] [--checkpoint DIR] [--data-dir /tmp/tfds_data] \
      [--max-clips N]

Every clip of the test split of `talking_face_folder/sample` (13 clips, 5 speakers no network saw)
is cut to its first `--max-frames` frames and made three times, each the same length as the real
clip:

* `ours`: both networks (`generate.load_models`): stage 1 driven by the clip's own speech (its
  stored mel windows, the log-mel floor for clips without audio; or, for a stage 1 reading Whisper
  features, those of the clip's source audio, zeros without audio) and its emotion label from the
  clip's neutral frame and landmarks, the landmarks smoothed as `emotalk generate` does (no random
  blinks: they would not be where the real clip blinks), stage 2 rendering the neutral frame at the
  texture network's size S.
* `static`: the neutral frame at S in every frame.
* `warp`: the neutral frame at S warped by the thin-plate spline from its landmarks to the landmarks
  `ours` uses (`texture_baselines.tps_warp`), so the texture network is the only difference from
  `ours`.

All three are upsampled to 256 (bicubic) and scored against the real 256 frames with the evaluation
harness (`evaluate.evaluate_frames`: PSNR, SSIM, CPBD, M-LMD, F-LMD, CSIM against the neutral frame,
  fer
emotion accuracy, lip sync against the clip's own speech for the clips with audio). `real` is the
real clip scored on what needs no reference (CPBD, CSIM, emotion, lip sync): the ceiling to read the
others against. Prints JSON (means over clips; lip sync over the clips with audio; emotion over the
clips whose class fer has, i.e. not contempt; per clip values) on stdout and the markdown table on
stderr.
"""

import argparse
import hashlib
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from data_pipelines import input_pipeline  # First: keeps TensorFlow off the GPUs.
from data_pipelines import talking_face_folder
from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.evaluate import harness as evaluate
from emotalk_jax.generate import driving
from emotalk_jax.generate import pipeline as generate
from emotalk_jax.media import audio
from emotalk_jax.models import landmark_model
from emotalk_jax.train import texture_baselines
# pylint: enable=g-import-not-at-top,wrong-import-position

METHODS = ("ours", "static", "warp")
COMPARE_SIZE = 256
METRIC_GROUPS = ("image", "cpbd", "lmd", "csim", "emotion", "lipsync")
# (key, column title, higher is better); None: no direction (read against the real clip).
COLUMNS = (("psnr", "PSNR (dB)", True), ("ssim", "SSIM", True), ("cpbd", "CPBD", None),
           ("m_lmd", "M-LMD (px)", False), ("f_lmd", "F-LMD (px)", False), ("csim", "CSIM", True),
           ("emotion_accuracy", "emotion acc.",
            True), ("emotion_frame_accuracy", "emotion frame acc.", True), ("lipsync_r",
                                                                            "lip sync r", None))


def sha256_prefix(path, n: int = 12) -> str:
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()[:n]


def test_clips(data_dir, max_frames: int, max_clips=None):
  """Yields the test examples cut to their first `max_frames` frames (numpy)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = input_pipeline.get_builder("talking_face_folder/sample", data_dir)
  for i, ex in enumerate(tfds.as_numpy(builder.as_dataset(split="test", shuffle_files=False))):
    if max_clips is not None and i >= max_clips:
      return
    n = min(len(ex["frames"]), max_frames)
    yield {
        "clip_id":
            ex["clip_id"].decode(),
        "frames":
            ex["frames"][:n],
        "mel":
            ex["mel"][:n],
        "has_audio":
            bool(ex["has_audio"]),
        "neutral_frame":
            ex["neutral_frame"],
        "neutral_landmarks":
            ex["neutral_landmarks"],
        "emotion":
            emotions.Emotion.of(emotions.EMOTIONS[int(ex["emotion"])], float(ex["intensity"]))
    }


def clip_speech(clip_id: str):
  """The clip's speech [N] at 16 kHz: the wav beside its video, else the video's own track (as
  built)."""
  root = talking_face_folder.shared_data_root()
  wav = root / f"{clip_id}.wav"
  if wav.is_file():
    return audio.load_audio(wav)
  videos = sorted(p for p in root.glob(f"{clip_id}.*") if p.suffix != ".wav")
  if not videos:
    raise FileNotFoundError(f"no source file for {clip_id} under {root}")
  return audio.load_audio(videos[0])


def make_videos(models: generate.Models, clip: dict) -> dict:
  """{method: [T, 256, 256, 3] uint8} for one clip (see the module docstring)."""
  size = models.size
  num_frames = len(clip["frames"])
  neutral = clip["neutral_landmarks"]
  track = np.tile(clip["emotion"].vector(), (num_frames, 1))
  speech = None
  if models.speech_encoder is not None:  # Stage 1 reads Whisper features: of the clip's own speech.
    speech = np.zeros((num_frames, landmark_model.SPEECH_FEATURES), np.float32)
    if clip["has_audio"]:
      features = generate.speech_features(models, clip_speech(clip["clip_id"]))[:num_frames]
      speech[:len(features)] = features
  landmarks = driving.smooth(
      generate.predict_landmarks_from_windows(models, clip["mel"], track, neutral, speech=speech))
  crop = texture_baselines.resize(clip["neutral_frame"], size)
  ours = np.stack(
      list(generate.render_frames(models, models.texture_params, crop, neutral, landmarks, track)))
  warp = np.stack([texture_baselines.tps_warp(crop, neutral, lm) for lm in landmarks])
  static = np.repeat(texture_baselines.resize(crop, COMPARE_SIZE)[None], num_frames, axis=0)
  return {"ours": texture_baselines.resize(ours, COMPARE_SIZE), "static": static,
          "warp": texture_baselines.resize(warp, COMPARE_SIZE)}


def summary(result: dict) -> dict:
  """The scalars of one `evaluate_frames` result that the table reports."""
  emotion = result.get("emotion") or {}
  lipsync = result.get("lipsync") or {}
  correct = emotion.get("correct")
  return {
      "psnr": result.get("psnr"),
      "ssim": result.get("ssim"),
      "cpbd": result.get("cpbd"),
      "m_lmd": result.get("m_lmd"),
      "f_lmd": result.get("f_lmd"),
      "csim": result.get("csim"),
      "emotion_predicted": emotion.get("predicted"),
      "emotion_accuracy": None if correct is None else float(correct),
      "emotion_frame_accuracy": emotion.get("frame_accuracy"),
      "lipsync_r": lipsync.get("r_lag0"),
      "lipsync_r_best_lag": lipsync.get("r_best_lag"),
      "frames_without_face": result["frames"]["generated_without_face"]
  }


def mean_over_clips(per_clip: dict, method: str) -> dict:
  out = {}
  for key in ("psnr", "ssim", "cpbd", "m_lmd", "f_lmd", "csim", "emotion_accuracy",
              "emotion_frame_accuracy", "lipsync_r", "lipsync_r_best_lag"):
    values = [
        c[method][key] for c in per_clip.values() if method in c and c[method].get(key) is not None
    ]
    out[key] = float(np.mean(values)) if values else None
    out[key + "_clips"] = len(values)
  return out


def markdown_table(means: dict) -> str:
  def cell(method, key, better):
    value = means[method][key]
    if value is None:
      return "-"
    text = f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    if key == "emotion_accuracy":
      clips = means[method][key + "_clips"]
      text += f" ({round(value * clips)}/{clips})"
    ranked = [means[m][key] for m in METHODS if means[m][key] is not None]
    best = (max(ranked) if better else min(ranked)) if ranked and better is not None else None
    if method in METHODS and best is not None and value == best:
      return f"**{text.split(' ')[0]}**" + text[len(text.split(' ')[0]):]
    return text

  names = {
      "ours": "ours (both networks)",
      "static": "static neutral frame",
      "warp": "warping only (TPS)",
      "real": "real clip (ceiling)"
  }
  counts = {"emotion_accuracy": f" ({means['ours']['emotion_accuracy_clips']} clips)",
            "lipsync_r": f" ({means['ours']['lipsync_r_clips']} clips)"}
  lines = [
      "| method | " + " | ".join(title + counts.get(key, "") for key, title, _ in COLUMNS) + " |",
      "|---|" + "---|" * len(COLUMNS)
  ]
  for method in METHODS + ("real",):
    lines.append(f"| {names[method]} | " + " | ".join(cell(method, k, b) for k, _, b in COLUMNS) +
                 " |")
  return "\n".join(lines)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data-dir", default="/tmp/tfds_data")
  parser.add_argument("--checkpoint",
                      default=None,
                      help="folder with landmark.npz/texture.npz (default shipped)")
  parser.add_argument("--max-frames", type=int, default=100)
  parser.add_argument("--max-clips", type=int, default=None)
  parser.add_argument("--csim-every", type=int, default=5)
  parser.add_argument("--json", default=None, help="also write the JSON here")
  parser.add_argument("--markdown", default=None, help="also write the markdown table here")
  args = parser.parse_args(argv)

  start = time.perf_counter()
  checkpoint_dir = pathlib.Path(args.checkpoint) if args.checkpoint else bundled.CHECKPOINTS_DIR
  models = generate.load_models(checkpoint_dir)
  evaluate.check_models(metrics=METRIC_GROUPS)
  per_clip, num_frames, seconds = {}, 0, {"generate": 0.0, "evaluate": 0.0}
  for clip in test_clips(args.data_dir, args.max_frames, args.max_clips):
    t0 = time.perf_counter()
    videos = make_videos(models, clip)
    t1 = time.perf_counter()
    speech = clip_speech(clip["clip_id"]) if clip["has_audio"] else None
    reference = evaluate.analyse_video(clip["frames"], clip["clip_id"])
    common = {"source": clip["neutral_frame"], "emotion": clip["emotion"], "audio": speech,
              "csim_every": args.csim_every}
    scores = {}
    for method, frames in videos.items():
      scores[method] = summary(
          evaluate.evaluate_frames(frames, reference, metrics=METRIC_GROUPS, **common))
    real = evaluate.evaluate_frames(reference,
                                    metrics=("cpbd", "csim", "emotion", "lipsync"),
                                    **common)
    scores["real"] = summary(real)
    per_clip[clip["clip_id"]] = {"frames": len(clip["frames"]), "has_audio": clip["has_audio"],
                                 "emotion": str(clip["emotion"]), **scores}
    num_frames += len(clip["frames"])
    seconds["generate"] += t1 - t0
    seconds["evaluate"] += time.perf_counter() - t1
    print(f"{clip['clip_id']}: {len(clip['frames'])} frames, {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)

  means = {m: mean_over_clips(per_clip, m) for m in METHODS + ("real",)}
  out = {
      "harness_version": evaluate.HARNESS_VERSION,
      "num_clips": len(per_clip),
      "num_frames": num_frames,
      "clips_with_audio": sum(c["has_audio"] for c in per_clip.values()),
      "max_frames": args.max_frames,
      "csim_every": args.csim_every,
      "texture_size": models.size,
      "compare_size": COMPARE_SIZE,
      "checkpoints": {
          s: sha256_prefix(checkpoint_dir / f"{s}.npz") for s in ("landmark", "texture")
      },
      "mean": means,
      "per_clip": per_clip,
      "seconds": {
          **{
              k: round(v, 1) for k, v in seconds.items()
          }, "total": round(time.perf_counter() - start, 1)
      }
  }
  table = markdown_table(means)
  text = json.dumps(evaluate.to_json(out), indent=2)
  print(text)
  print(table, file=sys.stderr)
  if args.json:
    pathlib.Path(args.json).write_text(text + "\n")
  if args.markdown:
    pathlib.Path(args.markdown).write_text(table + "\n")
  return out


if __name__ == "__main__":
  main()

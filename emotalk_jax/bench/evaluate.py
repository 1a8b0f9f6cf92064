"""Evaluation benchmarks that print JSON: harness throughput, and the expression classifier's
ceiling.

`evaluate_benchmark`: frames/s of the whole harness (every metric group that runs without extra
weights) on a real clip scored against itself blurred (a stand-in for a generated video), with the
clip's first frame as the source photo; models are loaded (and JAX compiled) on a short warm-up
first. Timings are wall clock on the machine that runs them; tests never assert them.

`emotion_ceiling`: the expression classifier's accuracy on the real labelled MEAD clips in
`../shared/data`
(the same harness path as for generated videos: video -> tracked, aligned face crops -> per-video
  mean
probabilities -> argmax against the label). Generated videos should be read against this figure.
"""

import os
import pathlib
import platform

import cv2
import numpy as np

from emotalk_jax.bench import preprocess as bench_preprocess
from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.evaluate import harness as evaluate
from emotalk_jax.media import video_io

BENCH_CLIP = "video/mead_dreamtalk/M030_front_happy_level3_001.mp4"  # 256x256, silent.
BENCH_SPEECH = "video/hdtf_sadtalker/WDA_BobMenendez_000.mp4"  # 512x512 with speech.
# Real labelled MEAD clips (the label is in the name); contempt ones are listed too and reported
# apart.
MEAD_FOLDERS = ("video/mead_dreamtalk", "video/mead_eamm")


def _bench_one(path: pathlib.Path, num_frames: int, emotion: str) -> dict:
  video = video_io.read_video(path, max_frames=num_frames)
  frames = video.frames
  generated = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames])
  args = dict(generated=generated,
              reference=frames,
              source=frames[0],
              emotion=emotion,
              audio=video.audio)
  evaluate.evaluate_frames(**{
      k: (v[:8] if k in ("generated", "reference") else v) for k, v in args.items()
  })
  result = evaluate.evaluate_frames(**args)
  seconds = result["seconds"]
  n = len(frames)
  return {
      "clip": path.name,
      "resolution": f"{frames.shape[2]}x{frames.shape[1]}",
      "frames": n,
      "fps_total": result["frames_per_second"],
      "fps_by_stage": {
          k: round(n / v, 1) for k, v in seconds.items() if k != "total" and v > 0
      },
      "seconds": seconds,
      "skipped": result["skipped"]
  }


def evaluate_benchmark(clips=None, num_frames: int = 100) -> dict:
  """Harness throughput (frames/s) per clip: default a 256x256 MEAD clip and a 512x512 HDTF clip
  with speech
  from `../shared/data`, else the bundled GRID clip."""
  if clips:
    paths = [pathlib.Path(c) for c in clips]
  elif (bench_preprocess.SHARED_DATA / BENCH_CLIP).exists():
    paths = [bench_preprocess.SHARED_DATA / BENCH_CLIP, bench_preprocess.SHARED_DATA / BENCH_SPEECH]
  else:
    paths = [bundled.GRID_CLIP]
  results = []
  for path in paths:
    try:
      label = emotions.from_mead_filename(path.name).emotion
    except ValueError:
      label = "neutral"
    results.append(_bench_one(path, num_frames, label))
  return {"benchmark": "evaluate", "harness_version": evaluate.HARNESS_VERSION,
          "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "clips": results}


def mead_clips(shared_data=None) -> list[tuple[pathlib.Path, str]]:
  """(path, label) of the labelled MEAD clips in `../shared/data`: MEAD names, or an emotion as
  the name."""
  root = pathlib.Path(shared_data or bench_preprocess.SHARED_DATA)
  out = []
  for folder in MEAD_FOLDERS:
    for path in sorted((root / folder).glob("*.mp4")):
      try:
        label = emotions.from_mead_filename(path.name).emotion
      except ValueError:
        label = emotions.EMOTIONS[emotions.emotion_index(path.stem)]
      out.append((path, label))
  return out


def emotion_ceiling(shared_data=None, max_frames: int | None = None, emotion_model="auto") -> dict:
  """Accuracy of the expression classifier on the real labelled MEAD clips (per clip and overall).

  Args:
    shared_data: the `../shared/data` folder (default as `emotalk bench` finds it).
    max_frames: use only the first this many frames of each clip.
    emotion_model: as `evaluate.evaluate_frames`.

  Returns:
    {'accuracy' (over clips whose label the classifier covers), 'frame_accuracy' (mean over those
    clips), 'clips_scored', 'clips_not_covered' (e.g. contempt), 'per_clip': [...]}.
  """
  per_clip, correct, frame_acc, not_covered = [], [], [], []
  for path, label in mead_clips(shared_data):
    video = video_io.read_video(path, max_frames=max_frames, with_audio=False)
    result = evaluate.evaluate_frames(video.frames, emotion=label, metrics=("emotion",),
                                      emotion_model=emotion_model, names={"generated": str(path)})
    if "emotion" in result["skipped"]:
      return {"skipped": result["skipped"]["emotion"]}
    e = result["emotion"]
    per_clip.append({
        "clip": path.name,
        "label": label,
        "predicted": e["predicted"],
        "correct": e["correct"],
        "frame_accuracy": e["frame_accuracy"],
        "frames": e["frames"]
    })
    if e["correct"] is None:
      not_covered.append(path.name)
    else:
      correct.append(e["correct"])
      frame_acc.append(e["frame_accuracy"])
  return {"accuracy": float(np.mean(correct)) if correct else None,
          "frame_accuracy": float(np.mean(frame_acc)) if frame_acc else None,
          "clips_scored": len(correct), "clips_not_covered": not_covered, "max_frames": max_frames,
          "per_clip": per_clip}

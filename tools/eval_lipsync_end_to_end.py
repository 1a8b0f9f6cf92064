"""End-to-end lip sync on held-out speakers: each clip's first frame as the photo, its own audio.

Usage (from the repository root; ../shared/data beside it):

  nice python tools/eval_lipsync_end_to_end.py [--checkpoint DIR] [--out-dir /tmp/e2e_lipsync] \
      [--max-clips N] [--long-speech] [--json OUT.json]

For every held-out clip with speech (the test speakers of the `av` dataset config that have audio:
GRID s26 and s31, never trained on, and the in-the-wild FeiFeiLi and KristiNoem clips), `emotalk
generate` makes a video from the clip's first frame and the clip's own audio (the .wav beside it
where there is one) (neutral emotion, the photo pasted back at its own resolution), and the
evaluation harness reads the generated video back with dlib and compares its mouth opening with the
real clip's (`mouth_r`, `mouth_std_ratio`; M-LMD too). Prints JSON: the means over clips and every
clip's figures. `emotalk demo`'s own mouth is measured by ../shared/tools/contact_sheet.py.

With `--long-speech`, each GRID speaker's 10 clips are spoken in a row instead (30 s, as one speech
puts them in the speech encoder's window), from the first clip's first frame, and each clip's
stretch of the one generated video is compared with the real clip.
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from emotalk_jax.evaluate import harness
from emotalk_jax.evaluate import lipsync
from emotalk_jax.generate import pipeline
from emotalk_jax.media import video_io
# pylint: enable=g-import-not-at-top,wrong-import-position

SHARED = ROOT.parent / "shared" / "data"
# The av config's test speakers with audio (data_pipelines/talking_face_folder: AV_TEST_SPEAKERS).
CLIP_GLOBS = ("video/grid_s26/*.mp4", "video/grid_s31/*.mp4",
              "video/styletalk_source/KristiNoem.mp4", "video/styletalk_source/feifeili_*.mp4")


def held_out_clips(max_clips=None) -> list:
  clips = [p for pattern in CLIP_GLOBS for p in sorted(SHARED.glob(pattern))]
  return clips[:max_clips] if max_clips else clips


def alone_scores(models, out_dir: pathlib.Path, max_clips=None) -> dict:
  """Per held-out clip: a video of its own speech from its first frame, against the real clip."""
  per_clip = {}
  for clip in held_out_clips(max_clips):
    photo = video_io.read_video(clip, max_frames=1, with_audio=False).frames[0]
    out = out_dir / f"{clip.stem}.mp4"
    speech = clip.with_suffix(".wav") if clip.with_suffix(".wav").exists() else clip
    pipeline.generate(photo, speech, "neutral", out, models=models, progress=False)
    scores = harness.evaluate_files(out, reference=clip, metrics=("lmd",))
    per_clip[clip.name] = {
        k: scores.get(k) for k in ("mouth_r", "mouth_std_ratio", "m_lmd", "lmd_frames")
    }
    print(clip.name, per_clip[clip.name], file=sys.stderr)
  return per_clip


def _mouth(frames, source) -> tuple:
  """(inner-lip gap [T] of the 256 crop, detected [T]) that the harness reads from a video."""
  video = harness.analyse_video(frames, source)
  return lipsync.mouth_opening(video.crop_landmarks), video.detected


def long_speech_scores(models, out_dir: pathlib.Path) -> dict:
  """Per clip of GRID s26 and s31: its stretch of one video of all its speaker's clips in a row."""
  import soundfile  # pylint: disable=g-import-not-at-top
  per_clip = {}
  for pattern in CLIP_GLOBS[:2]:
    paths = sorted(SHARED.glob(pattern))
    clips = [video_io.read_video(p) for p in paths]
    lengths = [len(c.frames) for c in clips]
    wave = np.concatenate([np.pad(c.audio, (0, max(0, n * 640 - len(c.audio))))[:n * 640]
                           for c, n in zip(clips, lengths)])
    speaker = pattern.split("/")[1]
    speech, out = out_dir / f"{speaker}_long.wav", out_dir / f"{speaker}_long.mp4"
    soundfile.write(speech, wave, 16000)
    pipeline.generate(clips[0].frames[0], speech, "neutral", out, models=models, progress=False)
    generated, found = _mouth(video_io.read_video(out, with_audio=False).frames, out)
    start = 0
    for path, clip, n in zip(paths, clips, lengths):
      real, real_found = _mouth(clip.frames, path)
      both = found[start:start + n] & real_found
      motion = lipsync.lip_motion(generated[start:start + n][both], real[both])
      per_clip[path.name] = {"mouth_r": motion["r"], "mouth_std_ratio": motion["std_ratio"]}
      print(path.name, per_clip[path.name], file=sys.stderr)
      start += n
  return per_clip


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint",
                      default=None,
                      help="checkpoint folder (default: the shipped ones)")
  parser.add_argument("--out-dir", default="/tmp/e2e_lipsync")
  parser.add_argument("--max-clips", type=int, default=None)
  parser.add_argument("--long-speech", action="store_true",
                      help="each GRID speaker's clips spoken in a row (see the module docstring)")
  parser.add_argument("--json", default=None)
  args = parser.parse_args()
  models = pipeline.load_models(args.checkpoint)
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  start = time.time()
  per_clip = (long_speech_scores(models, out_dir) if args.long_speech else
              alone_scores(models, out_dir, args.max_clips))
  keys = ("mouth_r", "mouth_std_ratio") + (() if args.long_speech else ("m_lmd",))
  summary = {k: float(np.nanmean([np.nan if v[k] is None else v[k] for v in per_clip.values()]))
             for k in keys}
  result = {
      "clips": len(per_clip),
      "mean": summary,
      "per_clip": per_clip,
      "checkpoint": args.checkpoint or "shipped",
      "wall_seconds": round(time.time() - start, 1)
  }
  text = json.dumps(result, indent=2)
  if args.json:
    pathlib.Path(args.json).write_text(text)
  print(text)


if __name__ == "__main__":
  main()

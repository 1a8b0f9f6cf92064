"""End-to-end lip sync on held-out speakers: each clip's first frame as the photo, its own audio.

Usage (from the repository root; ../shared/data beside it):

  nice python tools/eval_lipsync_end_to_end.py [--checkpoint DIR] [--out-dir /tmp/e2e_lipsync] \
      [--max-clips N] [--json OUT.json]

For every held-out clip with speech (the test speakers of the `av` dataset config that have audio:
GRID s26 and s31, never trained on, and the in-the-wild FeiFeiLi and KristiNoem clips), `emotalk
generate` makes a video from the clip's first frame and the clip's own audio (the .wav beside it
where there is one) (neutral emotion, the photo pasted back at its own resolution), and the
evaluation harness reads the generated video back with dlib and compares its mouth opening with the
real clip's (`mouth_r`, `mouth_std_ratio`; M-LMD too). Prints JSON: the means over clips and every
clip's figures. `emotalk demo`'s own mouth is measured by ../shared/tools/contact_sheet.py.
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint",
                      default=None,
                      help="checkpoint folder (default: the shipped ones)")
  parser.add_argument("--out-dir", default="/tmp/e2e_lipsync")
  parser.add_argument("--max-clips", type=int, default=None)
  parser.add_argument("--json", default=None)
  args = parser.parse_args()
  models = pipeline.load_models(args.checkpoint)
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  per_clip, start = {}, time.time()
  for clip in held_out_clips(args.max_clips):
    photo = video_io.read_video(clip, max_frames=1, with_audio=False).frames[0]
    out = out_dir / f"{clip.stem}.mp4"
    speech = clip.with_suffix(".wav") if clip.with_suffix(".wav").exists() else clip
    pipeline.generate(photo, speech, "neutral", out, models=models, progress=False)
    scores = harness.evaluate_files(out, reference=clip, metrics=("lmd",))
    per_clip[clip.name] = {
        k: scores.get(k) for k in ("mouth_r", "mouth_std_ratio", "m_lmd", "lmd_frames")
    }
    print(clip.name, per_clip[clip.name], file=sys.stderr)
  summary = {k: float(np.nanmean([np.nan if v[k] is None else v[k] for v in per_clip.values()]))
             for k in ("mouth_r", "mouth_std_ratio", "m_lmd")}
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

"""Does a generated face stay the photo's? Stage 1's move of each face part, and CSIM.

Usage (from the repository root; the default photos need ../shared/data):

  python tools/eval_photo_likeness.py [--photos P ...] [--speech SPEECH] [--out-dir DIR]

For each photo (default: the emotion judge's 8 photos, harry.jpg and audrey.jpg), the speech
(default: the demo's four GRID sentences) goes through `emotalk generate` with neutral emotion.
Prints JSON per photo: the median over the frames of how far stage 1 moved each part of the face
from the photo's own landmarks (px of the 256 crop), and the harness's CSIM of the video against
the photo (every 8th frame); then the means over photos. Writes the videos to --out-dir.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.bench import emotion_judge
from emotalk_jax.evaluate import harness
from emotalk_jax.generate import driving
from emotalk_jax.generate import pipeline
from emotalk_jax.media import audio
from emotalk_jax.media import video_io
# pylint: enable=g-import-not-at-top,wrong-import-position

PARTS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
         "eyes": range(36, 48), "mouth": range(48, 68)}
MORE_PHOTOS = ("faces/makeittalk/harry.jpg", "faces/makeittalk/audrey.jpg")


def likeness(models, photo: pathlib.Path, speech, out: pathlib.Path) -> dict:
  """{part: px stage 1 moved it (median over frames)}, and 'csim' of the generated video."""
  _, _, neutral = pipeline.read_face(photo, models.size)
  wave = audio.load_audio(speech)
  keys = [driving.Keyframe(0.0, emotions.parse_emotion("neutral"))]
  track, _ = pipeline.drive(models, neutral, wave, keys)
  moved = np.median(np.linalg.norm(track - neutral, axis=-1) * 128, axis=0)  # [68] px, 256 crop.
  result = {part: round(float(moved[list(nodes)].mean()), 2) for part, nodes in PARTS.items()}
  pipeline.generate(photo, speech, "neutral", out, models=models, progress=False)
  frames = video_io.read_video(out, with_audio=False).frames
  scores = harness.evaluate_frames(frames, source=video_io.read_image(photo), metrics=("csim",),
                                   csim_every=8)
  result["csim"] = round(float(scores["csim"]), 4)
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--photos", nargs="+", default=None)
  parser.add_argument("--speech", default=str(bundled.DEMO_SPEECH))
  parser.add_argument("--out-dir", default="/tmp/photo_likeness")
  args = parser.parse_args()
  photos = ([pathlib.Path(p) for p in args.photos] if args.photos else
            emotion_judge.default_photos() + [bundled.shared_data_root() / p for p in MORE_PHOTOS])
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  models = pipeline.load_models()
  per_photo = {p.name: likeness(models, p, args.speech, out_dir / f"{p.stem}.mp4") for p in photos}
  mean = {k: round(float(np.mean([v[k] for v in per_photo.values()])), 4)
          for k in (*PARTS, "csim")}
  print(json.dumps({"photos": per_photo, "mean": mean}, indent=2))


if __name__ == "__main__":
  main()

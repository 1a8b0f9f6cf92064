"""Does the rendered face keep stage 1's emotion geometry? Driven vs rendered displacement.

Usage (from the repository root):

  python tools/eval_emotion_in_pixels.py [--photo PHOTO] [--speech SPEECH] [--out-dir DIR]

For neutral and each emotion at intensity 1, the photo (default: the demo photo) and speech
(default: the demo's four GRID sentences) go through `emotalk generate` as a 256-px aligned crop
(`crop_only`). The displacement of landmarks 17-67 from neutral is measured twice, as for real
clips (`emotion_geometry.predicted_displacement`): on stage 1's landmarks (driven) and on dlib's
reading of the rendered video (rendered). Prints JSON per emotion: the cosine and magnitude ratio
rendered / driven, each part's px (256 crop) driven and rendered, and the median distance from the
brows to the eyes (px; negative: brows above) in both. Writes the videos and `brows.png` (the
upper face of one frame per emotion, dlib's brow points in green, stage 1's in red) to --out-dir.
"""

import argparse
import json
import pathlib
import sys

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.evaluate import emotion_geometry
from emotalk_jax.generate import driving
from emotalk_jax.generate import pipeline
from emotalk_jax.media import audio
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.media import tracking
from emotalk_jax.media import video_io
# pylint: enable=g-import-not-at-top,wrong-import-position

SIZE = 256
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "fear", "disgusted")
BROWS, EYES = slice(17, 27), slice(36, 48)


def brow_to_eye(landmarks_px: np.ndarray) -> float:
  """Median over frames of the brows' mean y minus the eyes' (px; negative: brows above)."""
  return float(np.median(landmarks_px[:, BROWS, 1].mean(1) - landmarks_px[:, EYES, 1].mean(1)))


def upper_face(frame, rendered_px, driven_px, label: str) -> np.ndarray:
  """The brows and eyes of one [256, 256, 3] frame, 3x, with both readings of the brows."""
  frame = frame.copy()
  for points, colour in ((driven_px, (255, 0, 0)), (rendered_px, (0, 255, 0))):
    for x, y in np.round(points[BROWS]).astype(int):
      cv2.circle(frame, (int(x), int(y)), 2, colour, -1)
  tile = cv2.resize(frame[40:130, 40:216], None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
  cv2.putText(tile, label, (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 0), 2)
  return tile


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--photo", default=str(bundled.DEMO_PHOTO))
  parser.add_argument("--speech", default=str(bundled.DEMO_SPEECH))
  parser.add_argument("--out-dir", default="emotion_in_pixels")
  parser.add_argument("--frame", type=int, default=60, help="the frame brows.png shows")
  args = parser.parse_args()
  out = pathlib.Path(args.out_dir)
  out.mkdir(parents=True, exist_ok=True)
  models = pipeline.load_models()
  _, _, neutral = pipeline.read_face(args.photo, models.size)
  wave = audio.load_audio(args.speech)
  driven, rendered, tiles = {}, {}, []
  for name in EMOTIONS:
    emotion = name if name == "neutral" else f"{name}:1"
    keyframes = [driving.Keyframe(0.0, emotions.parse_emotion(emotion))]
    driven[name], _ = pipeline.drive(models, neutral, wave, keyframes)
    video = out / f"{name}.mp4"
    pipeline.generate(args.photo, args.speech, emotion, video, models=models, crop_only=True,
                      crop_size=SIZE, progress=False)
    frames = video_io.read_video(video, with_audio=False).frames
    rendered[name] = landmarks_lib.normalize(
        tracking.track_landmarks(frames, str(video)).landmarks, SIZE)
    k = min(args.frame, len(frames) - 1)
    tiles.append(upper_face(frames[k], landmarks_lib.denormalize(rendered[name][k], SIZE),
                            landmarks_lib.denormalize(driven[name][k], SIZE), f"{name} f{k}"))
  driven_shift = emotion_geometry.predicted_displacement(driven)
  rendered_shift = emotion_geometry.predicted_displacement(rendered)
  result = {}
  for name in EMOTIONS[1:]:
    parts_driven = emotion_geometry.group_magnitudes(driven_shift[name])
    parts_rendered = emotion_geometry.group_magnitudes(rendered_shift[name])
    result[name] = {
        **{k: round(v, 2) for k, v in
           emotion_geometry.compare(rendered_shift[name], driven_shift[name]).items()},
        "px_driven": {k: round(v, 2) for k, v in parts_driven.items()},
        "px_rendered": {k: round(v, 2) for k, v in parts_rendered.items()},
        "brow_to_eye_driven": round(brow_to_eye(landmarks_lib.denormalize(driven[name], SIZE)), 1),
        "brow_to_eye_rendered": round(
            brow_to_eye(landmarks_lib.denormalize(rendered[name], SIZE)), 1),
    }
  result["brow_to_eye_neutral"] = {
      "driven": round(brow_to_eye(landmarks_lib.denormalize(driven["neutral"], SIZE)), 1),
      "rendered": round(brow_to_eye(landmarks_lib.denormalize(rendered["neutral"], SIZE)), 1)}
  while len(tiles) % 2:
    tiles.append(np.zeros_like(tiles[0]))
  sheet = np.vstack([np.hstack(tiles[i:i + 2]) for i in range(0, len(tiles), 2)])
  cv2.imwrite(str(out / "brows.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()

"""Which cue in a photo tells how bright its person's teeth are: the skin or the eye whites?

Usage (from the repository root; ../shared/data beside it):

  python tools/eval_teeth_brightness.py [--clips-per-folder 6] > teeth.json

The drawn mouth (`generate.mouth_interior`) scales the exemplar's teeth by how much brighter the
photo is than the exemplar's face. For clips of real speech (GRID s1, s4, s26, s31 and LRS crops):
the clip's widest-open frame (dlib, every second frame), the 90th percentile of the luma inside its
inner lips (its teeth, where they show), against each cue measured on the clip's first frame as
generation measures a photo (aligned at 128 px): the skin around the mouth
(`mouth_interior.skin_colour`), the eye whites (`mouth_interior.eye_white_luma`) and their
geometric mean. Clips whose widest frame opens less than `MIN_OPENING` of the mouth's width are
left out (no teeth to see). Prints JSON: per cue, the Pearson r of the logs and the std of the log
ratio teeth / cue (lower: a cue that predicts the teeth up to one constant factor).
"""

import argparse
import json
import pathlib

import cv2
import numpy as np

from emotalk_jax.errors import InputError
from emotalk_jax.generate import mouth_interior
from emotalk_jax.media import face
from emotalk_jax.media import video_io
from emotalk_jax.models import face_graph

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
FOLDERS = ("grid_s26", "grid_s31", "grid_s4_hq", "grid_s1", "lrs_lip2speech")
MIN_OPENING = 0.12  # Inner-lip gap / outer mouth width.
CROP = 128
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _teeth_luma(frame, landmarks) -> float:
  mask = np.zeros(frame.shape[:2], np.uint8)
  cv2.fillPoly(mask, [np.round(landmarks[60:68]).astype(np.int32)], 1)
  return float(np.percentile(frame[mask > 0].astype(np.float32) @ LUMA, 90))


def measure(clip: pathlib.Path):
  """(opening, teeth luma, skin luma, eye-white luma) of one clip, or None (too few faces)."""
  frames = video_io.read_video(clip, with_audio=False).frames[::2]
  found = []
  for frame in frames:
    try:
      found.append((frame, face.face_landmarks(frame, str(clip)).astype(np.float64)))
    except InputError:  # No face in this frame: skipped.
      continue
  if len(found) < 5:
    return None
  openings = [
      face_graph.mouth_opening(lm[None], xp=np)[0] / np.ptp(lm[48:60, 0]) for _, lm in found
  ]
  widest = found[int(np.argmax(openings))]
  aligned = face.align_points(found[0][0], found[0][1], CROP, border="replicate")
  skin = float(mouth_interior.skin_colour(aligned.crop, aligned.landmarks) @ LUMA)
  white = mouth_interior.eye_white_luma(aligned.crop, aligned.landmarks)
  return max(openings), _teeth_luma(*widest), skin, white


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--clips-per-folder", type=int, default=6)
  args = parser.parse_args()
  rows = {}
  for folder in FOLDERS:
    for clip in sorted((SHARED / folder).glob("*.mp4"))[:args.clips_per_folder]:
      row = measure(clip)
      if row is not None and row[0] >= MIN_OPENING and row[3] is not None:
        rows[f"{folder}/{clip.name}"] = [round(v, 3) for v in row]
  teeth, skin, white = (np.log([r[k] for r in rows.values()]) for k in (1, 2, 3))
  cues = {"skin": skin, "eye_whites": white, "geometric_mean": (skin + white) / 2}
  result = {
      "clips": len(rows),
      "cues": {
          name: {"log_r": round(float(np.corrcoef(cue, teeth)[0, 1]), 3),
                 "log_ratio_std": round(float(np.std(teeth - cue)), 3)}
          for name, cue in cues.items()
      },
      "per_clip (opening, teeth, skin, eye whites)": rows,
  }
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()

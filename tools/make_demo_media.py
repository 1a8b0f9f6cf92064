"""Builds the demo's photo and speech, and the open mouth generation draws mouths from, from GRID
speaker s4 (CC BY 4.0) in ../shared/data.

Usage (from the repository root, with the real media at ../shared/data):

  python tools/make_demo_media.py [--data ../shared/data] [--out emotalk_jax/assets]

Writes:
  grid_s4_priv3p.png: frame 0 of `video/grid_s4_hq/priv3p.mp4` (720x576), cropped to the 480x480
    square at x 100..579, y 40..519. Frame 0 is the speaker at rest before the sentence: lips
    closed, eyes open, frontal (nose within 1 % of the eye distance from the eyes' midline, roll
    0.4 degrees by dlib's landmarks). The crop drops the frame's dark borders and the microphone
    below the chin.
  grid_s4_sentences.flac: the spoken part of four sentences of the same speaker (`SENTENCES`), each
    from 0.15 s before its first loud 50 ms frame to 0.2 s after its last one (loud: within
    `LOUD_DB` of the clip's loudest frame; the search stops before the damaged packet near each
    clip's end), with 10 ms fades, back to back. 16 kHz mono, 16-bit FLAC (lossless, half the size
    of a wav).
  mouth_interior.png, mouth_interior.json: the open mouth of `generate.mouth_interior`, frame
    `MOUTH_FRAME` of `video/grid_s4_hq/MOUTH_CLIP.mp4` (her upper teeth between the lips), cut to
    `MOUTH_MARGIN` x the mouth's width around the mouth (enough skin around it for
    `mouth_interior.skin_colour`), with its 20 mouth landmarks (48-67, dlib) in the cut's pixels
    and the luma of the frame's eye whites (`mouth_interior.eye_white_luma`).
"""

import argparse
import json
import pathlib

import cv2
import numpy as np
import soundfile

from emotalk_jax.generate import mouth_interior
from emotalk_jax.media import audio
from emotalk_jax.media import face
from emotalk_jax.media import video_io

PHOTO_CLIP, PHOTO_FRAME = "priv3p", 0
PHOTO_CROP = (40, 520, 100, 580)  # y0, y1, x0, x1 in the 720x576 frame.
# "place red in v three please", "bin green by u two again", "bin red with m eight soon",
# "bin blue in l zero soon".
SENTENCES = ("priv3p", "bgbu2a", "brwm8s", "bbilzs")
FRAME_S = 0.05
LOUD_DB = 25.0
SEARCH_END_S = 2.6  # GRID sentences end by ~2.4 s; the damaged mp2 packet is in the last 0.3 s.
LEAD_S, TAIL_S, FADE_S = 0.15, 0.2, 0.01
# "bin green in m eight soon", on "eight": among the widest openings of the first 8 clips (every 3rd
# frame searched), the one whose teeth are brightest against the skin.
MOUTH_CLIP, MOUTH_FRAME = "bgim8s", 27
EYE_WHITE_CROP = 128  # px
MOUTH_MARGIN = 0.9  # The cut reaches this far (x the mouth's width) from the mouth's centre.


def spoken_part(wave: np.ndarray, rate: int = audio.SAMPLE_RATE) -> np.ndarray:
  """[N] -> the sentence with `LEAD_S` / `TAIL_S` of its surrounding pause, faded in and out."""
  hop = int(FRAME_S * rate)
  usable = wave[:int(SEARCH_END_S * rate) // hop * hop]
  db = 10 * np.log10(np.mean(usable.reshape(-1, hop)**2, axis=1) + 1e-12)
  loud = np.flatnonzero(db > db.max() - LOUD_DB)
  start = max(0, loud[0] * hop - int(LEAD_S * rate))
  stop = min(wave.size, (loud[-1] + 1) * hop + int(TAIL_S * rate))
  part = wave[start:stop].copy()
  fade = np.linspace(0.0, 1.0, int(FADE_S * rate), dtype=np.float32)
  part[:fade.size] *= fade
  part[-fade.size:] *= fade[::-1]
  return part


def mouth_exemplar(frame: np.ndarray) -> tuple[np.ndarray, dict]:
  """[H, W, 3] uint8 frame -> (the cut around its mouth, {'landmarks': [[x, y]] x 20 (48-67) in the
  cut's pixels, 'eye_white_luma': its eye whites' luma, 'source': ...})."""
  landmarks = face.face_landmarks(frame)
  mouth = landmarks[48:68].astype(np.float64)
  # Measured as generation measures a photo's: on the face aligned at the networks' 128 px.
  aligned = face.align_points(frame, landmarks, EYE_WHITE_CROP, border="replicate")
  centre, width = mouth.mean(0), float(np.ptp(mouth[:, 0]))
  x0, y0 = np.maximum(np.floor(centre - MOUTH_MARGIN * width).astype(int), 0)
  x1, y1 = np.ceil(centre + MOUTH_MARGIN * width).astype(int)
  cut = np.ascontiguousarray(frame[y0:y1, x0:x1])
  white = mouth_interior.eye_white_luma(aligned.crop, aligned.landmarks)
  meta = {"landmarks": np.round(mouth - [x0, y0], 2).tolist(),
          "eye_white_luma": round(white, 2),
          "source": f"GRID s4, video/grid_s4_hq/{MOUTH_CLIP}.mp4, frame {MOUTH_FRAME}, "
                    f"x {x0}..{x1 - 1}, y {y0}..{y1 - 1}"}
  return cut, meta


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", default="../shared/data")
  parser.add_argument("--out", default="emotalk_jax/assets")
  args = parser.parse_args(argv)
  clips = pathlib.Path(args.data) / "video" / "grid_s4_hq"
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)

  frame = video_io.read_video(clips / f"{PHOTO_CLIP}.mp4", fps=None).frames[PHOTO_FRAME]
  y0, y1, x0, x1 = PHOTO_CROP
  photo = np.ascontiguousarray(frame[y0:y1, x0:x1])
  # PNG at the highest compression: lossless, about 180 KB.
  cv2.imwrite(str(out / "grid_s4_priv3p.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
              [cv2.IMWRITE_PNG_COMPRESSION, 9])

  frame = video_io.read_video(clips / f"{MOUTH_CLIP}.mp4", fps=None).frames[MOUTH_FRAME]
  cut, meta = mouth_exemplar(frame)
  cv2.imwrite(str(out / "mouth_interior.png"), cv2.cvtColor(cut, cv2.COLOR_RGB2BGR),
              [cv2.IMWRITE_PNG_COMPRESSION, 9])
  (out / "mouth_interior.json").write_text(json.dumps(meta, indent=1) + "\n")

  parts = [spoken_part(audio.load_audio(clips / f"{name}.mp4")) for name in SENTENCES]
  speech = np.concatenate(parts)
  soundfile.write(out / "grid_s4_sentences.flac", speech, audio.SAMPLE_RATE, subtype="PCM_16")
  print(f"photo {photo.shape}, speech {speech.size / audio.SAMPLE_RATE:.2f} s "
        f"({', '.join(f'{p.size / audio.SAMPLE_RATE:.2f}' for p in parts)})")


if __name__ == "__main__":
  main()

"""Builds emotalk_jax/assets/face_template.json, the canonical 68-point face used for alignment.

Usage (from the repository root, with the real media at ../shared/data):

  python tools/make_face_template.py [--data ../shared/data] \
      [--out emotalk_jax/assets/face_template.json]

How the template is made:
  1. Shape. Landmarks (dlib 68-point predictor in the detector's box, via `emotalk_jax.media.face`;
     nothing here depends on an earlier template) of neutral, frontal faces of ten people: the two
     MEAD neutral clips (M030, W009; they speak, so only the quarter of frames with the smallest
     inner-lip gap), the seven CREMA-D neutral photos and the NASA astronaut photo. Each clip is
     first reduced to one mean shape so that every person weighs the same.
  2. Generalised Procrustes analysis: each person's shape is aligned to the running mean by a
     least-squares similarity on the stable points (brows, nose, eyes), all 68 points are averaged,
     and this repeats until the mean stops changing.
  3. Symmetry: the mean is averaged with its mirror image (x -> -x with left/right points swapped),
     which also makes it upright.
  4. Framing: the crop places the face as the 256x256 MEAD crops of ali-vilab/dreamtalk do (a common
     talking-face framing with forehead and chin margins): the scale and vertical offset are the
     medians of the similarity fits of the template to every 4th frame of the 16 clips in
     video/mead_dreamtalk,
     and the face is centred horizontally. Result: eye centres at y = -0.26 (row 94 of 256),
     brows at -0.43 (forehead above), chin at +0.69 (row 216), jaw edges at x = +-0.58.
  5. Predictor box: the median box of dlib's face detector, expressed in template coordinates over
     all faces seen above plus every photo in faces/. `emotalk_jax.media.face.predictor_box` maps it
     through a face's alignment to give the shape predictor consistently framed boxes while
     tracking.
The output holds only these averaged coordinates (no image data).
"""

import argparse
import json
import pathlib
import re
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emotalk_jax.media import face  # pylint: disable=g-import-not-at-top,wrong-import-position
from emotalk_jax.media import landmarks  # pylint: disable=g-import-not-at-top,wrong-import-position
from emotalk_jax.media import video_io  # pylint: disable=g-import-not-at-top,wrong-import-position

NEUTRAL_VIDEOS = ["video/mead_dreamtalk/M030_front_neutral_level1_001.mp4",
                  "video/mead_dreamtalk/W009_front_neutral_level1_001.mp4"]
NEUTRAL_PHOTOS = [f"faces/cremad_emotalkingface/img{i:02d}.png" for i in range(1, 8)
                 ] + ["faces/skimage_astronaut.png"]
FRAMING_GLOB = "video/mead_dreamtalk/*.mp4"
PHOTO_GLOB = "faces/*/*.*"
FRAMING_SIZE = 256


def mouth_gap(shape: np.ndarray) -> float:
  """Inner-lip opening relative to the eye distance (scale free)."""
  gap = np.linalg.norm(shape[[61, 62, 63]] - shape[[67, 66, 65]], axis=-1).mean()
  eyes = np.linalg.norm(shape[face.RIGHT_EYE].mean(0) - shape[face.LEFT_EYE].mean(0))
  return gap / eyes


def normalise(shape: np.ndarray) -> np.ndarray:
  """Translates and scales so the stable points have zero mean and unit RMS radius."""
  stable = shape[face.STABLE_POINTS]
  centred = shape - stable.mean(0)
  return centred / np.sqrt((centred[face.STABLE_POINTS] ** 2).sum(-1).mean())


def align_to(shapes: np.ndarray, target: np.ndarray) -> np.ndarray:
  """[N, 68, 2] shapes moved onto target by similarities fitted on the stable points."""
  m = face.fit_similarity(shapes[:, face.STABLE_POINTS], target[face.STABLE_POINTS])
  return face.transform_points(shapes, m)


def procrustes_mean(shapes: np.ndarray, iterations: int = 50) -> np.ndarray:
  mean = normalise(shapes[0])
  for _ in range(iterations):
    new = normalise(align_to(shapes, mean).mean(0))
    if np.abs(new - mean).max() < 1e-9:
      break
    mean = new
  return mean


def detections(image, detector):
  boxes = detector.detect(image)
  if not boxes:
    return None
  return boxes[0], detector.landmarks(image, boxes[0]).astype(np.float64)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
  parser.add_argument("--out", type=pathlib.Path, default=face.TEMPLATE_PATH)
  args = parser.parse_args(argv)
  detector = face.FaceDetector()
  box_samples = []  # (Box, landmarks) pairs for the predictor box.

  # 1. One shape per person.
  people = []
  for rel in NEUTRAL_VIDEOS:
    frames = video_io.read_video(args.data / rel, fps=None, with_audio=False).frames
    found = [d for d in (detections(f, detector) for f in frames) if d is not None]
    box_samples += found
    shapes = np.stack([lm for _, lm in found])
    gaps = np.array([mouth_gap(s) for s in shapes])
    closed = shapes[gaps <= np.quantile(gaps, 0.25)]
    people.append(procrustes_mean(closed))
    print(f"{rel}: {len(shapes)}/{len(frames)} frames, {len(closed)} with the mouth most closed")
  for rel in NEUTRAL_PHOTOS:
    found = detections(video_io.read_image(args.data / rel), detector)
    if found is None:
      raise SystemExit(f"{rel}: no face found")
    box_samples.append(found)
    people.append(normalise(found[1]))
    print(f"{rel}: face found")

  # 2-3. Procrustes mean, then symmetrised.
  mean = procrustes_mean(np.stack(people))
  mean = normalise(0.5 * (mean + align_to(landmarks.mirror(mean)[None], mean)[0]))
  mean = 0.5 * (mean + landmarks.mirror(mean))  # exact symmetry about x = 0

  # 4. Framing measured on the MEAD crops: template units -> 256 crop pixels.
  scales, offsets_y, offsets_x = [], [], []
  for path in sorted(args.data.glob(FRAMING_GLOB)):
    frames = video_io.read_video(path, fps=None, with_audio=False).frames[::4]
    for frame in frames:
      found = detections(frame, detector)
      if found is None:
        continue
      box_samples.append(found)
      m = face.fit_similarity(mean[face.STABLE_POINTS], found[1][face.STABLE_POINTS])
      scales.append(float(face.transform_scale(m)))
      offsets_x.append(m[0, 2])
      offsets_y.append(m[1, 2])
  scale_px, offset_y = np.median(scales), np.median(offsets_y)
  print(
      f"MEAD framing: {len(scales)} frames, scale {scale_px:.2f} px/unit (IQR "
      f"{np.subtract(*np.percentile(scales, [75, 25])):.2f}), "
      f"centre x {np.median(offsets_x):.1f} px "
      f"y {offset_y:.1f} px")
  # Template units -> 256-crop pixels -> [-1, 1].
  centre = np.array([(FRAMING_SIZE - 1) / 2, offset_y])
  points = (mean * scale_px + centre + 0.5) * 2 / FRAMING_SIZE - 1

  # 5. Predictor box in the normalised template frame.
  for path in sorted(args.data.glob(PHOTO_GLOB)):
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
      found = detections(video_io.read_image(path), detector)
      if found is not None:
        box_samples.append(found)
  boxes = []
  for box, lm in box_samples:
    # image px -> template units
    m = face.fit_similarity(lm[face.STABLE_POINTS], points[face.STABLE_POINTS])
    c = face.transform_points(np.array([box.centre]), m)[0]
    boxes.append([c[0], c[1], 0.5 * (box.width + box.height) * float(face.transform_scale(m))])
  predictor_box = np.median(np.array(boxes), axis=0)
  print(
      f"predictor box from {len(boxes)} detections: "
      f"centre ({predictor_box[0]:.3f}, {predictor_box[1]:.3f}) "
      f"side {predictor_box[2]:.3f} (template units)")

  for name, idx in [("chin (8)", [8]), ("eye centres", face.EYES), ("brows", face.BROWS)]:
    print(f"  {name}: y = {points[idx, 1].mean():+.3f}")
  print(f"  jaw x range {points[face.JAW, 0].min():+.3f} .. {points[face.JAW, 0].max():+.3f}")

  asset = {
      "description":
          "Canonical 68-point (iBUG 300-W order) face in [-1, 1] crop coordinates "
          "(x right, y down; "
          "pixel centre j of an S-pixel crop at (2j + 1) / S - 1), used to align faces.",
      "made_by":
          "tools/make_face_template.py (see its docstring for the method)",
      "method":
          "generalised Procrustes mean (similarity fits on brows, nose and eyes) of dlib 68-point "
          "landmarks of 10 neutral frontal faces, symmetrised; framed like the 256x256 MEAD crops "
          "of ali-vilab/dreamtalk (median scale and vertical offset over their frames), centred "
          "horizontally",
      "sources":
          NEUTRAL_VIDEOS + NEUTRAL_PHOTOS +
          ["framing: " + FRAMING_GLOB, "predictor box: the above plus " + PHOTO_GLOB],
      "note":
          "only averaged coordinates, no image data; the photos and clips used are research media "
          "(MEAD, CREMA-D) and a public-domain NASA photo",
      "points": [[round(float(x), 5), round(float(y), 5)] for x, y in points],
      "stable_indices":
          face.STABLE_POINTS.tolist(),
      "predictor_box": [round(float(v), 5) for v in predictor_box],
      "predictor_box_note":
          "median dlib HOG face box [centre x, centre y, side] in the same coordinates; "
          "emotalk_jax.media.face.predictor_box maps it into an image",
  }
  text = json.dumps(asset, indent=1)
  # One line per number list (a point, the box, the indices) keeps the file readable.
  text = re.sub(r"\[\s*(-?[0-9.e+-]+(?:,\s*-?[0-9.e+-]+)*)\s*\]",
                lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
  args.out.write_text(text + "\n", encoding="utf-8")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()

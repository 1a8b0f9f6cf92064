"""Sharpness benchmark (`emotalk bench sharpness`): is the generated face as sharp as the photo?

For each photo: a video of the bundled CMU ARCTIC sentence (4 s, neutral, the shipped checkpoints,
pasted back at the photo's resolution), and two measures of the face region (the box of the photo's
68 landmarks) in every 10th frame against the photo itself: the variance of the Laplacian (fine
detail: pores, lashes, iris highlights) and CPBD (`evaluate.cpbd`, the harness's no-reference
sharpness). Ratios near 1 mean the face stays as sharp as the photo.

The default photos (in `../shared/data/faces`, never copied into the repository) are `PHOTOS`:
frontal faces 150 to 420 px wide in photos of 256 to 1145 px.
"""

import pathlib
import tempfile
import time

import cv2
import numpy as np

from emotalk_jax import bundled
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import cpbd
from emotalk_jax.generate import pipeline
from emotalk_jax.media import face
from emotalk_jax.media import video_io

PHOTOS = ("faces/makeittalk/obama.jpg", "faces/edtalk/leijun.png",
          "faces/liveportrait/MY_photo.jpg", "faces/liveportrait/d12.jpg",
          "faces/liveportrait/d19.jpg", "faces/sadtalker/people_1.png",
          "faces/edtalk/uncrop_face.jpg", "faces/liveportrait/s1.jpg")
EVERY = 10  # Frames between measured frames.


def laplacian_variance(image) -> float:
  """Variance of the Laplacian of an [H, W, 3] uint8 image's grey levels."""
  return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def face_box(photo, name: str) -> tuple:
  """(y0, y1, x0, x1) of the photo's 68 landmarks (brows to chin, jaw to jaw)."""
  points = face.face_landmarks(photo, name)
  x0, y0 = np.floor(points.min(0)).astype(int)
  x1, y1 = np.ceil(points.max(0)).astype(int) + 1
  return max(y0, 0), y1, max(x0, 0), x1


def measure(photo, frames, box) -> dict:
  """Laplacian-variance and CPBD ratios (frame / photo) over the face `box`, frame by frame."""
  y0, y1, x0, x1 = box
  region = lambda image: np.ascontiguousarray(image[y0:y1, x0:x1])
  lap = np.array([laplacian_variance(region(f)) for f in frames]) / laplacian_variance(
      region(photo))
  sharp = np.array([cpbd.cpbd(region(f)) for f in frames]) / cpbd.cpbd(region(photo))
  return {"laplacian_ratio": round(float(lap.mean()), 3),
          "laplacian_ratio_min": round(float(lap.min()), 3),
          "cpbd_ratio": round(float(sharp.mean()), 3)}


def sharpness_benchmark(photos=None) -> dict:
  """Runs the benchmark over `photos` (default `PHOTOS` in the shared data); returns its JSON."""
  root = bundled.shared_data_root()
  paths = [root / p for p in PHOTOS] if photos is None else [pathlib.Path(p) for p in photos]
  for path in paths:
    if not path.is_file():
      raise InputError(path, "no such photo (the default photos are in ../shared/data)")
  models = pipeline.load_models()
  rows = []
  with tempfile.TemporaryDirectory() as work:
    for path in paths:
      photo = video_io.read_image(path)
      box = face_box(photo, str(path))
      start = time.perf_counter()
      out = pathlib.Path(work) / "out.mp4"
      pipeline.generate(photo, bundled.ARCTIC_SPEECH, "neutral", out, models=models,
                        progress=False)
      frames = video_io.read_video(out, fps=None, with_audio=False).frames[::EVERY]
      rows.append({"photo": str(path.relative_to(root)) if photos is None else str(path),
                   "photo_px": list(photo.shape[:2]), "face_px": int(box[3] - box[2]),
                   **measure(photo, frames, box),
                   "seconds": round(time.perf_counter() - start, 1)})
  return {"photos": rows,
          "mean_laplacian_ratio": round(float(np.mean([r["laplacian_ratio"] for r in rows])), 3),
          "mean_cpbd_ratio": round(float(np.mean([r["cpbd_ratio"] for r in rows])), 3),
          "network_size": models.size}

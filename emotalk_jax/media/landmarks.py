"""Landmark coordinate conventions.

Pixel coordinates follow OpenCV and dlib: x to the right, y down, the centre of pixel (i, j) at x=j,
  y=i.
Normalised coordinates map a `size`-pixel crop onto [-1, 1] edge to edge (the `align_corners=False`
convention): the left edge of the first pixel is -1, the right edge of the last pixel is +1, so
  pixel
centre j sits at (2j + 1) / size - 1.
"""

import numpy as np

# Index of each point's mirror image under a left-right flip.
MIRROR = np.array(
    list(range(16, -1, -1))                              # jaw
    + list(range(26, 16, -1))                            # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]               # nose bridge, nostrils
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]   # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]   # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65])                  # inner lips



def normalize(landmarks_px, size: int):
  """[..., 68, 2] pixel coordinates in a `size` crop -> [..., 68, 2] in [-1, 1]."""
  return (2.0 * np.asarray(landmarks_px, np.float32) + 1.0) / size - 1.0


def denormalize(landmarks, size: int):
  """[..., 68, 2] in [-1, 1] -> pixel coordinates in a `size` crop (inverse of `normalize`)."""
  return ((np.asarray(landmarks, np.float32) + 1.0) * size - 1.0) / 2.0


def mirror(landmarks, xp=np):
  """[..., 68, 2] in [-1, 1] -> the landmarks of the left-right flipped crop (x -> -x, points
  renumbered
  by `MIRROR` so the subject's right eye is still the right eye). `xp`: numpy or jax.numpy."""
  landmarks = xp.asarray(landmarks)
  return landmarks[..., MIRROR, :] * xp.asarray([-1.0, 1.0], landmarks.dtype)

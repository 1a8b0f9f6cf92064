"""Landmark coordinate conventions.

Pixel coordinates follow OpenCV and dlib: x to the right, y down, the centre of pixel (i, j) at x=j, y=i.
Normalised coordinates map a `size`-pixel crop onto [-1, 1] edge to edge (the `align_corners=False`
convention): the left edge of the first pixel is -1, the right edge of the last pixel is +1, so pixel
centre j sits at (2j + 1) / size - 1.
"""

import numpy as np


def normalize(landmarks_px, size: int):
  """[..., 68, 2] pixel coordinates in a `size` crop -> [..., 68, 2] in [-1, 1]."""
  return (2.0 * np.asarray(landmarks_px, np.float32) + 1.0) / size - 1.0


def denormalize(landmarks, size: int):
  """[..., 68, 2] in [-1, 1] -> pixel coordinates in a `size` crop (inverse of `normalize`)."""
  return ((np.asarray(landmarks, np.float32) + 1.0) * size - 1.0) / 2.0

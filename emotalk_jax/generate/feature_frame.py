"""The frame of a face feature drawn at the output's resolution (an eye, the mouth): s along the
line between its two corners (0 at `start`, 1 at the other corner), t across it in px, down the face
positive for an upright face."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FeatureFrame:
  """Attributes:
    start: [2] px at s = 0, t = 0.
    along: [2] unit vector from corner to corner.
    width: px from s = 0 to s = 1.
  """
  start: np.ndarray
  along: np.ndarray
  width: float

  @property
  def across(self) -> np.ndarray:
    return np.array([-self.along[1], self.along[0]])

  def local(self, xy):
    """(s, t) of points `xy` [..., 2] px."""
    rel = np.asarray(xy, np.float64) - self.start
    return rel @ self.along / self.width, rel @ self.across

  def point(self, s, t) -> np.ndarray:
    """[..., 2] px of frame coordinates (s, t)."""
    return (self.start + np.asarray(s)[..., None] * self.width * self.along +
            np.asarray(t)[..., None] * self.across)

  def box(self, top: float, bottom: float) -> tuple:
    """(x0, y0, x1, y1) px holding the frame from s = 0 to 1 and t = top to t = bottom."""
    corners = self.point(np.array([0.0, 1.0, 0.0, 1.0]), np.array([top, top, bottom, bottom]))
    return (*np.floor(corners.min(0)), *(np.ceil(corners.max(0)) + 1))

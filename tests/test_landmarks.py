import numpy as np

from emotalk_jax.media import landmarks


def test_pixel_centres_and_edges_map_to_normalised_range():
  size = 256
  px = np.array([[-0.5, -0.5], [255.5, 255.5], [0.0, 127.5]], np.float32)
  u = landmarks.normalize(px, size)
  np.testing.assert_allclose(u[0], [-1, -1])
  np.testing.assert_allclose(u[1], [1, 1])
  np.testing.assert_allclose(u[2], [1 / 256 - 1, 0], atol=1e-6)


def test_round_trip():
  rng = np.random.default_rng(0)
  px = rng.uniform(0, 128, size=(4, 68, 2)).astype(np.float32)
  np.testing.assert_allclose(landmarks.denormalize(landmarks.normalize(px, 128), 128),
                             px,
                             atol=1e-4)

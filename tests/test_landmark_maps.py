"""Tests for landmark heatmaps and edge maps."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emotalk_jax.media import landmarks
from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_maps

FACE = face_graph.schematic_face()
PART = {name: p for p, name in enumerate(face_graph.PARTS)}


def _jittered_faces(shape, seed=0, scale=0.02):
  rng = np.random.default_rng(seed)
  return (FACE + scale * rng.standard_normal(shape + (68, 2))).astype(np.float32)


def _eye_loop_face(size):
  """All landmarks piled on pixel (5, 5) except a right-eye hexagon at known pixel centres."""
  px = np.full((68, 2), 5.0, np.float32)
  px[36:42] = [(20, 30), (24, 26), (32, 26), (36, 30), (32, 34), (24, 34)]
  return landmarks.normalize(px, size)


def test_blob_peaks_on_the_landmark_pixel():
  size = 64
  rng = np.random.default_rng(0)
  px = rng.integers(0, size, (68, 2)).astype(np.float32)
  maps = np.asarray(landmark_maps.heatmaps(landmarks.normalize(px, size), size, per_landmark=True))
  assert maps.shape == (size, size, 68)
  rows, cols = np.unravel_index(maps.reshape(-1, 68).argmax(axis=0), (size, size))
  np.testing.assert_array_equal(cols, px[:, 0])  # x is the column
  np.testing.assert_array_equal(rows, px[:, 1])
  np.testing.assert_allclose(maps[rows, cols, np.arange(68)], 1.0, atol=1e-5)

  # Per part: the part's channel is ~1 at each of its landmarks.
  parts = np.asarray(landmark_maps.heatmaps(landmarks.normalize(px, size), size))
  for p, (start, stop, _) in enumerate(face_graph.PARTS.values()):
    k = np.arange(start, stop)
    np.testing.assert_allclose(parts[px[k, 1].astype(int), px[k, 0].astype(int), p], 1.0, atol=1e-5)


def test_blob_width_follows_sigma():
  size = 64
  px = np.full((68, 2), 32.0, np.float32)
  maps = np.asarray(
      landmark_maps.heatmaps(landmarks.normalize(px, size), size, sigma=2.0, per_landmark=True))
  np.testing.assert_allclose(maps[32, 34, 0], np.exp(-4.0 / 8.0), rtol=1e-5)  # 2 px right
  np.testing.assert_allclose(maps[29, 32, 0], np.exp(-9.0 / 8.0), rtol=1e-5)  # 3 px up


@pytest.mark.parametrize("size", [64, 128, 256])
def test_shapes_and_range(size):
  faces = _jittered_faces((2, 1) if size == 256 else (2, 3))
  batch = faces.shape[:2]
  for maps, channels in [(landmark_maps.heatmaps(faces, size), 9),
                         (landmark_maps.heatmaps(faces, size, per_landmark=True), 68),
                         (landmark_maps.edge_map(faces, size), 9),
                         (landmark_maps.edge_map(faces, size, merge=True), 1)]:
    assert maps.shape == batch + (size, size, channels) and maps.dtype == jnp.float32
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    assert float(maps.max()) > 0.99


def test_edge_map_on_and_off_segments():
  size = 64
  maps = np.asarray(landmark_maps.edge_map(_eye_loop_face(size), size, thickness=0.5))
  eye = maps[..., PART["right_eye"]]
  assert eye[26, 28] > 0.999  # midpoint of 37-38
  assert eye[32, 22] > 0.999  # midpoint of the closing edge 41-36
  assert eye[30, 28] < 1e-6  # inside the loop, 4 px from any edge
  assert maps[60, 60].max() < 1e-6  # far from everything
  # Coincident landmarks draw a dot, not NaNs.
  assert np.all(np.isfinite(maps)) and maps[5, 5, PART["jaw"]] > 0.999


def test_open_parts_are_not_closed():
  size = 128
  maps = np.asarray(landmark_maps.edge_map(FACE, size))
  ends = landmarks.denormalize(FACE[[0, 16]], size)  # jaw ends, at eye height on both sides
  x, y = np.round(ends.mean(axis=0)).astype(int)
  assert maps[y, x, PART["jaw"]] < 1e-6


def test_edge_map_matches_brute_force():
  size = 32
  face = _jittered_faces((), seed=3)
  px = landmarks.denormalize(face, size).astype(np.float64)
  thickness = 0.8
  maps = np.asarray(landmark_maps.edge_map(face, size, thickness=thickness))
  ys, xs = np.mgrid[0:size, 0:size]
  pixels = np.stack([xs, ys], axis=-1)[:, :, None, :]  # [H, W, 1, 2]
  for p, segments in enumerate(face_graph.part_edge_groups().values()):
    a, b = px[segments[:, 0]], px[segments[:, 1]]
    t = np.clip(np.sum((pixels - a) * (b - a), -1) / np.sum((b - a) ** 2, -1), 0, 1)[..., None]
    d2 = np.sum((pixels - a - t * (b - a)) ** 2, axis=-1).min(axis=-1)
    np.testing.assert_allclose(maps[..., p], np.exp(-d2 / (2 * thickness**2)), atol=1e-5)


def _naive_maps(lm, size, width, segments_of):
  """Plain-autodiff reference: all [..., E, H, W] distances at once, then a max per part."""
  px = landmark_maps.to_pixels(lm, size)
  segments = np.concatenate(segments_of)
  a = px[..., segments[:, 0], :][..., None, None, :]  # [..., E, 1, 1, 2]
  ab = px[..., segments[:, 1], :][..., None, None, :] - a
  grid = jnp.arange(size, dtype=jnp.float32)
  rx, ry = grid[None, :] - a[..., 0], grid[:, None] - a[..., 1]
  t = jnp.clip((rx * ab[..., 0] + ry * ab[..., 1]) / (jnp.sum(ab * ab, -1) + 1e-12), 0.0, 1.0)
  values = jnp.exp(-((rx - t * ab[..., 0]) ** 2 + (ry - t * ab[..., 1]) ** 2) / (2 * width**2))
  bounds = np.cumsum([0] + [len(s) for s in segments_of])
  return jnp.stack([jnp.max(values[..., i:j, :, :], axis=-3) for i, j in zip(bounds, bounds[1:])],
                   axis=-1)


def test_gradients_match_autodiff_and_are_finite():
  size = 24
  faces = _jittered_faces((2,), seed=4)
  weights = jnp.asarray(np.random.default_rng(5).standard_normal((2, size, size, 9)), jnp.float32)
  points = [np.repeat(np.arange(s, e)[:, None], 2, axis=1) for s, e, _ in face_graph.PARTS.values()]
  cases = [(functools.partial(landmark_maps.edge_map,
                              thickness=1.0), 1.0, list(face_graph.part_edge_groups().values())),
           (functools.partial(landmark_maps.heatmaps, sigma=1.5), 1.5, points)]
  for fn, width, segments_of in cases:
    grad = jax.jit(jax.grad(lambda lm, fn=fn: jnp.sum(fn(lm, size) * weights)))(faces)
    ref = jax.jit(
        jax.grad(lambda lm, w=width, s=segments_of: jnp.sum(_naive_maps(lm, size, w, s) * weights))
    )(faces)
    assert bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_allclose(grad, ref, atol=1e-3 * float(jnp.max(jnp.abs(ref))))

  # Zero-length segments everywhere (landmarks piled on one pixel).
  pile = _eye_loop_face(size)
  for fn in (landmark_maps.edge_map, landmark_maps.heatmaps):
    grad = jax.jit(jax.grad(lambda lm, fn=fn: jnp.sum(fn(lm, size) ** 2)))(pile)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_jit_and_vmap_match_eager():
  size = 32
  faces = _jittered_faces((2, 2), seed=6)
  for fn in (landmark_maps.heatmaps, landmark_maps.edge_map):
    eager = fn(faces, size)
    jitted = jax.jit(fn, static_argnums=1)(faces, size)
    mapped = jax.vmap(jax.vmap(lambda lm, fn=fn: fn(lm, size)))(faces)
    np.testing.assert_allclose(jitted, eager, atol=1e-6)
    np.testing.assert_allclose(mapped, eager, atol=1e-6)


def test_to_rgb():
  size = 32
  parts = landmark_maps.to_rgb(landmark_maps.edge_map(FACE, size))
  assert parts.shape == (size, size, 3) and parts.dtype == np.uint8 and parts.max() >= 250
  per_landmark = landmark_maps.to_rgb(
      landmark_maps.heatmaps(_jittered_faces((2,)), size, per_landmark=True))
  assert per_landmark.shape == (2, size, size, 3)
  single = landmark_maps.to_rgb(landmark_maps.edge_map(FACE, size, merge=True))
  assert np.all(single[..., 0] == single[..., 1])  # grey
  with pytest.raises(ValueError):
    landmark_maps.to_rgb(np.zeros((4, 4, 5)))

"""Landmarks -> dense maps for the texture network: Gaussian heatmaps and edge maps.

Everything here is pure `jax.numpy`, so it runs under `jit` and `vmap`, works on
any leading batch shape and is differentiable with respect to the landmarks.

Landmarks come in normalised [-1, 1] coordinates (see `emotalk_jax.media.landmarks`):
pixel centre j of a `size` map is at (2j + 1) / size - 1, x right, y down.
Maps are channels-last, [..., size, size, C] float32 in [0, 1], with one channel
per face part in `face_graph.PARTS` order (C = 9) unless stated otherwise.

Both part maps reduce to "exp of the squared distance to the nearest point or
segment of the part". All 9 parts run as one batch (shorter parts padded by
repeating an entry), and a `fori_loop` over the <= 17 points / 16 segments per
part keeps a running min on [..., 9, size, size], so no per-segment stack of
images is ever held. The backward pass is a custom VJP that stores only the
nearest segment's index per pixel and uses the closed-form gradient of the
point-segment distance (finite for zero-length segments). Reverse mode only
(no `jax.jvp` / `jacfwd`).

Memory, XLA CPU `memory_analysis` for landmarks [8, 68, 2] at size 256 (output
[8, 256, 256, 9] = 19 MB): forward temporaries ~19 MB for both maps; grad of a
scalar loss ~95 MB (heatmaps) and ~230 MB (edge maps), i.e. a few arrays of
[8 * 9, 256 * 256, 2] float32. `per_landmark=True` heatmaps are 143 MB of output
(68 channels) and ~150 MB for the grad.
"""

import functools
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from emotalk_jax.models import face_graph

NUM_PARTS = len(face_graph.PARTS)

# One RGB colour per face part, in face_graph.PARTS order (same as visualize.py).
PART_COLOURS = np.array([
    (255, 255, 255), (255, 200, 0), (255, 200, 0), (0, 220, 255), (0, 160, 255),
    (0, 255, 120), (0, 255, 120), (255, 60, 60), (255, 120, 200),
], np.float32)

# Squared segment length floor in pixels^2: keeps the projection finite for
# zero-length segments (coincident landmarks) and changes t by < 1e-4 for any
# segment of a pixel or more.
_SEGMENT_EPS = 1e-4


def _padded_table(groups) -> np.ndarray:
  """Stacks per-part index arrays into one [num_parts, longest, ...] table.

  Shorter parts repeat their last entry: a duplicate never changes a min
  distance, and ties go to the first copy, so it gets no gradient either.
  This lets all parts run as one batched computation.
  """
  longest = max(len(g) for g in groups)
  return np.stack(
      [np.concatenate([g, np.repeat(g[-1:], longest - len(g), axis=0)]) for g in groups])


# [9, 17] landmark indices and [9, 16, 2] segment endpoints per part.
_PART_POINTS = _padded_table(
    [np.arange(start, stop) for start, stop, _ in face_graph.PARTS.values()])
_PART_SEGMENTS = _padded_table(list(face_graph.part_edge_groups().values()))


def default_sigma(size: int) -> float:
  """Heatmap blob std in output pixels: 1.5 px at 128, 3 px at 256."""
  return 1.5 * size / 128


def default_thickness(size: int) -> float:
  """Edge-map line std in output pixels: 1 px at 128, 2 px at 256."""
  return size / 128


def to_pixels(landmarks, size: int) -> jax.Array:
  """[..., 2] normalised [-1, 1] -> pixel coordinates of a `size` map (jnp twin of
  `landmarks.denormalize`)."""
  return ((jnp.asarray(landmarks, jnp.float32) + 1.0) * size - 1.0) / 2.0


def _check_landmarks(landmarks) -> jax.Array:
  landmarks = jnp.asarray(landmarks, jnp.float32)
  if landmarks.ndim < 2 or landmarks.shape[-2:] != (face_graph.NUM_NODES, 2):
    raise ValueError(f"landmarks must be [..., {face_graph.NUM_NODES}, 2], got {landmarks.shape}")
  return landmarks


# Jitted with the sizes static, so eager calls are compiled once per setting.
@functools.partial(jax.jit, static_argnames=("size", "sigma", "per_landmark"))
def heatmaps(landmarks, size: int, sigma: Optional[float] = None,
             per_landmark: bool = False) -> jax.Array:
  """Gaussian blobs at the landmarks, exp(-d^2 / (2 sigma^2)), d in pixels.

  A part's channel is the max over its points' blobs, so overlapping blobs
  saturate at 1 instead of adding up; it is computed as exp of the squared
  distance to the part's nearest point.

  Args:
    landmarks: [..., 68, 2] (x, y) in normalised [-1, 1] coordinates.
    size: output height = width in pixels.
    sigma: blob std in output pixels (default `default_sigma(size)`).
    per_landmark: one channel per landmark (C = 68) instead of per part (C = 9).
      Built as outer products of separable 1-D profiles, so the output itself
      (68 * 4 bytes per pixel per face) is the memory peak.

  Returns:
    [..., size, size, C] float32 in [0, 1]; 1 (up to rounding) at the pixel
    centre a landmark sits on.

  `size`, `sigma` and `per_landmark` are static: each setting compiles once.
  """
  landmarks = _check_landmarks(landmarks)
  sigma = default_sigma(size) if sigma is None else sigma
  pixels = to_pixels(landmarks, size)  # [..., 68, 2]
  scale = -0.5 / (sigma * sigma)
  if per_landmark:
    grid = jnp.arange(size, dtype=jnp.float32)
    gx = jnp.exp(scale * jnp.square(grid - pixels[..., 0:1]))  # [..., 68, W]
    gy = jnp.exp(scale * jnp.square(grid - pixels[..., 1:2]))  # [..., 68, H]
    return jnp.einsum("...kh,...kw->...hwk", gy, gx)
  points = pixels[..., _PART_POINTS, :]  # [..., 9, 17, 2]
  return jnp.moveaxis(jnp.exp(scale * _nearest_distance2(points, points, size, True)), -3, -1)


def _offsets(a, b, grid, points: bool):
  """Offset from every pixel centre to the nearest point of one segment.

  Args:
    a, b: [..., 2] segment endpoints in pixels.
    grid: [size] pixel-centre coordinates.
    points: the segment is the single point a (b is ignored).

  Returns:
    (t, dx, dy), broadcastable to [..., H, W]: where the nearest point lies on
    a -> b, in [0, 1] (0 for points), and pixel minus nearest point in pixels.
  """
  ax, ay = a[..., 0, None, None], a[..., 1, None, None]  # [..., 1, 1]
  rx = grid[None, :] - ax  # [..., 1, W]
  ry = grid[:, None] - ay  # [..., H, 1]
  if points:
    return 0.0, rx, ry
  abx, aby = b[..., 0, None, None] - ax, b[..., 1, None, None] - ay
  # Projection clamped to the endpoints; a zero-length segment gives t = 0,
  # the distance to its single point.
  t = jnp.clip((rx * abx + ry * aby) / (abx * abx + aby * aby + _SEGMENT_EPS), 0.0, 1.0)
  return t, rx - t * abx, ry - t * aby


def _nearest(a, b, size: int, points: bool):
  """Min squared distance (px^2) over segments and the index of the nearest one.

  A loop over the S segments keeps a running min on [..., H, W], so no
  [..., S, H, W] tensor is ever materialised; each step is one fused
  elementwise pass.
  """
  grid = jnp.arange(size, dtype=jnp.float32)

  def distance2(s):
    a_s = jax.lax.dynamic_index_in_dim(a, s, axis=-2, keepdims=False)
    b_s = jax.lax.dynamic_index_in_dim(b, s, axis=-2, keepdims=False)
    _, dx, dy = _offsets(a_s, b_s, grid, points)
    return jnp.broadcast_to(dx * dx + dy * dy, a.shape[:-2] + (size, size))

  def step(s, carry):
    best, nearest = carry
    d2 = distance2(s)
    return jnp.minimum(best, d2), jnp.where(d2 < best, s, nearest)  # ties keep the first

  first = distance2(0)
  return jax.lax.fori_loop(1, a.shape[-2], step, (first, jnp.zeros(first.shape, jnp.int32)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _nearest_distance2(a, b, size: int, points: bool):
  """[..., S, 2] x2 segment endpoints (pixels) -> [..., size, size] min squared distance (px^2)."""
  return _nearest(a, b, size, points)[0]


def _nearest_distance2_fwd(a, b, size, points):
  best, nearest = _nearest(a, b, size, points)
  # Residuals: the endpoints and the winner's index only ([..., H, W] int32).
  return best, (a, b, nearest)


def _nearest_distance2_bwd(size, points, residuals, cotangent):
  a, b, nearest = residuals
  batch_shape, num_segments = a.shape[:-2], a.shape[-2]
  num_faces = math.prod(batch_shape)
  a = a.reshape(num_faces, num_segments, 2)
  b = b.reshape(num_faces, num_segments, 2)
  nearest = nearest.reshape(num_faces, size * size)  # [F, P], P pixels per face
  # Every pixel's gradient involves only its nearest segment: gather that
  # segment per pixel, differentiate, then sum back per segment. Memory stays
  # at a few [F, P] arrays instead of one per segment.
  a_near = jnp.take_along_axis(a, nearest[..., None], axis=-2)  # [F, P, 2]
  grid = jnp.arange(size, dtype=jnp.float32)
  # [P, 2] (x, y)
  pixel = jnp.stack(jnp.meshgrid(grid, grid, indexing="xy"), axis=-1).reshape(-1, 2)
  r = pixel - a_near
  weight = -2.0 * cotangent.reshape(num_faces, size * size, 1)
  # d2 = |r - t (b - a)|^2 with t optimal, so dd2/dt = 0 inside the segment (and
  # t is constant where clamped): dd2/da = -2 (1 - t) d and dd2/db = -2 t d, d
  # the offset from the nearest point. Exact, and finite for zero-length
  # segments, unlike differentiating through the projection's division.
  if points:
    grad_a_pixels, grad_b_pixels = weight * r, None
  else:
    ab = jnp.take_along_axis(b, nearest[..., None], axis=-2) - a_near
    t = jnp.sum(r * ab, axis=-1,
                keepdims=True) / (jnp.sum(ab * ab, axis=-1, keepdims=True) + _SEGMENT_EPS)
    t = jnp.clip(t, 0.0, 1.0)
    d = r - t * ab
    grad_a_pixels, grad_b_pixels = weight * (1.0 - t) * d, weight * t * d

  bins = (jnp.arange(num_faces, dtype=jnp.int32)[:, None] * num_segments + nearest).reshape(-1)

  def per_segment(grad_pixels):  # [F, P, 2] -> [..., S, 2]
    summed = jax.ops.segment_sum(grad_pixels.reshape(-1, 2),
                                 bins,
                                 num_segments=num_faces * num_segments)
    return summed.reshape(batch_shape + (num_segments, 2))

  grad_a = per_segment(grad_a_pixels)
  grad_b = jnp.zeros(batch_shape +
                     (num_segments, 2), a.dtype) if points else per_segment(grad_b_pixels)
  return grad_a, grad_b


_nearest_distance2.defvjp(_nearest_distance2_fwd, _nearest_distance2_bwd)


@functools.partial(jax.jit, static_argnames=("size", "thickness", "merge"))
def edge_map(landmarks, size: int, thickness: Optional[float] = None,
             merge: bool = False) -> jax.Array:
  """Anti-aliased drawing of the face graph's part edges, one channel per part.

  Each pixel gets exp(-d^2 / (2 thickness^2)), d its distance in pixels to the
  nearest segment of the part (closed parts include the closing segment; the
  nose-bridge channel includes the bridge-to-nostril connector).

  Args:
    landmarks: [..., 68, 2] (x, y) in normalised [-1, 1] coordinates.
    size: output height = width in pixels.
    thickness: line profile std in output pixels (default
      `default_thickness(size)`); the visible line is about 2-3x as wide.
    merge: max over parts into a single channel.

  Returns:
    [..., size, size, 9] (or [..., size, size, 1] if merge) float32 in [0, 1].

  `size`, `thickness` and `merge` are static: each setting compiles once.
  """
  landmarks = _check_landmarks(landmarks)
  thickness = default_thickness(size) if thickness is None else thickness
  pixels = to_pixels(landmarks, size)
  scale = -0.5 / (thickness * thickness)
  a = pixels[..., _PART_SEGMENTS[..., 0], :]  # [..., 9, 16, 2]
  b = pixels[..., _PART_SEGMENTS[..., 1], :]
  maps = jnp.moveaxis(jnp.exp(scale * _nearest_distance2(a, b, size, False)), -3, -1)
  if merge:
    maps = jnp.max(maps, axis=-1, keepdims=True)
  return maps


def to_rgb(maps, colours: Optional[Sequence[Sequence[float]]] = None) -> np.ndarray:
  """Colours a stack of maps for looking at: [..., H, W, C] in [0, 1] -> [..., H, W, 3] uint8.

  Pixel colour is the max over channels of map_c * colour_c, so overlapping
  parts keep their own hue instead of summing to white.

  Args:
    maps: [..., H, W, C] with C = 9 (per part), 68 (per landmark, coloured by
      part) or 1 (white); any other C needs `colours`.
    colours: [C, 3] RGB in 0..255, overriding the part colours.

  Returns:
    numpy uint8 RGB image(s).
  """
  maps = np.clip(np.asarray(maps, np.float32), 0.0, 1.0)
  channels = maps.shape[-1]
  if colours is not None:
    palette = np.asarray(colours, np.float32).reshape(-1, 3)
  elif channels == NUM_PARTS:
    palette = PART_COLOURS
  elif channels == face_graph.NUM_NODES:
    palette = PART_COLOURS[face_graph.part_index()]
  elif channels == 1:
    palette = np.full((1, 3), 255.0, np.float32)
  else:
    raise ValueError(f"no default colours for {channels} channels; pass colours=[C, 3]")
  if palette.shape[0] != channels:
    raise ValueError(f"{palette.shape[0]} colours for {channels} channels")
  image = np.zeros(maps.shape[:-1] + (3,), np.float32)
  for c in range(channels):  # a loop keeps memory at one [..., H, W, 3] buffer
    np.maximum(image, maps[..., c, None] * palette[c], out=image)
  return np.round(image).clip(0, 255).astype(np.uint8)

"""Differentiable bilinear warping in JAX (the motion branch's sampler).

Conventions (the same as `emotalk_jax.models.landmark_maps` and the landmarks):
* Images / feature maps are channels-last, [B, H, W, C].
* A flow is a *backward* displacement field [B, H, W, 2] (x, y) in normalised units: output pixel p
  takes the input's value at p + flow(p), where 2 units span the image's width (x) or height (y).
  Normalised units make one flow valid at every resolution of a feature pyramid; a shift of k pixels
  at width W is 2k / W (`pixels_to_flow`).
* Pixel centre j sits at (2j + 1) / W - 1, so zero flow samples every pixel exactly at its centre
  and
  returns the input unchanged (bit-exact: the neighbour's weight is exactly 0).

Border handling (`padding`): 'zeros' treats everything outside the image as 0 (each of the 4 taps is
masked on its own, so a sample half a pixel outside fades linearly to 0, as in PyTorch's
`grid_sample(padding_mode='zeros', align_corners=False)`); 'border' clamps the sample point into the
image (edge pixels repeat). Gradients flow to both the image and the flow (almost everywhere: the
floor is piecewise constant, the bilinear weights are linear in the sample position).
"""

import jax
import jax.numpy as jnp

PADDINGS = ("zeros", "border")


def pixels_to_flow(flow_pixels, height: int, width: int) -> jax.Array:
  """[..., 2] displacement (x, y) in pixels of an H x W image -> normalised flow units."""
  scale = jnp.asarray([2.0 / width, 2.0 / height], jnp.float32)
  return jnp.asarray(flow_pixels, jnp.float32) * scale


def identity_grid(height: int, width: int) -> jax.Array:
  """[H, W, 2] (x, y) normalised coordinates of the pixel centres."""
  xs = (2.0 * jnp.arange(width, dtype=jnp.float32) + 1.0) / width - 1.0
  ys = (2.0 * jnp.arange(height, dtype=jnp.float32) + 1.0) / height - 1.0
  return jnp.stack(jnp.meshgrid(xs, ys, indexing="xy"), axis=-1)


def sample_pixels(image, x, y, padding: str = "zeros") -> jax.Array:
  """Bilinear samples of `image` at pixel coordinates.

  Args:
    image: [B, H, W, C].
    x, y: [B, *Q] sample positions in pixels (pixel j's centre is at j).
    padding: 'zeros' or 'border' (see the module docstring).

  Returns:
    [B, *Q, C], `image.dtype`.
  """
  if padding not in PADDINGS:
    raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
  b, h, w, c = image.shape
  query_shape = x.shape[1:]
  x = x.reshape(b, -1).astype(jnp.float32)
  y = y.reshape(b, -1).astype(jnp.float32)
  if padding == "border":
    x = jnp.clip(x, 0.0, w - 1.0)
    y = jnp.clip(y, 0.0, h - 1.0)
  x0 = jnp.floor(x)
  y0 = jnp.floor(y)
  fx = x - x0  # Weight of the right neighbour; exactly 0 on a pixel centre.
  fy = y - y0
  x0 = x0.astype(jnp.int32)
  y0 = y0.astype(jnp.int32)
  flat = image.reshape(b, h * w, c)

  def tap(xi, yi, weight):
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    index = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
    values = jnp.take_along_axis(flat, index[..., None], axis=1)  # [B, Q, C]
    # Masking the weight (not the value) keeps a NaN-free product for taps outside the image.
    return values * jnp.where(inside, weight, 0.0)[..., None].astype(image.dtype)

  out = (tap(x0, y0, (1.0 - fx) * (1.0 - fy)) + tap(x0 + 1, y0, fx * (1.0 - fy))
         + tap(x0, y0 + 1, (1.0 - fx) * fy) + tap(x0 + 1, y0 + 1, fx * fy))
  return out.reshape((b,) + query_shape + (c,))


def warp(image, flow, padding: str = "zeros") -> jax.Array:
  """Backward-warps `image` by `flow`: out[p] = image[p + flow(p)], bilinear.

  Args:
    image: [B, H, W, C] (any float dtype; sampling weights are computed in float32).
    flow: [B, H, W, 2] (x, y) in normalised units (2 = the full width / height), or a flow of
      another resolution, which is resized bilinearly to H x W first (normalised units need no
      rescale).
    padding: 'zeros' or 'border'.

  Returns:
    [B, H, W, C], `image.dtype`.
  """
  b, h, w, _ = image.shape
  if flow.shape[1:3] != (h, w):
    flow = resize_flow(flow, h, w)
  flow = flow.astype(jnp.float32)
  # Pixel coordinates directly (j + displacement): exact integers for zero flow.
  x = jnp.arange(w, dtype=jnp.float32)[None, None, :] + flow[..., 0] * (w / 2.0)
  y = jnp.arange(h, dtype=jnp.float32)[None, :, None] + flow[..., 1] * (h / 2.0)
  return sample_pixels(image, x, y, padding)


def resize_flow(flow, height: int, width: int) -> jax.Array:
  """Bilinear resize of a normalised flow [B, h, w, 2] to [B, height, width, 2] (values unchanged:
  the
  units are resolution-free)."""
  b = flow.shape[0]
  return jax.image.resize(flow, (b, height, width, 2), method="linear")


# Thin-plate spline flows --------------------------------------------------------------------------

# 8 fixed points on the image border (corners and edge midpoints), normalised (x, y): a
# landmark-driven
# spline moves the face and leaves the frame's edges where they are.
BORDER_ANCHORS = ((-1.0, -1.0), (-1.0, 0.0), (-1.0, 1.0), (0.0, -1.0), (0.0, 1.0), (1.0, -1.0),
                  (1.0, 0.0), (1.0, 1.0))


def _squared_distances(p, q):
  """[B, P, 2] x [B, Q, 2] -> [B, P, Q] squared distances, from x and y apart: XLA:CPU sums a
  [B, P, Q, 2] difference over its trailing axis of 2 slowly, and at 64 x 64 that sum was most of
  the spline's cost (docs/results.md#generation-speed-and-memory)."""
  dx = p[:, :, None, 0] - q[:, None, :, 0]
  dy = p[:, :, None, 1] - q[:, None, :, 1]
  return dx * dx + dy * dy


def _tps_kernel(d2):
  """U = r^2 log r^2 from squared distances (0 at r = 0, with a finite gradient)."""
  safe = jnp.maximum(d2, 1e-12)
  return jnp.where(d2 > 1e-12, safe * jnp.log(safe), 0.0)


def tps_flow(source_points, target_points, size: int, regularization: float = 1e-3,
             anchors=BORDER_ANCHORS) -> jax.Array:
  """The backward flow of a thin-plate spline that carries `target_points` onto `source_points`.

  Warping the source image by it (`warp(source, flow)`) moves the source's points to the target
  points (up to the smoothing `regularization`, which also keeps coincident points, e.g. a closed
  mouth's inner lips, solvable); `anchors` are fixed points kept in place.

  Args:
    source_points, target_points: [B, N, 2] normalised (x, y) (e.g. neutral and target landmarks).
    size: output height = width.

  Returns:
    [B, size, size, 2] flow in normalised units.
  """
  source_points = jnp.asarray(source_points, jnp.float32)
  target_points = jnp.asarray(target_points, jnp.float32)
  b = source_points.shape[0]
  fixed = jnp.broadcast_to(jnp.asarray(anchors, jnp.float32), (b, len(anchors), 2))
  dst = jnp.concatenate([target_points, fixed], 1)  # [B, N, 2]: where the spline is evaluated from.
  src = jnp.concatenate([source_points, fixed], 1)
  n = dst.shape[1]
  kernel = _tps_kernel(_squared_distances(dst, dst)) + regularization * jnp.eye(n)
  affine = jnp.concatenate([jnp.ones((b, n, 1)), dst], -1)  # [B, N, 3]
  system = jnp.concatenate([
      jnp.concatenate([kernel, affine], -1),
      jnp.concatenate([jnp.swapaxes(affine, 1, 2), jnp.zeros((b, 3, 3))], -1)
  ], 1)
  rhs = jnp.concatenate([src, jnp.zeros((b, 3, 2))], 1)
  coef = jnp.linalg.solve(system, rhs)  # [B, N + 3, 2]
  grid = identity_grid(size, size).reshape(1, -1, 2)
  u = _tps_kernel(_squared_distances(grid, dst))  # [B, Q, N]
  mapped = u @ coef[:, :n] + jnp.concatenate([jnp.ones(
      (1, size * size, 1)), grid], -1) @ coef[:, n:]
  return (mapped - grid).reshape(b, size, size, 2)

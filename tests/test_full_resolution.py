"""Tests for stage 2's output at the photo's own resolution (generate/full_resolution.py)."""

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.generate import full_resolution as fr
from emotalk_jax.media import face
from emotalk_jax.media import video_io
from emotalk_jax.models import warp

S = 128


@pytest.fixture(scope="module")
def photo():
  return video_io.read_image(bundled.DEMO_PHOTO)  # 480 x 480, the face about 200 px wide.


@pytest.fixture(scope="module")
def aligned(photo):
  return face.align_face(photo, "demo", size=S, border="replicate")


def _layers(seed=0, flow_px=1.5):
  """A smooth flow of up to `flow_px` crop px, an occlusion in [0.3, 1] and a painted frame in
  [-1, 1]."""
  rng = np.random.default_rng(seed)
  small = lambda c, lo, hi: cv2.resize(rng.uniform(lo, hi, (8, 8, c)).astype(np.float32), (S, S),
                                       interpolation=cv2.INTER_CUBIC).reshape(S, S, c)
  flow = small(2, -flow_px, flow_px) * (2.0 / S)
  return flow, np.clip(small(1, 0.3, 1.0), 0, 1), np.clip(small(3, -1, 1), -1, 1)


def test_at_the_network_size_it_is_the_network_formula(aligned):
  """On the crop itself, bilinear: occlusion * warp(crop, flow, border) + (1 - occlusion) * rgb, as
  the texture network computes it (models.warp), within a grey level, from the paint it adds."""
  flow, occlusion, rgb = _layers()
  crop = aligned.crop
  image = jnp.asarray(crop, jnp.float32)[None] / 127.5 - 1.0
  warped = np.asarray(warp.warp(image, jnp.asarray(flow)[None], padding="border")[0])
  want = (occlusion * warped + (1 - occlusion) * rgb + 1.0) * 127.5
  paint = (1 - occlusion) * (rgb - warped) * 127.5
  got = fr.compose(crop, np.eye(2, 3), fr.crop_canvas(S, S), flow, paint,
                   interpolation=cv2.INTER_LINEAR).astype(np.float64)
  assert np.abs(got - want).max() <= 1.5
  cubic = fr.compose(crop, np.eye(2, 3), fr.crop_canvas(S, S), flow, paint)
  assert np.abs(cubic - want).mean() < 1.5


def test_no_motion_and_nothing_painted_returns_the_photo_exactly(photo, aligned):
  """Zero flow, nothing painted: every pixel is the photo's own, at its own resolution (nothing of
  the S x S crop's softness), and pixels outside the crop's footprint are untouched."""
  canvas = fr.paste_canvas(photo.shape, aligned.transform, S)
  out = fr.compose(photo, aligned.transform, canvas, np.zeros((S, S, 2)), np.zeros((S, S, 3)))
  np.testing.assert_array_equal(out, photo)
  y0, y1, x0, x1 = canvas.box
  assert 0 < y1 - y0 < photo.shape[0] and canvas.weight.max() == pytest.approx(1.0)


def test_paste_back_changes_only_the_face_region_and_blends_softly(photo, aligned):
  flow, occlusion, rgb = _layers(1, flow_px=3.0)
  canvas = fr.paste_canvas(photo.shape, aligned.transform, S)
  out = fr.compose(photo, aligned.transform, canvas, flow, (1 - occlusion) * rgb * 127.5)
  y0, y1, x0, x1 = canvas.box
  outside = np.ones(photo.shape[:2], bool)
  outside[y0:y1, x0:x1] = False
  np.testing.assert_array_equal(out[outside], photo[outside])
  changed = np.abs(out.astype(int) - photo).max(-1) > 8
  centre = tuple(np.round(face.transform_points(np.array([[S / 2, S / 2]]),
                                                face.invert(aligned.transform))[0]).astype(int))
  assert changed[centre[1], centre[0]]
  # The blend weight fades to 0 at the crop's edge (where it lies inside the photo): no seam.
  at_edge = (canvas.points.min(-1) < 0.5) | (canvas.points.max(-1) > S - 1.5)
  assert at_edge.sum() > 100 and canvas.weight[at_edge].max() < 0.05


def test_the_upsampled_source_holds_every_photo_pixel_and_is_as_sharp_as_lanczos(photo, aligned):
  """The 2x source read bicubically: no motion gives the photo exactly; under a sub-pixel flow it
  agrees with Lanczos on the photo (within a grey level on average) and keeps as much detail."""
  canvas = fr.paste_canvas(photo.shape, aligned.transform, S)
  source = fr.photo_source(photo, aligned.transform, S)
  still = fr.compose(photo, aligned.transform, canvas, np.zeros((S, S, 2)), np.zeros((S, S, 3)),
                     source)
  np.testing.assert_array_equal(still, photo)
  flow, _, _ = _layers(2, flow_px=1.3)
  lanczos = fr.compose(photo, aligned.transform, canvas, flow, np.zeros((S, S, 3)))
  fast = fr.compose(photo, aligned.transform, canvas, flow, np.zeros((S, S, 3)), source)
  y0, y1, x0, x1 = canvas.box
  assert np.abs(fast.astype(float) - lanczos).mean() < 1.0
  lap = lambda x: cv2.Laplacian(cv2.cvtColor(x[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY),
                                cv2.CV_64F).var()
  cubic = fr.compose(photo, aligned.transform, canvas, flow, np.zeros((S, S, 3)),
                     interpolation=cv2.INTER_CUBIC)
  assert lap(fast) >= 0.98 * lap(lanczos) and lap(fast) > 1.05 * lap(cubic)


def test_crop_canvas_at_any_size_reads_the_photo_not_the_small_crop(photo, aligned):
  """Without motion a 256 crop-only frame is the photo resampled once (as `face.crop` at 256 would
  give it), with twice the detail of the 128 crop scaled up."""
  out = fr.compose(photo, aligned.transform, fr.crop_canvas(S, 256), np.zeros((S, S, 2)),
                   np.zeros((S, S, 3)))
  shifted = face.compose(np.array([[2.0, 0, 0.5], [0, 2.0, 0.5]]), aligned.transform)
  want = face.crop(photo, shifted, 256, border="replicate")
  assert np.abs(out.astype(float) - want).mean() < 2.0
  upscaled = cv2.resize(aligned.crop, (256, 256), interpolation=cv2.INTER_CUBIC)
  lap = lambda x: cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
  assert lap(out) > 1.5 * lap(upscaled)


def test_past_the_photo_edge_it_repeats_the_edge_never_mirrors(photo):
  """A face crop that runs past the bottom of the photo: the canvas rows below the photo repeat
  its last row (the warp's border handling), where a mirrored fill would show the rows above."""
  cut = photo[:400]  # The chin is near the bottom edge now.
  aligned = face.align_face(cut, "cut", size=S, border="replicate")
  out = fr.compose(cut, aligned.transform, fr.crop_canvas(S, S), np.zeros((S, S, 2)),
                   np.zeros((S, S, 3)))
  rows = face.transform_points(np.stack([np.full(S, 64.0), np.arange(S, dtype=float)], -1),
                               face.invert(aligned.transform))[:, 1]
  below = np.nonzero(rows > cut.shape[0] + 2)[0]
  assert below.size > 3
  inside = aligned.crop[below]  # The network's input crop: also edge-repeated, not mirrored.
  assert np.abs(np.diff(out[below].astype(int), axis=0)).mean() < 3
  assert np.abs(np.diff(inside.astype(int), axis=0)).mean() < 3


def test_pixels_of_holds_every_canvas_pixel_whose_point_is_in_the_box(photo, aligned):
  canvas = fr.paste_canvas(photo.shape, aligned.transform, S)
  box = (40.3, 38.0, 57.9, 51.2)
  rows, cols = canvas.pixels_of(box)
  x, y = canvas.points[..., 0], canvas.points[..., 1]
  inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
  picked = np.zeros_like(inside)
  picked[rows, cols] = True
  assert inside.any() and not (inside & ~picked).any()
  assert picked.sum() < 2 * inside.sum()  # A tight box, not the whole canvas.


def test_paint_is_kept_around_the_mouth_only(aligned):
  """On the demo face's real landmarks: all of the paint on the lips, none on the eyes, the brows,
  the forehead or the neck, and a soft edge between."""
  paint = np.full((S, S, 3), 40.0, np.float32)
  kept = fr.near_mouth(paint, aligned.landmarks)
  at = lambda points: kept[tuple(np.round(points[:, ::-1]).astype(int).T)][:, 0]
  lips = aligned.landmarks[48:68]
  np.testing.assert_allclose(at(lips), 40.0, atol=0.5)
  assert np.all(at(aligned.landmarks[np.r_[17:27, 36:48]]) < 0.01)  # Brows and eyes.
  width = np.linalg.norm(lips[6] - lips[0])
  centre = lips.mean(axis=0)
  assert np.all(at(np.array([[centre[0], centre[1] + 1.5 * width],  # Neck.
                             [centre[0], aligned.landmarks[19, 1] - 10]])) < 0.01)  # Forehead.
  halfway = at(np.array([[centre[0], aligned.landmarks[57, 1] + 0.75 * width]]))[0]
  assert 2.0 < halfway < 38.0
  assert np.all((kept >= 0) & (kept <= 40.0))

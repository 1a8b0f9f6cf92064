"""Tests for the inside of an opening mouth drawn from a real one (generate/mouth_interior.py)."""

import json

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.errors import InputError
from emotalk_jax.generate import full_resolution as fr
from emotalk_jax.generate import mouth_interior as mi
from emotalk_jax.media import face
from emotalk_jax.media import video_io

S = 128
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@pytest.fixture(scope="module")
def demo():
  """(photo, aligned face, its landmarks in crop px): the demo photo, lips closed."""
  photo = video_io.read_image(bundled.DEMO_PHOTO)
  aligned = face.align_face(photo, "demo", size=S, border="replicate")
  return photo, aligned, aligned.landmarks.astype(np.float64)


def _opened(landmarks, gap_ratio):
  """The landmarks with the lower lip and jaw moved down by `gap_ratio` x the mouth's width."""
  out = np.array(landmarks, copy=True)
  width = np.linalg.norm(out[64] - out[60])
  out[list(range(55, 60)) + list(range(65, 68)) + list(range(5, 12))] += [0.0, gap_ratio * width]
  return out


def _overlay(points, overlays):
  """([H, W] weight, [H, W, 3] colour) of `draw`'s overlay on `points`."""
  weight = np.zeros(points.shape[:2], np.float32)
  colour = np.zeros(points.shape[:2] + (3,), np.float32)
  for rows, cols, w, c in overlays:
    weight[rows, cols], colour[rows, cols] = w[..., 0], c
  return weight, colour


def test_the_bundled_exemplar_is_an_open_mouth():
  exemplar = mi.default_exemplar()
  assert 0.15 < mi._mouth(exemplar.landmarks_px).opening() < 0.4


def test_recolouring_takes_skin_to_skin_and_keeps_greys_grey():
  exemplar = mi.default_exemplar()
  skin = mi.skin_colour(exemplar.image, exemplar.landmarks_px)
  tanned = np.array([150.0, 100.0, 70.0], np.float32)
  to_tanned = mi._luma_ratio(skin, tanned)
  np.testing.assert_allclose(
      mi._recoloured(skin[None, None].astype(np.uint8), skin, tanned, to_tanned)[0, 0],
      tanned * (np.round(skin) @ LUMA) / (skin @ LUMA), atol=2.0)
  grey_skin = np.array([140.0, 140.0, 140.0], np.float32)
  grey = mi._recoloured(exemplar.image, skin, grey_skin, mi._luma_ratio(skin, grey_skin))
  assert np.ptp(grey, axis=-1).max() < 0.5  # A black-and-white photo gets grey teeth, not blue.
  same = mi._recoloured(exemplar.image, skin, skin, mi._luma_ratio(skin, skin))
  np.testing.assert_allclose(same, exemplar.image, atol=0.5)


def test_teeth_follow_the_light_of_the_photo_but_only_half_its_skin_tone(demo):
  """Darker light darkens skin, eye whites and teeth alike; darker skin does not darken teeth."""
  _, aligned, landmarks = demo
  crop = aligned.crop.astype(np.float32)
  eyes = np.zeros(crop.shape[:2], np.uint8)
  for eye in mi.EYE_LANDMARKS:
    cv2.fillPoly(eyes, [np.round(landmarks[list(eye)]).astype(np.int32)], 1)
  eyes = cv2.dilate(eyes, np.ones((3, 3), np.uint8))[..., None] > 0
  dim_light = (0.6 * crop).astype(np.uint8)
  dark_skin = np.where(eyes, crop, 0.6 * crop).astype(np.uint8)

  def teeth(image):  # The luma of the brightest tenth of the drawn exemplar (its teeth).
    return np.percentile(mi.interior(image, landmarks).image @ LUMA, 90)

  own = teeth(aligned.crop)
  assert mi.eye_white_luma(dim_light, landmarks) == pytest.approx(
      0.6 * mi.eye_white_luma(aligned.crop, landmarks), rel=0.03)
  assert teeth(dim_light) / own == pytest.approx(0.6, abs=0.03)
  # The skin 0.6 as bright under the same light: the teeth sqrt(0.6) as bright, not 0.6.
  assert teeth(dark_skin) / own == pytest.approx(np.sqrt(0.6), abs=0.03)


def test_eyes_too_small_to_see_have_no_white():
  landmarks = np.zeros((68, 2))
  landmarks[36:48] = [30.0, 30.0]  # Closed to a point.
  assert mi.eye_white_luma(np.full((64, 64, 3), 200, np.uint8), landmarks) is None


def test_nothing_is_drawn_in_a_mouth_as_closed_as_the_photos_or_over_a_photos_own_teeth(demo):
  _, aligned, landmarks = demo
  inside = mi.interior(aligned.crop, landmarks)
  points = fr.crop_canvas(S, 4 * S).points
  assert mi.draw(points, None) == []
  assert mi.draw(points, mi.Opening(landmarks, inside)) == []
  assert mi.draw(points, mi.Opening(_opened(landmarks, 0.2), inside)) != []
  # The astronaut smiles with her teeth showing: the warp shows them.
  photo = video_io.read_image(bundled.ASTRONAUT_PHOTO)
  smiling = face.align_face(photo, "astronaut", size=S, border="replicate")
  own = smiling.landmarks.astype(np.float64)
  inside = mi.interior(smiling.crop, own)
  assert inside.photo_opening > mi.PHOTO_OPEN
  assert mi.draw(points, mi.Opening(_opened(own, 0.2), inside)) == []


def test_an_opening_mouth_shows_teeth_under_the_upper_lip(demo):
  """At 4x the crop: only pixels between the lips' parabolas are painted; the band under the
  upper lip is the exemplar's teeth (single teeth: bright, with dark gaps between them, the
  brightest brighter than the lips), and in a mouth open twice as wide as the exemplar's the
  middle is left to stage 2's paint."""
  _, aligned, landmarks = demo
  inside = mi.interior(aligned.crop, landmarks)
  canvas = fr.crop_canvas(S, 4 * S)
  for gap in (0.15, 0.5):
    target = _opened(landmarks, gap)
    weight, colour = _overlay(canvas.points, mi.draw(canvas.points, mi.Opening(target, inside),
                                                      canvas.pixels_of))
    mouth = mi._mouth(target)
    s, t = mouth.local(canvas.points)
    upper, lower = mouth.lips(s)
    between = (s > 0) & (s < 1) & (t > upper) & (t < lower)
    assert weight.max() == pytest.approx(1.0)
    assert not weight[~between].any()
    depth = (t - upper) / np.maximum(lower - upper, 1e-6)
    middle = (s > 0.35) & (s < 0.65)
    teeth = colour[middle & (depth > 0.2) & (depth < 0.4) & (weight > 0.99)] @ LUMA
    lips = aligned.crop[np.round(landmarks[[51, 57], 1]).astype(int),
                        np.round(landmarks[[51, 57], 0]).astype(int)] @ LUMA
    bright, gaps = np.percentile(teeth, [90, 10])
    assert bright > lips.mean() + 5 and bright - gaps > 20, (bright, gaps, lips)
    centre = middle & (depth > 0.45) & (depth < 0.55)
    assert (weight[centre] > 0.99).all() if gap == 0.15 else not weight[centre].any()


def test_the_two_halves_of_the_teeth_meet_without_a_seam(demo):
  """Down three columns of a mouth open less than the exemplar, every 0.05 crop px (a face 20x the
  crop's scale): the drawn luma changes smoothly where the halves read from each lip meet (a hard
  switch stepped by 25-44 grey levels there; the exemplar's own edges give under 3)."""
  _, aligned, landmarks = demo
  inside = mi.interior(aligned.crop, landmarks)
  target = _opened(landmarks, 0.15)
  mouth = mi._mouth(target)
  down = np.arange(-6.0, 6.0, 0.05)
  for along in (0.4, 0.5, 0.6):
    centre = mouth.point(np.array([along]), np.array([0.0]))[0]
    points = np.stack([np.full_like(down, centre[0]), centre[1] + down], -1)[:, None]
    (_, _, weight, colour), = mi.draw(points.astype(np.float32), mi.Opening(target, inside))
    luma, inside_lips = (colour @ LUMA)[:, 0], weight[:, 0, 0] > 0.99
    steps = np.abs(np.diff(luma))[inside_lips[1:] & inside_lips[:-1]]
    assert steps.size > 30 and steps.max() < 8.0, (along, steps.max())


def test_compose_draws_the_inside_and_leaves_the_rest_of_the_frame(demo):
  photo, aligned, landmarks = demo
  canvas = fr.paste_canvas(photo.shape, aligned.transform, S)
  flow, paint = np.zeros((S, S, 2), np.float32), np.zeros((S, S, 3), np.float32)
  target = _opened(landmarks, 0.2)
  plain = fr.compose(photo, aligned.transform, canvas, flow, paint)
  drawn = fr.compose(photo, aligned.transform, canvas, flow, paint,
                     opening=mi.Opening(target, mi.interior(aligned.crop, landmarks)))
  changed = np.any(drawn != plain, axis=-1)
  assert changed.sum() > 50
  mouth_box = face.transform_points(target[[48, 54, 57, 51]], face.invert(aligned.transform))
  ys, xs = np.nonzero(changed)
  assert xs.min() >= mouth_box[:, 0].min() - 1 and xs.max() <= mouth_box[:, 0].max() + 1
  assert ys.min() >= mouth_box[:, 1].min() - 1 and ys.max() <= mouth_box[:, 1].max() + 1


def test_bad_exemplar_files_name_the_file(tmp_path):
  image = tmp_path / "mouth.png"
  video_io.write_image(image, video_io.read_image(bundled.MOUTH_EXEMPLAR))
  points = json.loads(bundled.MOUTH_EXEMPLAR_LANDMARKS.read_text())["landmarks"]
  cases = {
      "missing.json": None,
      "garbled.json": "{not json",
      "short.json": json.dumps({"landmarks": points[:12]}),
      "outside.json": json.dumps({"landmarks": [[x + 500, y] for x, y in points]}),
      "closed.json": json.dumps({"landmarks": points[:12] + [points[12]] * 8}),
      "whites.json": json.dumps({"landmarks": points, "eye_white_luma": -3}),
  }
  for name, text in cases.items():
    path = tmp_path / name
    if text is not None:
      path.write_text(text)
    with pytest.raises(InputError, match=name):
      mi.load_exemplar(image, path)
  with pytest.raises(InputError, match="nothing.png"):
    mi.load_exemplar(tmp_path / "nothing.png", bundled.MOUTH_EXEMPLAR_LANDMARKS)

"""Face detection, landmarks, the template asset, alignment, cropping and paste-back."""

import json
import warnings

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax import errors
from emotalk_jax.media import face
from emotalk_jax.media import landmarks
from emotalk_jax.media import video_io


def _iou(a: face.Box, b: face.Box) -> float:
  """Intersection over union of two boxes."""
  inter = face.Box(max(a.left, b.left), max(a.top, b.top), min(a.right, b.right),
                   min(a.bottom, b.bottom)).area
  union = a.area + b.area - inter
  return inter / union if union > 0 else 0.0


def _eye_centres(points):
  return np.stack([points[..., face.RIGHT_EYE, :].mean(-2), points[..., face.LEFT_EYE, :].mean(-2)],
                  -2)


def _similarity_warp(image, angle_deg, scale, out_size):
  """Rotates/scales an image about its centre into an out_size canvas; returns it and its [2, 3]
  map."""
  h, w = image.shape[:2]
  m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, scale)
  m[:, 2] += [(out_size[0] - w) / 2, (out_size[1] - h) / 2]
  return cv2.warpAffine(image, m, out_size, flags=cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REPLICATE), m


@pytest.fixture(scope="module")
def astronaut():
  return video_io.read_image(bundled.ASTRONAUT_PHOTO)


@pytest.fixture(scope="module")
def astronaut_landmarks(astronaut):
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # One face: no warning.
    return face.face_landmarks(astronaut, source="astronaut.png")


def test_astronaut_landmarks(astronaut, astronaut_landmarks):
  points = astronaut_landmarks
  assert points.shape == (68, 2) and points.dtype == np.float32
  boxes = face.default_detector().detect(astronaut)
  assert len(boxes) == 1
  box = boxes[0]
  # The face is the astronaut's (upper middle of the photo), and the landmarks lie in and around its
  # box.
  assert 140 < box.centre[0] < 300 and 60 < box.centre[1] < 220
  pad = 0.25 * box.width
  assert np.all(points[:, 0] > box.left - pad) and np.all(points[:, 0] < box.right + pad)
  assert np.all(points[:, 1] > box.top - pad) and np.all(points[:, 1] < box.bottom + pad)
  eyes = _eye_centres(points)
  assert eyes[0, 0] < eyes[1, 0]  # The subject's right eye is on the image's left.
  eye_y = eyes[:, 1].mean()
  nose_y, mouth_y, chin_y = points[30, 1], points[face.MOUTH, 1].mean(), points[8, 1]
  assert eye_y < nose_y < mouth_y < chin_y
  assert eyes[0, 0] < points[30, 0] < eyes[1, 0]
  # Sub-pixel output (the predictor runs on a resampled region).
  assert np.any(np.abs(points - np.round(points)) > 0.05)


def _two_faces(astronaut):
  """The astronaut's face (large) beside the GRID speaker (smaller), as one photo."""
  big = cv2.resize(astronaut[30:250, 110:330], (288, 288), interpolation=cv2.INTER_AREA)
  # 288x360, face about 100 px wide.
  small = video_io.read_video(bundled.GRID_CLIP, max_frames=1, with_audio=False).frames[0]
  return np.ascontiguousarray(np.concatenate([big, small], axis=1))


def test_several_faces_warns_and_picks_largest(astronaut):
  image = _two_faces(astronaut)
  with pytest.warns(UserWarning, match=r"pair\.png: 2 faces found.*face_index"):
    largest = face.face_landmarks(image, source="pair.png")
  with pytest.warns(UserWarning, match="2 faces"):
    other = face.face_landmarks(image, source="pair.png", face_index=1)
  assert largest[:, 0].max() < 288  # In the astronaut's half.
  assert other[:, 0].min() > 288    # In the GRID speaker's half.
  assert np.ptp(largest[:, 0]) > np.ptp(other[:, 0])
  with pytest.raises(errors.InputError, match=r"pair\.png: face_index=2 is out of range: 2 faces"):
    face.face_landmarks(image, source="pair.png", face_index=2)


@pytest.mark.parametrize("kind", ["blank", "background"])
def test_no_face_raises_input_error(astronaut, kind):
  image = np.full(
      (240, 320, 3), 200, np.uint8) if kind == "blank" else np.ascontiguousarray(astronaut[:160,
                                                                                           340:])
  with pytest.raises(errors.InputError, match=r"^empty\.png: no face found") as info:
    face.face_landmarks(image, source="empty.png")
  assert info.value.path == "empty.png"


def test_template_asset():
  # JSON (no pickle) with 68 points in [-1, 1], left-right symmetric and upright.
  asset = json.loads(face.TEMPLATE_PATH.read_text(encoding="utf-8"))
  assert "made_by" in asset and "method" in asset
  t = face.template()
  assert t.shape == (68, 2) and t.dtype == np.float32
  assert np.all(np.abs(t) < 0.95)
  np.testing.assert_allclose(landmarks.mirror(t), t, atol=1e-4)
  np.testing.assert_array_equal(landmarks.MIRROR[landmarks.MIRROR], np.arange(68))
  eyes = _eye_centres(t)
  assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-4
  # Framing like the 256x256 talking-face crops: forehead above the brows, margin below the chin.
  assert -0.55 < t[face.BROWS, 1].min() < -0.3 and 0.6 < t[8, 1] < 0.8
  assert 0.5 < t[face.JAW, 0].max() < 0.7
  np.testing.assert_allclose(face.template(256), (t + 1) * 128 - 0.5, atol=1e-4)


def test_fit_similarity_recovers_transform():
  rng = np.random.default_rng(0)
  src = rng.uniform(-50, 50, size=(3, 20, 2))
  angle = np.array([0.3, -1.0, 2.5])
  scale = np.array([0.5, 1.0, 3.0])
  true = np.zeros((3, 2, 3))
  true[:, 0, 0] = true[:, 1, 1] = scale * np.cos(angle)
  true[:, 1, 0] = scale * np.sin(angle)
  true[:, 0, 1] = -true[:, 1, 0]
  true[:, :, 2] = [[5, -3], [100, 20], [-7, 0.5]]
  dst = face.transform_points(src, true)
  np.testing.assert_allclose(face.fit_similarity(src, dst), true, atol=1e-9)
  np.testing.assert_allclose(face.compose(face.invert(true), true)[:, :, :2],
                             np.broadcast_to(np.eye(2), (3, 2, 2)),
                             atol=1e-12)
  np.testing.assert_allclose(face.transform_points(dst, face.invert(true)), src, atol=1e-9)
  np.testing.assert_allclose(face.transform_scale(true), scale)


@pytest.mark.parametrize("size", [128, 256])
def test_alignment_puts_eyes_on_template(astronaut, astronaut_landmarks, size):
  m = face.align_transform(astronaut_landmarks, size)
  assert m.shape == (2, 3)
  crop = face.crop(astronaut, m, size)
  assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
  in_crop = face.transform_points(astronaut_landmarks, m)
  eye_err = np.linalg.norm(_eye_centres(in_crop) - _eye_centres(face.template(size)), axis=-1)
  assert np.all(eye_err < 0.02 * size)
  # Landmarks found again in the crop agree with the mapped ones.
  again = face.face_landmarks(crop, source="crop.png")
  assert np.linalg.norm(again - in_crop, axis=-1).mean() < 0.015 * size


def test_rotated_scaled_copy_aligns_to_same_crop(astronaut, astronaut_landmarks):
  size = 256
  base = face.crop(astronaut, face.align_transform(astronaut_landmarks, size), size)
  for angle, scale in [(20, 0.7), (-12, 1.6)]:
    warped, _ = _similarity_warp(astronaut, angle, scale, (640, 640))
    points = face.face_landmarks(warped, source="warped.png")
    m = face.align_transform(points, size)
    in_crop = face.transform_points(points, m)
    eye_err = np.linalg.norm(_eye_centres(in_crop) - _eye_centres(face.template(size)), axis=-1)
    assert np.all(eye_err < 4.0), (angle, scale, eye_err)
    crop = face.crop(warped, m, size)
    # The same face region: the central part of the crops matches closely.
    centre = slice(64, 192)
    diff = np.abs(crop[centre, centre].astype(float) - base[centre, centre].astype(float)).mean()
    assert diff < 12, (angle, scale, diff)


def test_crop_antialiases_when_shrinking(astronaut, astronaut_landmarks):
  # Pixel noise shrunk 5x: area averaging leaves little of it; point sampling would keep all (std
  # ~74).
  noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3)).astype(np.uint8)
  shrunk = face.crop(noise, np.array([[0.2, 0.0, -0.4], [0.0, 0.2, -0.4]]), 100)
  assert shrunk.astype(float).std() < 25
  # The prefiltered path keeps the geometry: a 3x upscaled photo cropped to 128 (a 4.5x reduction)
  # matches the crop of the original.
  big = cv2.resize(astronaut, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
  m_small = face.align_transform(astronaut_landmarks, 128)
  # big px -> small px: x_small = (x_big + 0.5) / 3 - 0.5.
  to_small = np.array([[1 / 3, 0, 0.5 / 3 - 0.5], [0, 1 / 3, 0.5 / 3 - 0.5]])
  m_big = face.compose(m_small, to_small)
  a = face.crop(astronaut, m_small, 128).astype(float)
  b = face.crop(big, m_big, 128).astype(float)
  assert np.abs(a - b)[8:-8, 8:-8].mean() < 4


@pytest.mark.parametrize("size", [128, 256])
def test_paste_back_round_trip(astronaut, astronaut_landmarks, size):
  m = face.align_transform(astronaut_landmarks, size)
  crop = face.crop(astronaut, m, size)
  out = face.paste_back(astronaut, crop, m, feather=0.1)
  assert out.shape == astronaut.shape and out.dtype == np.uint8
  # Unchanged outside the crop's footprint.
  footprint = cv2.warpAffine(np.ones((size, size), np.uint8),
                             m,
                             astronaut.shape[1::-1],
                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                             borderValue=0).astype(bool)
  outside = ~cv2.dilate(footprint.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
  np.testing.assert_array_equal(out[outside], astronaut[outside])
  # Inside the face (landmark hull), the twice-resampled crop reproduces the photo.
  hull = np.zeros(astronaut.shape[:2], np.uint8)
  cv2.fillConvexPoly(hull, cv2.convexHull(np.round(astronaut_landmarks).astype(np.int32)), 1)
  err = np.abs(out.astype(float) - astronaut.astype(float))[hull.astype(bool)]
  assert err.mean() < (2.5 if size == 256 else 4.0), err.mean()


def test_paste_back_blends_softly(astronaut, astronaut_landmarks):
  size = 128
  m = face.align_transform(astronaut_landmarks, size)
  white = np.full((size, size, 3), 255, np.uint8)
  out = face.paste_back(astronaut, white, m, feather=0.15).astype(float)
  nose = np.round(astronaut_landmarks[30]).astype(int)
  assert np.all(out[nose[1], nose[0]] == 255)  # Fully replaced in the middle ...
  # ... and a gradual ramp towards the edge: along a row from the nose outwards, whiteness rises
  # smoothly.
  centre_to_edge = face.transform_points(np.array([[size / 2, size / 2], [0.0, size / 2]]),
                                         face.invert(m))
  xs = np.linspace(centre_to_edge[1, 0], centre_to_edge[0, 0], 40)
  ys = np.linspace(centre_to_edge[1, 1], centre_to_edge[0, 1], 40)
  alpha = (
      out - astronaut)[np.round(ys).astype(int), np.round(xs).astype(int)].mean(-1) / np.maximum(
          255.0 -
          astronaut[np.round(ys).astype(int), np.round(xs).astype(int)].mean(-1), 1)
  partial = (alpha > 0.05) & (alpha < 0.95)
  assert partial.sum() >= 3
  mask = face.crop_mask(size, 0.15)
  assert mask[0].max() == 0 and mask[size // 2, size // 2] == 1
  assert np.all(np.diff(mask[size // 2, : size // 2]) >= 0)


def test_predictor_box_matches_detector(astronaut, astronaut_landmarks):
  detected = face.default_detector().detect(astronaut)[0]
  derived = face.predictor_box(astronaut_landmarks)
  assert _iou(detected, derived) > 0.7


def test_face_score_separates_face_from_background(astronaut, astronaut_landmarks):
  detector = face.default_detector()
  assert detector.score(astronaut, astronaut_landmarks) > 0.5
  beside = astronaut_landmarks + [0, 250]  # On the spacesuit below the face.
  assert detector.score(astronaut, beside) < 0
  assert detector.score(np.zeros_like(astronaut), astronaut_landmarks) < 0


def test_align_face(astronaut):
  aligned = face.align_face(astronaut, source="astronaut.png", size=128)
  assert aligned.crop.shape == (128, 128, 3)
  assert np.linalg.norm(aligned.landmarks[face.STABLE_POINTS] -
                        face.template(128)[face.STABLE_POINTS],
                        axis=-1).mean() < 4


#  -------------------------------------------------------------------------------------------------
# Real media from ../shared/data.


def test_cremad_photos_align_near_template(shared_data):
  for path in sorted((shared_data / "faces" / "cremad_emotalkingface").glob("*.png")):
    points = face.face_landmarks(video_io.read_image(path), source=path.name)
    in_crop = face.transform_points(points, face.align_transform(points, 256))
    err = np.linalg.norm(in_crop[face.STABLE_POINTS] - face.template(256)[face.STABLE_POINTS],
                         axis=-1)
    assert err.mean() < 6, (path.name, err.mean())


def test_hard_photos_have_a_face(shared_data):
  # Glasses, sunglasses, black and white, a photo of a photo, a frowning tilted face (needs the
  # lower
  # threshold), uncropped portraits.
  names = [
      "makeittalk/neo.jpg", "makeittalk/audrey.jpg", "liveportrait/s11.jpg", "liveportrait/d8.jpg",
      "edtalk/uncrop_face.jpg", "makeittalk/harry.jpg"
  ]
  for name in names:
    image = video_io.read_image(shared_data / "faces" / name)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      points = face.face_landmarks(image, source=name)
    h, w = image.shape[:2]
    assert np.all((points > -0.1 * w) & (points < 1.1 * max(h, w))), name


def test_closed_lips_are_found_on_the_line_between_them(shared_data):
  # Glasses, blur and a beard, where the landmark-derived box frames the face too low: its points
  # fell 5-18 px under the lips (`face.refined_landmarks`).
  for name in ("makeittalk/harry.jpg", "makeittalk/kalo.jpg", "makeittalk/morgan.jpg"):
    image = video_io.read_image(shared_data / "faces" / name)
    points = face.face_landmarks(image, source=name)
    eyes = np.linalg.norm(points[face.RIGHT_EYE].mean(0) - points[face.LEFT_EYE].mean(0))
    # The middle of the mouth, halfway between the inner lips, and the same line moved up and down.
    line = (points[[60, 61, 62, 63, 64]] + points[[60, 67, 66, 65, 64]]) / 2
    xs = np.linspace(line[1, 0], line[3, 0], 20)
    ys = np.interp(xs, line[:, 0], line[:, 1])
    grey = image.astype(np.float32).mean(-1)
    darkness = [
        cv2.remap(grey, xs[None].astype(np.float32), (ys + dy)[None].astype(np.float32),
                  cv2.INTER_LINEAR).mean() for dy in (-0.15 * eyes, 0.0, 0.15 * eyes)
    ]
    assert darkness[1] < min(darkness[0], darkness[2]), (name, darkness)


def test_full_hd_frame(shared_data):
  frame = video_io.read_video(shared_data / "video" / "mead_eamm" / "M030_sad_3_001.mp4",
                              max_frames=1,
                              with_audio=False).frames[0]
  assert frame.shape == (1080, 1920, 3)
  points = face.face_landmarks(frame, source="M030_sad_3_001.mp4")
  crop = face.crop(frame, face.align_transform(points, 256), 256)
  again = face.face_landmarks(crop, source="crop")
  expected = face.transform_points(points, face.align_transform(points, 256))
  assert np.linalg.norm(again - expected, axis=-1).mean() < 4

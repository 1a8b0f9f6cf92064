"""Video landmark tracking, fill-in, smoothing and stable alignment (no timing assertions)."""

import warnings

import numpy as np
import pytest
from scipy import signal

from emotalk_jax import bundled
from emotalk_jax import errors
from emotalk_jax.media import face
from emotalk_jax.media import tracking
from emotalk_jax.media import video_io

RIGID = np.setdiff1d(np.arange(68), face.MOUTH)


def _frames(path, max_frames=None):
  """[T, H, W, 3] uint8 RGB at the native frame rate."""
  return video_io.read_video(path, fps=None, max_frames=max_frames, with_audio=False).frames


@pytest.fixture(scope="module")
def grid_frames():
  return _frames(bundled.GRID_CLIP)


@pytest.fixture(scope="module")
def grid_track(grid_frames):
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # One speaker: no warning.
    return tracking.track_landmarks(grid_frames, source="bbaf2n.mpg")


def _lip_gap(points):
  return np.linalg.norm(points[:, [61, 62, 63]] - points[:, [67, 66, 65]], axis=-1).mean(-1)


def test_grid_clip_tracks_every_frame(grid_frames, grid_track):
  num_frames = len(grid_frames)
  assert num_frames == 75
  assert grid_track.landmarks.shape == (num_frames, 68,
                                        2) and grid_track.landmarks.dtype == np.float32
  assert grid_track.detected.all() and grid_track.num_filled == 0
  assert grid_track.num_detections <= num_frames // 10
  # Tracking agrees with detecting in every frame to about the predictor's own frame-to-frame noise.
  every = tracking.track_landmarks(grid_frames[:30], detect_every=1)
  assert every.num_detections == 30
  diff = np.linalg.norm(every.landmarks - grid_track.landmarks[:30], axis=-1).mean()
  assert diff < 1.0, diff
  # The speaker talks: the lips open and close.
  gap = _lip_gap(grid_track.landmarks)
  assert gap.max() - gap.min() > 5


def test_blank_frames_are_filled_and_counted(grid_frames, grid_track):
  frames = grid_frames.copy()
  frames[10:15] = 0
  track = tracking.track_landmarks(frames, source="blanked.mpg")
  assert track.num_filled == 5
  np.testing.assert_array_equal(np.flatnonzero(~track.detected), np.arange(10, 15))
  # Filled by interpolation between frames 9 and 15.
  expected = track.landmarks[9] + (track.landmarks[15] - track.landmarks[9]) * (12 - 9) / 6
  np.testing.assert_allclose(track.landmarks[12], expected, atol=1e-3)
  # Elsewhere, the same landmarks as the untouched clip.
  assert np.linalg.norm(track.landmarks[20:] - grid_track.landmarks[20:], axis=-1).mean() < 0.5
  # Blank frames at the ends: the nearest found shape is held.
  frames = grid_frames[:20].copy()
  frames[:3] = 0
  frames[-2:] = 0
  track = tracking.track_landmarks(frames)
  assert track.num_filled == 5
  np.testing.assert_array_equal(track.landmarks[0], track.landmarks[3])
  np.testing.assert_array_equal(track.landmarks[-1], track.landmarks[-3])


def test_no_face_in_any_frame_names_the_file():
  frames = np.zeros((6, 120, 160, 3), np.uint8)
  with pytest.raises(errors.InputError, match=r"^dark\.mp4: no face found in any of its 6 frames"):
    tracking.track_landmarks(frames, source="dark.mp4")


def test_accepts_a_frame_iterator(grid_frames):
  track = tracking.track_landmarks(iter(grid_frames[:12]), detect_every=4)
  assert track.landmarks.shape == (12, 68, 2) and track.num_detections == 3


def test_follows_the_chosen_face_among_several(grid_frames):
  # The GRID speaker twice: 1.3x larger on the left, original size on the right.
  import cv2  # pylint: disable=g-import-not-at-top
  frames = []
  for frame in grid_frames[:20]:
    big = cv2.resize(frame, None, fx=1.3, fy=1.3, interpolation=cv2.INTER_LINEAR)[:288]
    frames.append(np.concatenate([big, frame], axis=1))
  frames = np.stack(frames)
  split = frames.shape[2] - grid_frames.shape[2]
  with pytest.warns(UserWarning, match=r"pair\.mp4: 2 faces in frame 0.*face_index"):
    largest = tracking.track_landmarks(frames, source="pair.mp4", detect_every=5)
  assert np.all(largest.landmarks[..., 0] < split)
  with pytest.warns(UserWarning, match="2 faces"):
    other = tracking.track_landmarks(frames, source="pair.mp4", detect_every=5, face_index=1)
  assert np.all(other.landmarks[..., 0] > split)
  with pytest.raises(errors.InputError, match=r"pair\.mp4: frame 0: face_index=2 is out of range"):
    tracking.track_landmarks(frames, source="pair.mp4", face_index=2)


def test_scene_cut_is_followed_at_once(grid_frames, grid_track):
  import cv2  # pylint: disable=g-import-not-at-top
  photo = cv2.imread(str(bundled.ASTRONAUT_PHOTO))[..., ::-1]
  # Cut to the astronaut, warped so her face lands just beside the speaker's (a third of a face
  # width to
  # the right): a tracker that only follows the previous box would take frames to slide across.
  speaker = face.predictor_box(grid_track.landmarks[19])
  astronaut = face.predictor_box(face.face_landmarks(np.ascontiguousarray(photo)))
  k = speaker.width / astronaut.width
  shift = np.array(speaker.centre) + [speaker.width / 3, 0] - k * np.array(astronaut.centre)
  cut = cv2.warpAffine(photo,
                       np.array([[k, 0, shift[0]], [0, k, shift[1]]]), (360, 288),
                       flags=cv2.INTER_AREA,
                       borderMode=cv2.BORDER_REPLICATE)
  frames = np.concatenate([grid_frames[:20], np.repeat(cut[None], 8, axis=0), grid_frames[20:30]])
  track = tracking.track_landmarks(frames, source="cut.mp4")
  assert track.num_filled == 0
  every = tracking.track_landmarks(frames, detect_every=1)
  err = np.linalg.norm(track.landmarks - every.landmarks, axis=-1).mean(-1)
  assert err[[20, 28]].max() < 1.5, err  # Right at both cuts ...
  assert err.max() < 2.0, err  # ... and throughout.


def test_jitter():
  still = np.zeros((10, 68, 2))
  assert tracking.jitter(still) == 0
  moving = still + np.arange(10)[:, None, None] * np.array([3.0, 4.0])
  assert tracking.jitter(moving) == pytest.approx(5.0)
  assert tracking.jitter(still[:1]) == 0


def test_smoothing_keeps_a_still_face_and_has_no_lag():
  t = np.arange(100)
  # A lip gap opening and closing at 4 Hz (25 fps) plus noise, and still rigid points plus noise.
  rng = np.random.default_rng(0)
  points = np.broadcast_to(face.template(256), (100, 68, 2)).copy()
  opening = 6 * (1 - np.cos(2 * np.pi * 4 * t / 25))
  points[:, [65, 66, 67], 1] += opening[:, None]
  noisy = points + rng.normal(0, 0.7, points.shape)
  smoothed = tracking.smooth_landmarks(noisy)
  assert tracking.jitter(smoothed[:, RIGID]) < 0.5 * tracking.jitter(noisy[:, RIGID])
  gap = smoothed[:, 66, 1] - smoothed[:, 62, 1]
  lag = np.argmax(signal.correlate(gap - gap.mean(), opening - opening.mean(),
                                   mode="full")) - (len(t) - 1)
  assert lag == 0
  # The 4 Hz mouth movement keeps most of its depth.
  assert np.ptp(gap[10:-10]) > 0.85 * np.ptp(opening)


def test_align_video_on_grid(grid_frames, grid_track):
  aligned = tracking.align_video(grid_frames, size=128, track=grid_track)
  num_frames = len(grid_frames)
  assert aligned.crops.shape == (num_frames, 128, 128, 3) and aligned.crops.dtype == np.uint8
  assert aligned.transforms.shape == (num_frames, 2, 3)
  assert aligned.landmarks.shape == (num_frames, 68, 2)
  err = np.linalg.norm(aligned.landmarks[:, face.STABLE_POINTS] -
                       face.template(128)[face.STABLE_POINTS],
                       axis=-1)
  assert err.mean() < 3
  # Smoothing lowers the crop-space jitter of the landmarks and the crop's shake.
  raw = tracking.align_video(grid_frames, size=128, track=grid_track, smooth=False)
  assert tracking.jitter(aligned.landmarks[:,
                                           RIGID]) < 0.8 * tracking.jitter(raw.landmarks[:, RIGID])
  def shake(transforms):
    corners = face.transform_points(np.array([[0.0, 0.0], [127.0, 127.0]]), face.invert(transforms))
    return np.linalg.norm(np.diff(corners, 2, axis=0), axis=-1).mean()
  assert shake(aligned.transforms) < 0.8 * shake(raw.transforms)


#  -------------------------------------------------------------------------------------------------
# Real media from ../shared/data.


def test_smoothing_lowers_jitter_on_mead_crops(shared_data):
  frames = _frames(shared_data / "video" / "mead_dreamtalk" / "M030_front_neutral_level1_001.mp4")
  track = tracking.track_landmarks(frames, source="M030_front_neutral_level1_001.mp4")
  assert track.num_filled == 0
  raw = face.transform_points(track.landmarks, face.align_transform(track.landmarks, 256))
  smoothed = tracking.smooth_landmarks(track.landmarks)
  in_crop = face.transform_points(smoothed, tracking.align_track(smoothed, 256))
  before, after = tracking.jitter(raw[:, RIGID]), tracking.jitter(in_crop[:, RIGID])
  assert after < 0.7 * before, (before, after)
  # The mouth is not delayed, and keeps its depth.
  gap_raw, gap = _lip_gap(raw), _lip_gap(in_crop)
  corr = signal.correlate(gap - gap.mean(), gap_raw - gap_raw.mean(), mode="full")
  assert np.argmax(corr) - (len(gap) - 1) == 0
  assert np.ptp(gap) > 0.85 * np.ptp(gap_raw)


def test_moving_speaker_in_hdtf_clip(shared_data):
  frames = _frames(shared_data / "video" / "hdtf_sadtalker" / "RD_Radio2_000.mp4", max_frames=150)
  assert frames.shape[1:] == (512, 512, 3)
  aligned = tracking.align_video(frames, source="RD_Radio2_000.mp4", size=256)
  track = aligned.track
  assert track.num_filled == 0 and track.num_detections <= len(frames) // 10
  # The head moves a lot in the frame ...
  eyes = track.landmarks[:, face.EYES].mean(1)
  assert np.ptp(eyes[:, 0]) > 40
  # ... but stays put in the aligned crops.
  eyes_in_crop = aligned.landmarks[:, face.EYES].mean(1)
  assert np.ptp(eyes_in_crop, axis=0).max() < 10
  # Tracking matches per-frame detection on a stretch of the clip.
  every = tracking.track_landmarks(frames[:25], detect_every=1)
  assert np.linalg.norm(every.landmarks - track.landmarks[:25], axis=-1).mean() < 1.5

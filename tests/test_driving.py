"""Tests for the generation-time driving signals: emotion schedules, blinks, smoothing."""

import numpy as np
import pytest
import scipy.ndimage

from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.generate import driving
from emotalk_jax.media import face
from emotalk_jax.media import landmarks
from emotalk_jax.models import face_graph


def test_parse_schedule():
  keys = driving.parse_schedule("0:neutral, 2.0:happy:0.8,4.5:sad:0.5")
  assert [k.time_s for k in keys] == [0.0, 2.0, 4.5]
  assert keys[1].emotion == emotions.parse_emotion("happy:0.8")
  assert keys[2].emotion == emotions.parse_emotion("sad:0.5")
  mixed = driving.parse_schedule("1:happy:0.6+surprised:0.4")
  assert mixed[0].emotion.intensity == pytest.approx(1.0)


@pytest.mark.parametrize("text, problem", [
    ("0:neutral,2:happy,1:sad", "increase"),
    ("0:neutral,2:happy,2:sad", "increase"),
    ("soon:happy", "not a number"),
    ("-1:happy", ">= 0"),
    ("0:neutral,,2:happy", "TIME:EMOTION"),
    ("0:hapy", "unknown"),
])
def test_bad_schedules_are_clear_errors(text, problem):
  with pytest.raises(InputError, match=problem) as e:
    driving.parse_schedule(text)
  assert "--emotion-schedule" in str(e.value) or "hapy" in str(e.value)


def test_emotion_track_blends_smoothly_between_keyframes():
  keys = driving.parse_schedule("0:neutral,1.0:happy:0.8")
  track = driving.emotion_track(keys, 60)
  happy, neutral = emotions.EMOTIONS.index("happy"), emotions.EMOTIONS.index("neutral")
  np.testing.assert_allclose(track[:26], np.broadcast_to(keys[0].emotion.vector(), (26, 9)))
  after = int(np.ceil((1.0 + driving.TRANSITION_S) * 25))
  np.testing.assert_allclose(track[after:],
                             np.broadcast_to(keys[1].emotion.vector(), (60 - after, 9)),
                             atol=1e-6)
  ramp = track[25:after + 1, happy]
  assert np.all(np.diff(ramp) >= 0) and np.all(np.diff(track[25:after + 1, neutral]) <= 0)
  assert np.max(np.abs(np.diff(track, axis=0))) < 0.2  # No step from one frame to the next.
  np.testing.assert_allclose(track[:, :8].sum(axis=1), 1.0, atol=1e-6)


def test_blinks_come_at_a_natural_rate():
  frames = 25 * 120
  starts = driving.blink_times(frames, np.random.default_rng(0))
  per_minute = len(starts) / 2.0
  assert 10 <= per_minute <= 25
  assert np.all(np.diff(starts) >= int(driving.BLINK_MIN_INTERVAL_S * 25))  # Frames are rounded.
  assert starts[-1] + driving.BLINK_FRAMES <= frames
  again = driving.blink_times(frames, np.random.default_rng(0))
  np.testing.assert_array_equal(starts, again)


def test_smoothing_removes_jitter_but_not_from_the_mouth_and_keeps_still_faces():
  rng = np.random.default_rng(0)
  still = np.broadcast_to(landmarks.normalize(face.template(), 256), (50, 68, 2)).astype(np.float32)
  np.testing.assert_allclose(driving.smooth(still), still, atol=1e-6)
  noisy = still + rng.normal(0, 0.01, still.shape).astype(np.float32)
  jitter = lambda x: np.abs(np.diff(x, axis=0)).mean()
  smoothed = driving.smooth(noisy)
  rest = np.setdiff1d(np.arange(68), face_graph.MOUTH)
  assert jitter(smoothed[:, rest]) < 0.5 * jitter(noisy[:, rest])
  # The mouth moves as stage 1 predicts it: its motion is the speech.
  np.testing.assert_array_equal(smoothed[:, face_graph.MOUTH], noisy[:, face_graph.MOUTH])


@pytest.mark.parametrize("sigma", [0.1, 0.6, 1.0, 2.5])
@pytest.mark.parametrize("frames", [1, 3, 200])
def test_gaussian_filter_is_scipys_with_edges_held(sigma, frames):
  x = np.random.default_rng(frames).normal(size=(frames, 68, 2)).astype(np.float32)
  np.testing.assert_allclose(driving.gaussian_filter(x, sigma),
                             scipy.ndimage.gaussian_filter1d(x, sigma, axis=0, mode="nearest"),
                             atol=1e-5)

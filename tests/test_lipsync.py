"""Mouth opening against the speech energy envelope."""

import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.evaluate import harness as evaluate
from emotalk_jax.evaluate import lipsync
from emotalk_jax.media import audio
from emotalk_jax.media import face
from emotalk_jax.media import video_io


def _tone_bursts(on_frames, num_frames, fps=25, rate=16000):
  """1 kHz tone during the given video frames' periods, silence elsewhere."""
  t = np.arange(int(num_frames * rate / fps)) / rate
  gate = np.zeros_like(t)
  for i in on_frames:
    gate[int(i * rate / fps):int((i + 1) * rate / fps)] = 1.0
  return (0.5 * np.sin(2 * np.pi * 1000 * t) * gate).astype(np.float32)


def test_energy_envelope_follows_the_sound_in_time():
  wave = _tone_bursts(range(25, 35), 60)
  energy = lipsync.energy_envelope(wave, 60)
  assert energy.shape == (60,)
  loud = energy > energy.max() - 10
  # Frame i's window is centred on t = i / 25 s: frames 26..34 lie inside the burst, 20 and 40 far
  # outside.
  assert loud[26:35].all() and not loud[:24].any() and not loud[37:].any()
  # Silence sits on the floor.
  assert energy.min() == pytest.approx(energy.max() - lipsync.FLOOR_DB)
  assert lipsync.energy_envelope(wave, 0).shape == (0,)
  # Frames past the end of the audio (cut at 1.2 s, mid-burst) are silence.
  cut = lipsync.energy_envelope(wave[:19200], 60)
  assert (cut[26:30] > cut.max() - 10).all()
  np.testing.assert_allclose(cut[31:], cut.max() - lipsync.FLOOR_DB)


def test_best_lag_recovers_a_known_delay():
  rng = np.random.default_rng(0)
  energy = np.convolve(rng.normal(size=200), np.ones(5) / 5, mode="same")
  mouth = np.roll(energy, 2)  # The mouth follows the sound by two frames.
  mouth[:2] = np.nan  # Rolled-in values are not real: skipped like frames without a face.
  result = lipsync.lagged_correlation(mouth, energy)
  assert result["best_lag"] == 2 and result["r_best_lag"] == pytest.approx(1.0)
  assert result["r_lag0"] < 0.9 and set(result["r_by_lag"]) == {str(k) for k in range(-5, 6)}
  flat = lipsync.lagged_correlation(np.ones(50), energy[:50])
  assert flat["r_lag0"] is None and flat["best_lag"] is None


def test_mouth_opening_is_the_inner_lip_gap():
  points = face.template(256).astype(np.float64)
  opened = points.copy()
  opened[[65, 66, 67], 1] += 6.0  # Lower inner lip 6 px down.
  gap = lipsync.mouth_opening(np.stack([points, opened]))
  assert gap[1] - gap[0] == pytest.approx(6.0, abs=0.5)
  assert np.isnan(lipsync.mouth_opening(np.full((1, 68, 2), np.nan)))[0]


def test_crossed_lips_are_not_an_open_mouth():
  """One side's lower inner-lip point moved 6 px above its upper one (what stage 1 learned when
  the opening was a distance between the points): the mean gap shrinks by a third of that move."""
  points = face.template(256).astype(np.float64)
  crossed = points.copy()
  crossed[65, 1] = points[63, 1] - 6.0
  before, after = lipsync.mouth_opening(np.stack([points, crossed]))
  assert after == pytest.approx(before - (points[65, 1] - crossed[65, 1]) / 3.0)
  assert after < before - 2.0


def test_real_speech_correlates_better_than_other_speech():
  video = video_io.read_video(bundled.GRID_CLIP)
  faces = evaluate.analyse_video(video.frames, "bbaf2n")
  own = lipsync.sync_correlation(faces.crop_landmarks, video.audio)
  other = lipsync.sync_correlation(faces.crop_landmarks, audio.load_audio(bundled.ARCTIC_SPEECH))
  print(f"lip sync r at lag 0: own speech {own['r_lag0']:.2f}, other speech {other['r_lag0']:.2f}")
  assert own["r_lag0"] > 0.3 and own["r_lag0"] > other["r_lag0"] + 0.2
  assert own["mouth_opening"].shape == own["energy_db"].shape == (len(video.frames),)

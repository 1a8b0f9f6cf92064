"""audio: decoding real speech in several containers, the mel/video-frame contract, input errors."""

import numpy as np
import pytest
import soundfile

from emotalk_jax import bundled
from emotalk_jax.errors import InputError
from emotalk_jax.media import audio
from emotalk_jax.media import video_io

SILENCE = audio.LOG_MEL_FLOOR


def test_constants():
  assert audio.SAMPLE_RATE == 16000 and audio.N_MELS == 80 and audio.HOP_LENGTH == 160
  assert audio.WIN_LENGTH == 400 and audio.N_FFT == 512
  assert audio.FPS == 25 and audio.MEL_WINDOW == 16
  assert audio.MEL_FPS == 100 and audio.MIN_SAMPLES == 640


def test_load_arctic_wav():
  wave = audio.load_audio(bundled.ARCTIC_SPEECH)
  assert wave.shape == (64000,) and wave.dtype == np.float32
  assert 0.1 < np.abs(wave).max() <= 1.0


def test_load_audio_track_of_grid_video():
  wave = audio.load_audio(bundled.GRID_CLIP)  # 44.1 kHz MPEG audio inside an MPEG-1 program stream.
  assert wave.dtype == np.float32 and wave.ndim == 1
  assert len(wave) / 16000 == pytest.approx(3.0, abs=0.06)
  assert np.abs(wave).max() > 0.1


def test_stereo_is_averaged_and_resampled(tmp_path):
  t = np.arange(22050) / 22050
  tone = 0.5 * np.sin(2 * np.pi * 440 * t)
  soundfile.write(tmp_path / "stereo.wav", np.stack([tone, np.zeros_like(tone)], axis=1), 22050)
  wave = audio.load_audio(tmp_path / "stereo.wav")
  assert len(wave) == 16000
  assert np.abs(wave[1000:-1000]).max() == pytest.approx(0.25, abs=0.01)


def test_shared_m4a_and_audio_only_mov(shared_data):
  m4a = audio.load_audio(shared_data / "speech/mead_evp/M030_angry.m4a")  # AAC at 48 kHz.
  assert len(m4a) / 16000 == pytest.approx(5.87, abs=0.05)
  # WAV data behind a .mov name.
  mov = audio.load_audio(shared_data / "speech/eamm_audio/sample1.mov")
  assert len(mov) == 180960
  assert np.abs(m4a).max() > 0.05 and np.abs(mov).max() > 0.05


def test_log_mel_frame_count():
  rng = np.random.default_rng(0)
  for n in [640, 799, 800, 48000, 48159, 48160]:
    mel = audio.log_mel(0.1 * rng.standard_normal(n).astype(np.float32))
    assert mel.shape == (1 + n // 160, 80)
    assert mel.dtype == np.float32
  silent = audio.log_mel(np.zeros(1600, np.float32))
  np.testing.assert_allclose(silent, SILENCE)  # Silence sits exactly at the floor.


def test_num_video_frames():
  assert audio.num_video_frames(48000) == 75  # 3.0 s.
  assert audio.num_video_frames(48001) == 76  # A started frame period gets a frame.
  assert audio.num_video_frames(640) == 1
  assert audio.num_video_frames(639) == 1
  assert audio.num_video_frames(0) == 0
  # 1.001 s at 29.97 fps, no float slop.
  assert audio.num_video_frames(16016, fps=30000 / 1001) == 30
  assert audio.num_video_frames(16000, fps=30) == 30


def test_contract_example():
  wave = audio.load_audio(bundled.ARCTIC_SPEECH)[:48000]
  mel = audio.log_mel(wave)
  assert mel.shape == (301, 80)
  feats = audio.audio_features(wave)
  assert feats.shape == (75, 16, 80) and feats.dtype == np.float32
  np.testing.assert_array_equal(feats[0, :8], SILENCE)
  np.testing.assert_array_equal(feats[0, 8:], mel[:8])
  np.testing.assert_array_equal(feats[74, :13], mel[288:])
  np.testing.assert_array_equal(feats[74, 13:], SILENCE)
  # The length follows the video when given.
  assert audio.audio_features(wave, num_frames=80).shape == (80, 16, 80)
  # Window 77 still sees the last mel frame (300); windows 78, 79 lie wholly past the audio.
  np.testing.assert_array_equal(audio.audio_features(wave, num_frames=80)[78:], SILENCE)
  from_file = audio.audio_features(bundled.ARCTIC_SPEECH, num_frames=75)
  np.testing.assert_allclose(from_file[:10], feats[:10], atol=1e-5)


def test_marker_seen_by_the_right_windows():
  mel = np.full([301, 80], SILENCE, np.float32)
  mel[100] = 1.0  # Mel frame 100 = 1.00 s = video frame 25 at 25 fps.
  windows = audio.mel_windows(mel, 75)
  hits = np.argwhere(windows[:, :, 0] == 1.0)
  # Window i covers mel frames 4i - 8 .. 4i + 7, so frame 100 is row 100 - (4i - 8) of windows
  # 24..27.
  assert hits.tolist() == [[24, 12], [25, 8], [26, 4], [27, 0]]


@pytest.mark.parametrize("fps, num_frames", [(25, 80), (30, 95), (30000 / 1001, 20)])
def test_window_indices_match_the_formula(fps, num_frames):
  num_mel = 301
  mel = np.tile(np.arange(num_mel, dtype=np.float32)[:, None], (1, 80))  # Row j holds the value j.
  windows = audio.mel_windows(mel, num_frames, fps=fps)
  assert windows.shape == (num_frames, 16, 80)
  for i in range(num_frames):
    centre = int(np.floor(i * 100 / fps + 0.5))
    for r in range(16):
      j = centre - 8 + r
      assert windows[i, r, 5] == (j if 0 <= j < num_mel else SILENCE)


@pytest.mark.parametrize("path", [bundled.ARCTIC_SPEECH, bundled.GRID_CLIP])
def test_spooled_speech_reads_as_loaded(path):
  """`spool_audio` (kept in a file, decoded and resampled a chunk at a time) gives `load_audio`'s
  samples to the bit: a 16 kHz wav, and 44.1 kHz MPEG audio in a video."""
  loaded = audio.load_audio(path)
  with audio.spool_audio(path) as wave:
    assert len(wave) == wave.size == loaded.size and wave.shape == loaded.shape
    assert wave.peak == np.abs(loaded).max()
    np.testing.assert_array_equal(wave[:], loaded)
    np.testing.assert_array_equal(wave[1000:5003], loaded[1000:5003])
    assert wave[loaded.size - 10:loaded.size + 50].shape == (10,)  # Cut at the end, as arrays.
    with pytest.raises(TypeError, match="read by spans"):
      wave[3]  # pylint: disable=pointless-statement
  with pytest.raises(ValueError, match="after its SpooledWave was closed"):
    wave[0:10]  # pylint: disable=pointless-statement


def test_spool_audio_errors(tmp_path):
  """The same clear errors as `load_audio`, and no file left open."""
  soundfile.write(tmp_path / "zeros.wav", np.zeros(16000, np.float32), 16000)
  soundfile.write(tmp_path / "short.wav", 0.5 * np.ones(100, np.float32), 16000)
  video_io.write_video(tmp_path / "mute.mp4", np.zeros((5, 16, 16, 3), np.uint8))
  for name, problem in [("zeros.wav", "is silent"), ("short.wav", "too short"),
                        ("mute.mp4", "has no audio stream"), ("missing.wav", "no such file")]:
    with pytest.raises(InputError, match=problem) as info:
      audio.spool_audio(tmp_path / name)
    assert str(info.value).startswith(str(tmp_path / name) + ": ")


def test_errors(tmp_path):
  soundfile.write(tmp_path / "zeros.wav", np.zeros(16000, np.float32), 16000)
  with pytest.raises(InputError, match=r"is silent \(peak level -inf dBFS"):
    audio.load_audio(tmp_path / "zeros.wav")
  assert audio.load_audio(tmp_path / "zeros.wav", allow_silent=True).shape == (16000,)
  soundfile.write(tmp_path / "hum.wav", np.full(16000, 2e-5, np.float32), 16000, subtype="FLOAT")
  with pytest.raises(InputError, match=r"peak level -94\.0 dBFS"):
    audio.load_audio(tmp_path / "hum.wav")

  soundfile.write(tmp_path / "short.wav", 0.5 * np.ones(100, np.float32), 16000)
  with pytest.raises(InputError, match="too short"):
    audio.load_audio(tmp_path / "short.wav")

  video_io.write_video(tmp_path / "mute.mp4", np.zeros((5, 16, 16, 3), np.uint8))
  with pytest.raises(InputError, match="has no audio stream"):
    audio.load_audio(tmp_path / "mute.mp4")

  with pytest.raises(InputError, match="no such file"):
    audio.load_audio(tmp_path / "missing.wav")
  (tmp_path / "empty.wav").write_bytes(b"")
  with pytest.raises(InputError, match="empty"):
    audio.load_audio(tmp_path / "empty.wav")
  (tmp_path / "junk.mp3").write_bytes(np.random.default_rng(0).bytes(3000))
  with pytest.raises(InputError, match="not a readable audio") as info:
    audio.load_audio(tmp_path / "junk.mp3")
  assert str(info.value).startswith(str(tmp_path / "junk.mp3") + ": ")
  with pytest.raises(InputError, match="no such file"):
    audio.audio_features(tmp_path / "missing.wav")


def test_a_wav_cut_short_is_an_error_naming_what_it_holds(tmp_path):
  """libsndfile reads a truncated WAV's remaining samples without a word (a 4 s sentence cut to
  its first 0.15 s became a 0.15 s video); its header says how much there should be."""
  whole = bundled.ARCTIC_SPEECH.read_bytes()
  cut = tmp_path / "cut.wav"
  cut.write_bytes(whole[:5000])
  with pytest.raises(InputError, match=r"is truncated: it holds 0\.15 s of the 4\.00 s") as info:
    audio.load_audio(cut)
  assert str(info.value).startswith(str(cut) + ": ")
  with pytest.raises(InputError, match="is truncated"):
    audio.spool_audio(cut)
  # A length left unknown by a recorder (0xFFFFFFFF) is read as far as the file goes.
  data = whole.index(b"data") + 4
  unknown = tmp_path / "unknown_length.wav"
  unknown.write_bytes(whole[:data] + b"\xff\xff\xff\xff" + whole[data + 4:])
  assert audio.load_audio(unknown).shape == audio.load_audio(bundled.ARCTIC_SPEECH).shape

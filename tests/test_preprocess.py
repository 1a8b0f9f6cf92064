"""End-to-end preprocessing on real clips: the bundled GRID clip always, ../shared/data clips
when present."""

import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.media import audio
from emotalk_jax.media import landmarks as lm
from emotalk_jax.media import preprocess
from emotalk_jax.media import video_io
from emotalk_jax.models import visualize


@pytest.fixture(scope="module")
def grid_clip():
  return preprocess.preprocess_video(bundled.GRID_CLIP, size=256)


def test_grid_clip_shapes_and_ranges(grid_clip):
  clip = grid_clip
  assert clip.frames.shape == (75, 256, 256, 3) and clip.frames.dtype == np.uint8
  assert clip.landmarks.shape == (75, 68, 2)
  assert np.all(np.abs(clip.landmarks) < 1)
  assert clip.transforms.shape == (75, 2, 3)
  assert clip.image_landmarks.shape == (75, 68, 2)
  assert clip.detected.all()
  assert clip.mel.shape == (75, audio.MEL_WINDOW, audio.N_MELS)
  assert clip.num_detections < 10  # tracked between detections
  # Eyes above the mouth, in the crop.
  assert clip.landmarks[:, 36:48, 1].mean() < clip.landmarks[:, 48:68, 1].mean()


def test_smoothing_lowers_jitter_in_the_crop(grid_clip):
  assert grid_clip.jitter_smoothed_px < grid_clip.jitter_raw_px


def test_crop_landmarks_map_back_to_the_frame(grid_clip):
  """Crop-space landmarks pushed through the inverse transform land near the raw detections."""
  from emotalk_jax.media import face  # pylint: disable=g-import-not-at-top
  back = face.transform_points(lm.denormalize(grid_clip.landmarks, 256),
                               face.invert(grid_clip.transforms))
  err = np.linalg.norm(back - grid_clip.image_landmarks, axis=-1).mean()
  assert err < 2.0  # px in the 360x288 frame; smoothing moves points by about a pixel


def test_separate_audio_file_sets_the_mel(tmp_path):
  clip = preprocess.preprocess_video(bundled.GRID_CLIP, size=128, audio_path=bundled.ARCTIC_SPEECH)
  assert clip.frames.shape == (75, 128, 128, 3)
  assert clip.mel.shape[0] == 75  # windows follow the video, whatever the audio length
  np.testing.assert_allclose(clip.audio, audio.load_audio(bundled.ARCTIC_SPEECH))


def test_save_and_load_round_trip(grid_clip, tmp_path):
  path = preprocess.save_clip(grid_clip, tmp_path / "out" / "clip.npz")
  arrays = preprocess.load_clip_arrays(path)
  assert set(arrays) == {
      "frames", "landmarks", "transforms", "image_landmarks", "detected", "fps", "mel"
  }
  np.testing.assert_array_equal(arrays["frames"], grid_clip.frames)
  np.testing.assert_array_equal(arrays["landmarks"], grid_clip.landmarks)
  assert not list((tmp_path / "out").glob(".*partial*"))


def test_clip_video_has_frames_and_sound(grid_clip, tmp_path):
  path = visualize.write_clip_video(grid_clip, tmp_path / "aligned.mp4")
  video = video_io.read_video(path)
  assert video.frames.shape == (75, 256, 256, 3)
  assert video.audio is not None and abs(video.duration - 3.0) < 0.1


def test_silent_video_has_no_mel(grid_clip, tmp_path):
  path = video_io.write_video(tmp_path / "silent.mp4", grid_clip.frames[:20], fps=25)
  with pytest.warns(UserWarning, match="no audio stream"):
    clip = preprocess.preprocess_video(path, size=128)
  assert clip.mel is None and clip.audio is None and len(clip.frames) == 20


@pytest.mark.parametrize("name, size", [
    ("video/mead_dreamtalk/W009_front_happy_level3_001.mp4", 256),  # 256x256, silent
    ("video/hdtf_sadtalker/WDA_EdMarkey0_000.mp4", 512),  # 512x512, 16 kHz audio
    ("video/edtalk/expression_source.mp4", 256),  # 30 fps -> 25 fps
])
def test_real_clips(shared_data, name, size):
  video = video_io.read_video(shared_data / name, max_frames=50)
  assert video.frames.shape[1:3] == (size, size)
  clip = preprocess.preprocess_decoded(video, size=256)
  assert clip.detected.mean() > 0.9
  assert np.all(np.abs(clip.landmarks) < 1)
  assert clip.jitter_smoothed_px < clip.jitter_raw_px

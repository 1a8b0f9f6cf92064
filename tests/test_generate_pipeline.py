"""Tests for end-to-end generation with tiny untrained networks (fast; the bundled photo and
speech).

What trained networks must show (a moving mouth, emotions that differ) is tested on the shipped
sample checkpoints in tests/test_demo.py.
"""

import json
import math
import pathlib
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from configs import landmark_test
from configs import texture_test
from emotalk_jax import bundled
from emotalk_jax import checkpoints
from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.generate import driving
from emotalk_jax.generate import pipeline as generate
from emotalk_jax.media import audio
from emotalk_jax.media import face
from emotalk_jax.media import face_process
from emotalk_jax.media import landmarks
from emotalk_jax.media import video_io
from emotalk_jax.models import landmark_model
from emotalk_jax.models import texture_model
from emotalk_jax.models import whisper_weights

SIZE = 32  # texture_test's crop: generation runs in seconds.


def _texture_config():
  config = texture_test.get_config()
  config.image_size = SIZE
  return config


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("checkpoints")
  lm_config = landmark_test.get_config()
  lm_params = landmark_model.init_params(landmark_model.create_model(lm_config),
                                         jax.random.PRNGKey(0),
                                         num_frames=lm_config.window)
  checkpoints.export(lm_params, lm_config, out / "landmark.npz")
  tx_config = _texture_config()
  tx_params = texture_model.init_params(texture_model.create_model(tx_config),
                                        jax.random.PRNGKey(1), SIZE)
  checkpoints.export(tx_params, tx_config, out / "texture.npz")
  return out


@pytest.fixture(scope="module")
def models(checkpoint_dir):
  return generate.load_models(checkpoint_dir)


def test_chunked_landmarks_equal_one_pass(models):
  wave = audio.load_audio(bundled.ARCTIC_SPEECH)
  mel = audio.log_mel(wave)
  frames = audio.num_video_frames(wave.size)
  track = np.tile(np.eye(9, dtype=np.float32)[5], (frames, 1))
  track[:, 8] = np.linspace(0, 1, frames)  # A changing emotion: chunks must take their own slice.
  neutral = landmarks.normalize(face.template(), 256)
  chunked = generate.predict_landmarks(models, mel, track, neutral, chunk=7)
  whole = generate.predict_landmarks(models, mel, track, neutral, chunk=frames)
  assert chunked.shape == (frames, 68, 2)
  np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_landmarks_from_dataset_windows(models):
  wave = audio.load_audio(bundled.ARCTIC_SPEECH)
  mel = audio.log_mel(wave)
  # Silent ends: the windows variant reads silence beyond them.
  mel[:8] = mel[-16:] = audio.LOG_MEL_FLOOR
  frames = audio.num_video_frames(wave.size)
  track = np.tile(emotions.Emotion.of("happy", 0.5).vector(), (frames, 1))
  neutral = landmarks.normalize(face.template(), 256)
  windows = audio.mel_windows(mel, frames)
  from_windows = generate.predict_landmarks_from_windows(models, windows, track, neutral, chunk=9)
  np.testing.assert_allclose(from_windows,
                             generate.predict_landmarks(models, mel, track, neutral),
                             atol=1e-5)
  with pytest.raises(ValueError, match="emotion vectors"):
    generate.predict_landmarks_from_windows(models, windows[:-1], track, neutral)


def test_landmarks_of_several_emotion_tracks_at_once_equal_one_at_a_time(models):
  wave = audio.load_audio(bundled.ARCTIC_SPEECH)[:audio.SAMPLE_RATE]
  mel = audio.log_mel(wave)
  frames = audio.num_video_frames(wave.size)
  tracks = np.stack([
      np.tile(emotions.parse_emotion(text).vector(), (frames, 1))
      for text in ("neutral", "happy:0.5", "sad")
  ])
  neutral = landmarks.normalize(face.template(), 256)
  together = generate.predict_landmarks(models, mel, tracks, neutral, chunk=10)
  assert together.shape == (3, frames, 68, 2)
  for track, got in zip(tracks, together):
    np.testing.assert_allclose(got, generate.predict_landmarks(models, mel, track, neutral,
                                                               chunk=10), atol=1e-5)


def test_landmarks_in_blocks_equal_one_pass(models):
  """`drive_blocks` fed speech features in parts (as a long clip's Whisper windows arrive) marks
  frames final only once they equal one pass over the whole clip: stage 1 and smoothing."""
  config = landmark_test.get_config()
  config.model.speech_input = "whisper"
  model = landmark_model.create_model(config)
  params = landmark_model.init_params(model, jax.random.PRNGKey(2), num_frames=config.window)
  whisper_models = generate.Models(model, params, config, models.texture_model,
                                   models.texture_params, models.texture_config,
                                   whisper_weights.load_encoder())
  num_frames = 700  # Three stage-1 chunks.
  wave = np.zeros(num_frames * audio.SAMPLE_RATE // audio.FPS, np.float32)
  features = np.random.default_rng(0).normal(size=(num_frames, 384)).astype(np.float32)
  neutral = face.template()
  track = np.tile(emotions.parse_emotion("happy:0.5").vector(), (num_frames, 1))
  want = driving.smooth(
      generate.predict_landmarks(whisper_models, None, track, neutral, speech=features))

  def arriving(parts=(300, 560, num_frames)):  # Frames past `ready` are garbage until final.
    filling = np.full_like(features, 1e3)
    for ready in parts:
      filling[:ready] = features[:ready]
      yield filling, ready

  readies = []
  for out, ready in generate.drive_blocks(whisper_models, neutral, wave, track,
                                          speech=arriving()):
    np.testing.assert_allclose(out[:ready], want[:ready], atol=1e-5)
    readies.append(ready)
  assert readies[-1] == num_frames and 0 < readies[0] < readies[1] < num_frames


def test_read_face_aligns_the_photo_and_names_a_faceless_one(tmp_path):
  photo, aligned, neutral = generate.read_face(bundled.ASTRONAUT_PHOTO, 64)
  assert photo.shape == (512, 512, 3) and aligned.crop.shape == (64, 64, 3)
  np.testing.assert_allclose(neutral, landmarks.normalize(aligned.landmarks, 64))
  blank = tmp_path / "blank.png"
  video_io.write_image(blank, np.full((100, 100, 3), 128, np.uint8))
  with pytest.raises(InputError, match="blank.png: no face"):
    generate.read_face(blank, 64)


def _check_video(path, num_samples, size=None):
  video = video_io.read_video(path, fps=None)
  expected = math.ceil(num_samples * 25 / audio.SAMPLE_RATE)
  assert video.frames.shape[0] == expected
  assert video.fps == pytest.approx(25.0)
  if size is not None:
    assert video.frames.shape[1:3] == size
  heard = audio.decode_audio(path)
  # AAC priming.
  assert heard is not None and abs(heard.size - num_samples) < 0.05 * audio.SAMPLE_RATE
  return video


def test_generate_pastes_into_the_photo_with_sound(models, tmp_path):
  out = tmp_path / "out.mp4"
  summary = generate.generate(bundled.ASTRONAUT_PHOTO,
                              bundled.ARCTIC_SPEECH,
                              "happy:0.7",
                              out,
                              models=models,
                              progress=False)
  wave = audio.load_audio(bundled.ARCTIC_SPEECH)
  photo = video_io.read_image(bundled.ASTRONAUT_PHOTO)
  video = _check_video(out, wave.size, photo.shape[:2])
  assert summary["frames"] == video.frames.shape[0] and summary["size"] == SIZE
  assert 0 < summary["first_frame_seconds"] < summary["wall_seconds"]
  stages = summary["seconds_by_stage"]
  assert {"inputs", "landmarks", "render", "paste", "encode", "streamed_wall"} <= set(stages)
  assert all(seconds >= 0 for seconds in stages.values())
  # Far from the face the photo is untouched (up to H.264).
  corner = np.abs(video.frames[:, :40, -40:].astype(int) -
                  photo[None, :40, -40:].astype(int)).mean()
  assert corner < 4


@pytest.mark.slow
def test_generate_never_imports_what_it_does_not_need(checkpoint_dir, tmp_path):
  """A whole `generate` call in a fresh process loads neither TensorFlow, TFDS nor Beam (they are
  for training) nor matplotlib (plots): each costs start-up time."""
  code = (
      "import json, sys\n"
      "from emotalk_jax import bundled\n"
      "from emotalk_jax.generate import pipeline\n"
      "pipeline.generate(bundled.ASTRONAUT_PHOTO, bundled.ARCTIC_SPEECH, 'happy', "
      f"{str(tmp_path / 'o.mp4')!r},\n"
      f"                  checkpoint={str(checkpoint_dir)!r}, progress=False)\n"
      "print(json.dumps(sorted(m for m in sys.modules\n"
      "                        if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets',\n"
      "                                               'apache_beam', 'matplotlib'))))\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert (tmp_path / "o.mp4").stat().st_size > 0
  assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_crop_only_and_schedule(models, tmp_path):
  out = tmp_path / "crop.mp4"
  generate.generate(bundled.ASTRONAUT_PHOTO,
                    bundled.ARCTIC_SPEECH,
                    out=out,
                    models=models,
                    crop_only=True,
                    emotion_schedule="0:neutral,1.5:happy:0.8,3:sad:0.5",
                    progress=False)
  _check_video(out, audio.load_audio(bundled.ARCTIC_SPEECH).size, (SIZE, SIZE))


@pytest.mark.slow  # Trains: one-shot fine-tuning compiles the texture train step (about a minute).
def test_finetune_first(models, tmp_path):
  summary = generate.generate(bundled.ASTRONAUT_PHOTO,
                              bundled.ARCTIC_SPEECH,
                              out=tmp_path / "ft.mp4",
                              models=models,
                              crop_only=True,
                              finetune_steps=3,
                              progress=False)
  report = summary["finetune"]
  assert report["steps"] == 3 and report["size"] == SIZE
  assert np.isfinite(report["psnr_before"]) and np.isfinite(report["psnr_after"])
  assert "finetune" in summary["seconds_by_stage"]


def test_speech_from_a_video_file(models, tmp_path):
  out = tmp_path / "grid.mp4"
  generate.generate(bundled.ASTRONAUT_PHOTO,
                    bundled.GRID_CLIP,
                    out=out,
                    models=models,
                    crop_only=True,
                    progress=False)
  _check_video(out, audio.load_audio(bundled.GRID_CLIP).size)


@pytest.mark.parametrize("kind", ["no_face", "silent", "emotion", "schedule", "size"])
def test_bad_input_is_a_clear_error_and_keeps_the_old_output(models, tmp_path, kind):
  out = tmp_path / "out.mp4"
  out.write_bytes(b"previous result")
  image, speech, kwargs = bundled.ASTRONAUT_PHOTO, bundled.ARCTIC_SPEECH, {}
  if kind == "no_face":
    image = tmp_path / "wall.png"
    video_io.write_image(image, np.full((200, 200, 3), 128, np.uint8))
    match = "no face"
  elif kind == "silent":
    import soundfile  # pylint: disable=g-import-not-at-top
    speech = tmp_path / "silence.wav"
    soundfile.write(speech, np.zeros(16000, np.float32), 16000)
    match = "silent"
  elif kind == "emotion":
    kwargs = {"emotion": "hapy"}
    match = "unknown"
  elif kind == "schedule":
    kwargs = {"emotion_schedule": "0:neutral,2:happy,1:sad"}
    match = "increase"
  else:
    kwargs = {"size": 256}
    match = "renders 32x32"
  with pytest.raises(InputError, match=match):
    generate.generate(image, speech, out=out, models=models, progress=False, **kwargs)
  assert out.read_bytes() == b"previous result"
  assert [p.name for p in tmp_path.iterdir() if p.suffix == ".mp4"] == ["out.mp4"]


def test_unwritable_output(models, tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(InputError):
    generate.generate(bundled.ASTRONAUT_PHOTO,
                      bundled.ARCTIC_SPEECH,
                      out=blocker / "out.mp4",
                      models=models,
                      progress=False)


def test_checkpoint_of_another_config_names_the_params(checkpoint_dir, tmp_path):
  bad = tmp_path / "bad"
  bad.mkdir()
  for name in ("texture.npz", "texture.json", "landmark.npz"):
    (bad / name).write_bytes((checkpoint_dir / name).read_bytes())
  config = ml_collections.ConfigDict(checkpoints.load_config(checkpoint_dir / "landmark.npz"))
  config.model.audio_dim = 16  # The params were trained with 8.
  checkpoints.save_config(config, bad / "landmark.json")
  with pytest.raises(InputError, match=r"landmark\.npz.*audio_encoder.*shape"):
    generate.load_models(bad)
  with pytest.raises(InputError, match="landmark.npz: no config"):
    generate.load_models(tmp_path)  # Nothing there.


def test_manifest_skips_failing_rows(models, tmp_path):
  photo = tmp_path / "photo.png"
  photo.write_bytes(pathlib.Path(bundled.ASTRONAUT_PHOTO).read_bytes())
  manifest = tmp_path / "jobs.csv"
  manifest.write_text("image,audio,emotion,out\n"
                      f"photo.png,{bundled.ARCTIC_SPEECH},sad,a/one.mp4\n"
                      "missing.png,speech.wav,happy,two.mp4\n"
                      f"photo.png,{bundled.ARCTIC_SPEECH},happy,../escape.mp4\n")
  result = generate.generate_manifest(manifest,
                                      tmp_path / "videos",
                                      models=models,
                                      crop_only=True,
                                      progress=False)
  assert result["total"] == 3
  assert [r["row"] for r in result["succeeded"]] == [2]
  assert (tmp_path / "videos" / "a" / "one.mp4").is_file()
  reasons = {r["row"]: r["reason"] for r in result["failed"]}
  assert "missing.png" in reasons[3] and "leaves the output folder" in reasons[4]
  assert not (tmp_path / "escape.mp4").exists()
  bad = tmp_path / "bad.csv"
  bad.write_text("image,audio\nphoto.png,x.wav\n")
  with pytest.raises(InputError, match="missing column"):
    generate.generate_manifest(bad, tmp_path / "videos", models=models)


def test_the_speech_encoder_runs_its_windows_holding_the_network_lock():
  """One network at a time: each speech window is produced under the lock that stage 1 and stage
  2 take around their calls."""
  held = []

  def windows():
    for k in range(3):
      held.append(generate._ONE_NETWORK.locked())  # pylint: disable=protected-access
      yield k

  assert list(generate._one_at_a_time(windows())) == [0, 1, 2]  # pylint: disable=protected-access
  assert held == [True, True, True]
  assert not generate._ONE_NETWORK.locked()  # pylint: disable=protected-access


def test_a_face_search_handed_over_is_closed_when_generation_fails(models, tmp_path):
  search = face_process.Search(bundled.DEMO_PHOTO)
  with pytest.raises(InputError, match="unknown"):
    generate.generate(bundled.DEMO_PHOTO, bundled.ARCTIC_SPEECH, "hapy", tmp_path / "out.mp4",
                      models=models, progress=False, face_search=search)
  # Not left running.
  assert search._child.returncode is not None  # pylint: disable=protected-access

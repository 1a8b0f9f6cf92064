"""The `emotalk` command: outputs on real media, and a clear error with exit status 2 for every
bad input."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import soundfile

from emotalk_jax import bundled
from emotalk_jax.cli import main as cli
from emotalk_jax.media import video_io


def run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def test_landmarks_on_a_photo_writes_three_panels(capsys, tmp_path):
  out = tmp_path / "astro.png"
  code, stdout, _ = run(capsys, "landmarks", bundled.ASTRONAUT_PHOTO, "--out", out, "--size", 128)
  assert code == 0 and json.loads(stdout)["output"] == str(out)
  assert video_io.read_image(out).shape == (128, 3 * 128, 3)


def test_landmarks_on_a_video_writes_an_mp4_with_sound(capsys, tmp_path):
  src = video_io.read_video(bundled.GRID_CLIP, max_frames=25)
  clip = video_io.write_video(tmp_path / "in.mp4", src.frames, audio=src.audio)
  out = tmp_path / "vis.mp4"
  code, _, _ = run(capsys, "landmarks", clip, "--out", out, "--size", 128)
  assert code == 0
  video = video_io.read_video(out)
  assert len(video.frames) == 25 and video.frames.shape[1] == 128 and video.audio is not None


def test_preprocess_writes_npz_and_video(capsys, tmp_path):
  code, stdout, _ = run(capsys, "preprocess", "--out", tmp_path, "--size", 128, "--quiet")
  assert code == 0
  summary = json.loads(stdout)
  assert summary["frames"] == 75 and summary["frames_filled"] == 0 and summary["mel_shape"] == [
      75, 16, 80
  ]
  with np.load(summary["npz"]) as data:
    assert data["frames"].shape == (75, 128, 128, 3)
  assert len(video_io.read_video(summary["video"]).frames) == 75


def test_emotion_prints_the_vector(capsys):
  code, stdout, _ = run(capsys, "emotion", "happy:0.6+surprised:0.4")
  vector = json.loads(stdout)["emotions"][0]["vector"]
  assert code == 0 and vector == pytest.approx([0, 0, 0, 0, 0.6, 0, 0, 0.4, 1.0])


def _blank_png(path):
  cv2.imwrite(str(path), np.full((200, 200, 3), 127, np.uint8))
  return path


def _silent_wav(path):
  soundfile.write(path, np.zeros(16000, np.float32), 16000)
  return path


def _short_wav(path):
  soundfile.write(path, 0.1 * np.ones(100, np.float32), 16000)
  return path


def _file(path, data: bytes):
  path.write_bytes(data)
  return path


def _audio_only_mov(path):
  """WAV data under a video name: a container with no video stream."""
  return _silent_wav(path.with_suffix(".wav")).rename(path)


BAD_INPUTS = {  # name: (make the file in a folder, command, expected words)
    "missing": (lambda d: d / "nope.mp4", "landmarks", "no such file"),
    "empty": (lambda d: _file(d / "empty.png", b""), "landmarks", "empty"),
    "garbage image": (lambda d: _file(d / "x.png", b"\x89PNGjunk" * 50), "landmarks",
                      "not a readable image"),
    "truncated video": (lambda d: _file(d / "cut.mpg", bundled.GRID_CLIP.read_bytes()[:2048]),
                        "preprocess", "frame"),
    "no face": (lambda d: _blank_png(d / "blank.png"), "landmarks", "no face"),
    "audio-only as video": (lambda d: _audio_only_mov(d / "a.mov"), "preprocess",
                            "no video stream"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_naming_the_file(capsys, tmp_path, case):
  make, command, problem = BAD_INPUTS[case]
  path = make(tmp_path)
  code, stdout, err = run(capsys, command, path, "--out", tmp_path / "out")
  assert code == 2 and stdout == ""
  assert err.startswith("emotalk: error: ") and str(path) in err and problem in err


@pytest.mark.parametrize("make, problem", [(_silent_wav, "is silent"), (_short_wav, "too short")])
def test_bad_audio_exits_2(capsys, tmp_path, make, problem):
  wav = make(tmp_path / "speech.wav")
  code, _, err = run(capsys, "preprocess", "--audio", wav, "--out", tmp_path, "--quiet")
  assert code == 2 and str(wav) in err and problem in err


def test_unknown_emotion_exits_2(capsys):
  code, _, err = run(capsys, "emotion", "hapy")
  assert code == 2 and "did you mean 'happy'" in err


def test_failed_run_keeps_the_existing_output(capsys, tmp_path):
  out = tmp_path / "keep.png"
  out.write_bytes(b"precious")
  code, _, _ = run(capsys, "landmarks", _blank_png(tmp_path / "blank.png"), "--out", out)
  assert code == 2 and out.read_bytes() == b"precious"


@pytest.mark.slow
def test_console_script_prints_no_traceback(tmp_path):
  """The installed entry point: real process, exit status and stderr."""
  proc = subprocess.run(
      [sys.executable, "-m", "emotalk_jax.cli", "landmarks",
       str(tmp_path / "missing.jpg")],
      capture_output=True,
      text=True,
      check=False)
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr and "missing.jpg" in proc.stderr


def test_demo_shows_five_emotions_each_held_over_a_second():
  """The demo's schedule on its bundled speech: neutral, happy, sad, angry, surprised in turn, each
  at full strength (after its 0.5 s ramp) for at least 1 s before the next starts or the speech
  ends; and the bundled photo has a face at rest (lips closed)."""
  from emotalk_jax.generate import driving  # pylint: disable=g-import-not-at-top
  from emotalk_jax.media import audio  # pylint: disable=g-import-not-at-top
  from emotalk_jax.media import face  # pylint: disable=g-import-not-at-top
  keys = driving.parse_schedule(cli.DEMO_SCHEDULE)
  assert [k.emotion.dominant for k in keys] == ["neutral", "happy", "sad", "angry", "surprised"]
  seconds = audio.load_audio(bundled.DEMO_SPEECH).size / audio.SAMPLE_RATE
  ends = [k.time_s for k in keys[1:]] + [seconds]
  for key, end in zip(keys, ends):
    ramp = driving.TRANSITION_S if key.time_s > 0 else 0.0
    assert end - (key.time_s + ramp) >= 1.0, key
  points = face.face_landmarks(video_io.read_image(bundled.DEMO_PHOTO), bundled.DEMO_PHOTO)
  eye_distance = np.linalg.norm(points[45] - points[36])
  assert np.linalg.norm(points[66] - points[62]) < 0.03 * eye_distance  # Lips closed.
  assert np.linalg.norm(points[41] - points[37]) > 0.08 * eye_distance  # Eyes open.

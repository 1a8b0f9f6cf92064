"""Photo + speech + emotion -> a talking-face video with sound (both stages end to end).

```python
from emotalk_jax.generate import pipeline as generate
models = generate.load_models()                    # the shipped sample checkpoints (or a directory)
summary = generate.generate("me.jpg", "speech.wav", "happy:0.7", "out.mp4", models=models)
```

Pipeline, per call:
1. The photo's face is found (in a child process, `face_process`, while the networks load and the
   speech is encoded) and aligned to the template at the texture network's size S.
2. Speech -> Whisper features per 25 fps frame, one 30 s window at a time (`speech_blocks`, in a
   thread from the moment the speech is read); T = ceil(seconds x 25) frames.
3. The emotion (or an `--emotion-schedule`, see `driving.parse_schedule`) -> one emotion vector per
   frame.
4. Stage 1 predicts the landmarks `LANDMARK_CHUNK` frames at a time with `LANDMARK_MARGIN` frames
   of context on each side (more than the network's temporal reach), so the result does not
   depend on the chunking and memory does not grow with the audio; then light temporal smoothing
   (`drive_blocks`: each chunk as soon as its speech is encoded, in a thread).
5. Optionally the texture network is fine-tuned on the photo (`finetune.finetune`).
6. Stage 2 renders `RENDER_BATCH` frames at a time at S (in a thread, each batch once its
   landmarks are final); its flow and what it paints are applied to the photo at the photo's own
   resolution (`full_resolution.compose`: the face keeps the photo's sharpness where nothing is
   painted), in the photo (feathered at the crop's edge) or as an aligned crop of any size
   (`crop_only`), with the eyes' blinks (`eyelids`: the upper lid slides down over the open eye
   stage 2 renders), and streamed to the H.264 + AAC encoder.

The threads overlap the stages on a multi-core CPU (`background`); compiled code is kept on disk
across runs (`cache`). The speech stays in a temporary file (`audio.SpooledWave`) and its features
only as long as stage 1 needs them; what memory grows with is the two landmark tracks (27 KB per
second of speech).
"""

import contextlib
import csv
import dataclasses
import functools
import hashlib
import os
import pathlib
import threading
import time
from typing import Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

from emotalk_jax import bundled
from emotalk_jax import cache
from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.generate import background
from emotalk_jax.generate import driving
from emotalk_jax.generate import eyelids
from emotalk_jax.generate import full_resolution
from emotalk_jax.generate import mouth_interior
from emotalk_jax.generate.progress import Progress
from emotalk_jax.media import audio
from emotalk_jax.media import face
from emotalk_jax.media import face_process
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.media import video_io
from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_model
from emotalk_jax.models import whisper
from emotalk_jax.models import whisper_weights
from emotalk_jax import stages

FPS = audio.FPS
# One network runs at a time (speech encoder window, stage-1 chunk, stage-2 batch): they share
# the same cores (XLA's thread pool), so two at once gain little, and their temporary buffers (28,
# 34 and 32 MB on a CPU) would add up: with them, a long clip's peak memory was 10 % higher. The
# stage nearest the video goes first (priority 0 stage 2, 1 stage 1, 2 the speech encoder): with a
# plain lock the speech encoder went through all its windows before stage 2 rendered a frame (4.8
# s to the first frame for 300 s of speech), and in arrival order its next windows still came
# first (3.8 s). The encoder and stage 1 then keep just ahead of stage 2, in the same total time.
_ONE_NETWORK = background.TurnLock()
_DONE = object()
LANDMARK_CHUNK = 250   # Frames per stage-1 call (10 s).
# Context frames on each side; the temporal module reaches 4 frames, the mel window 8.
LANDMARK_MARGIN = 16
RENDER_BATCH = 8       # Frames per stage-2 call.
# x264 quality of the output: at the usual 18 the encoder removed about a tenth of the face's fine
# detail (variance of the Laplacian, docs/results.md#sharpness); 14 keeps most of it at about twice
# the bit rate.
VIDEO_CRF = 14
DEFAULT_FINETUNE_STEPS = 0


@contextlib.contextmanager
def _side_turn(priority: int):
  """A turn of `_ONE_NETWORK` for the speech encoder or stage 1, then the heap's free pages given
  back (`background.release_free_memory`): what these networks free between stage 2's batches
  would otherwise stay resident around stage 2's temporaries."""
  with _ONE_NETWORK.turn(priority):
    yield
  background.release_free_memory()


@dataclasses.dataclass
class Models:
  """Both trained networks, ready for inference."""
  landmark_model: object
  landmark_params: dict
  landmark_config: object
  texture_model: object
  texture_params: dict
  texture_config: object
  # (params, WhisperConfig) of the speech encoder, when stage 1 reads Whisper features; else None.
  speech_encoder: Optional[tuple] = None

  @property
  def size(self) -> int:
    """S: the side of the crops the texture network renders."""
    return int(self.texture_config.image_size)

  @functools.cached_property
  def silent_speech(self) -> Optional[np.ndarray]:
    """[750, D] the speech encoder's features of one window of silence (30 s), when stage 1 reads
    them (`_still_offset`); else None. Kept in the cache folder under a digest of the encoder's
    params, which is far cheaper to take than the window is to encode."""
    if self.speech_encoder is None:
      return None
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(self.speech_encoder[0]):
      digest.update(memoryview(np.ascontiguousarray(leaf)).cast("B"))
    silence = np.zeros(whisper.WINDOW_FRAMES * whisper.HOP_LENGTH, np.float32)
    return cache.array("silent speech features", digest.hexdigest(),
                       lambda: speech_features(self, silence))


def load_models(checkpoint_dir=None) -> Models:
  """Loads `landmark.npz` and `texture.npz` (+ their `.json` configs) from `checkpoint_dir`
  (default: the sample checkpoints shipped in `emotalk_jax/assets/checkpoints`).

  Raises:
    InputError: a missing file, or params that do not fit their config (naming the params that
      differ); a missing or broken Whisper weights file when stage 1 reads Whisper features.
  """
  cache.enable_compilation_cache()  # Before the first compilation, which sets the cache up.
  directory = pathlib.Path(checkpoint_dir) if checkpoint_dir else bundled.CHECKPOINTS_DIR
  loaded = {}
  for name in ("landmark", "texture"):
    npz = directory / f"{name}.npz"
    try:
      loaded[name] = stages.get(name).load(npz)
    except (FileNotFoundError, ValueError) as e:
      raise InputError(npz, str(e)) from None
  speech_encoder = None
  if loaded["landmark"][0].speech_input != "mel":
    speech_encoder = whisper_weights.load_encoder()
  return Models(*loaded["landmark"], *loaded["texture"], speech_encoder)


def read_face(image, size: int, face_index: int = 0, landmarks_px=None):
  """The photo's face, aligned to the template at the networks' crop size.

  Args:
    image: photo path (or [H, W, 3] uint8 RGB).
    size: S, the side of the crop (`Models.size`).
    face_index: which face when the photo has several (0 = largest).
    landmarks_px: the face's [68, 2] landmark pixels when they are known (`face_process`); else
      the photo is searched.

  Returns:
    (photo [H, W, 3] uint8, `face.AlignedFace` with its [S, S, 3] crop, neutral landmarks [68, 2]
    of the crop in [-1, 1]).

  Raises:
    InputError: an unreadable photo, no face, `face_index` out of range (naming the file).
  """
  is_path = isinstance(image, (str, pathlib.Path))
  photo = video_io.read_image(image) if is_path else np.asarray(image)
  # Past the photo's edge the network sees the edge pixels repeated (as its warp and
  # `full_resolution` do), not a mirrored patch it would then animate.
  if landmarks_px is None:
    aligned = face.align_face(photo, image if is_path else "<image>", size=size,
                              face_index=face_index, border="replicate")
  else:
    aligned = face.align_points(photo, landmarks_px, size, border="replicate")
  return photo, aligned, landmarks_lib.normalize(aligned.landmarks, size)


# Stage 1 ------------------------------------------------------------------------------------------

def _landmarks(model, params, inputs):
  return landmark_model.apply(model, params, inputs)["landmarks"]


def _stage1(models: Models, inputs: dict):
  """Stage 1 compiled for inputs of these shapes (`_stage1_inputs`)."""
  model = models.landmark_model
  return cache.compiled(f"landmarks {model!r}", functools.partial(_landmarks, model),
                        models.landmark_params, inputs)


def _stage1_inputs(model, emotion, neutral, mel=None, speech=None) -> dict:
  """Stage 1's inputs for B emotion tracks [B, L, 9] over one face ([68, 2] in [-1, 1]) and one
  speech: [L, 16, 80] mel windows and/or [L, D] features, as the model reads them."""

  def shared(x):  # One copy of the speech or the face for every track.
    return np.broadcast_to(np.asarray(x, np.float32)[None], (emotion.shape[0],) + np.shape(x))

  inputs = {"emotion": np.asarray(emotion, np.float32), "neutral_landmarks": shared(neutral)}
  if model.speech_input != "whisper":
    inputs["mel"] = shared(mel)
  if model.speech_input != "mel":
    inputs["speech"] = shared(speech)
  return inputs


def speech_features(models: Models, wave) -> Optional[np.ndarray]:
  """[T, D] Whisper features per video frame of `wave` [N] (16 kHz) when stage 1 reads them, else
  None."""
  if models.speech_encoder is None:
    return None
  params, config = models.speech_encoder
  return whisper.speech_features(wave, params, config)


def speech_mel(models: Models, wave) -> Optional[np.ndarray]:
  """[F, 80] log-mel of `wave` ([N] or an `audio.SpooledWave`, read whole) when stage 1 reads it,
  else None (librosa's spectrogram costs about 2 s to import, a quarter of a short video's
  time)."""
  if models.landmark_model.speech_input == "whisper":
    return None
  return audio.log_mel(wave[:])


def predict_landmarks(models: Models, mel, emotion_track, neutral, chunk: int = LANDMARK_CHUNK,
                      margin: int = LANDMARK_MARGIN, speech=None) -> np.ndarray:
  """Stage 1 over a whole clip, in chunks.

  Args:
    models: the networks.
    mel: [F, 80] log-mel of the speech (100 frames/s); None for a stage 1 that reads only
      Whisper features.
    emotion_track: [T, 9] emotion vector per frame; or [B, T, 9], B emotion tracks over the same
      speech and face, run together (one network call per chunk for all B: e.g. one still per
      emotion in `emotion_grid`).
    neutral: [68, 2] the photo's landmarks in [-1, 1].
    chunk, margin: frames per call and context frames on each side of it (the clip reads as silence
      beyond its ends).
    speech: [T, D] Whisper features per frame (`speech_features`), when stage 1 reads them; beyond
      the clip's ends, its first and last frame's.

  Returns:
    [T, 68, 2] float32 landmarks in [-1, 1] ([B, T, 68, 2] for [B, T, 9] tracks); equal (to float
    rounding) to one call on the whole clip with `margin` frames of silence on each side, less
    stage 1's move of the face in silence (`_still_offset`).
  """
  return _predict_chunks(models, _mel_at(mel), speech, emotion_track, neutral, chunk, margin)


def _mel_at(mel):
  """`mel_at(first, length)` of a clip's log-mel [F, 80] (None: stage 1 reads no mel)."""
  if mel is None:
    return None
  return lambda first, length: audio.mel_windows(mel, length, FPS, first_frame=first)


def predict_landmarks_from_windows(models: Models, mel_windows, emotion_track, neutral,
                                   chunk: int = LANDMARK_CHUNK, margin: int = LANDMARK_MARGIN,
                                   speech=None) -> np.ndarray:
  """`predict_landmarks` from mel windows already cut per frame (e.g. a dataset example's `mel`).

  Args:
    models: the networks.
    mel_windows: [T, 16, 80] log-mel window per video frame (`audio.mel_windows`).
    emotion_track: [T, 9] emotion vector per frame, or [B, T, 9] (as in `predict_landmarks`).
    neutral: [68, 2] landmarks in [-1, 1].
    chunk, margin: as in `predict_landmarks`; windows of frames outside 0 .. T - 1 are all silence
      (`audio.LOG_MEL_FLOOR`).
    speech: as in `predict_landmarks` (e.g. a dataset example's `speech`).

  Returns:
    [T, 68, 2] float32 landmarks in [-1, 1]; equal to `predict_landmarks` on the mel the windows
    were cut from whenever that mel is silent at both ends.
  """
  mel_windows = np.asarray(mel_windows, np.float32)
  num_frames = mel_windows.shape[0]
  if emotion_track.shape[-2] != num_frames:
    raise ValueError(f"{num_frames} mel windows but {emotion_track.shape[-2]} emotion vectors")
  padded = np.concatenate(
      [mel_windows,
       np.full((1,) + mel_windows.shape[1:], audio.LOG_MEL_FLOOR, np.float32)])

  def mel_at(first, length):
    idx = np.arange(first, first + length)
    return padded[np.where((idx >= 0) & (idx < num_frames), idx, num_frames)]

  return _predict_chunks(models, mel_at, speech, emotion_track, neutral, chunk, margin)


def _predict_chunks(models: Models, mel_at, speech, emotion_track, neutral, chunk: int,
                    margin: int) -> np.ndarray:
  """The chunk loop of `predict_landmarks`; `mel_at(first, length)` -> [length, 16, 80] mel windows
  of frames first .. first + length - 1 (silence outside the clip); `speech` [T, D] or None;
  `emotion_track` [T, 9] or [B, T, 9] (the B tracks share the speech and the face)."""
  emotion_track = np.asarray(emotion_track, np.float32)
  tracks = emotion_track if emotion_track.ndim == 3 else emotion_track[None]
  out = np.empty(tracks.shape[:2] + (68, 2), np.float32)
  speech_at = None if speech is None else np.asarray(speech, np.float32).__getitem__
  for start, pred in _landmark_chunks(models, mel_at, speech_at, tracks, neutral, chunk, margin):
    out[:, start:start + pred.shape[1]] = pred
  return out if emotion_track.ndim == 3 else out[0]


def _landmark_chunks(models: Models, mel_at, speech_at, tracks, neutral, chunk: int, margin: int):
  """Yields (start, [B, keep, 68, 2] landmarks of frames start .. start + keep - 1) chunk by chunk
  for `tracks` [B, T, 9]. A chunk reads the speech of its frames and `margin` more on each side
  (`speech_at(frames)` -> [len(frames), D] Whisper features) only when it runs (`drive_blocks`
  adds the speech encoder's frames while earlier chunks run)."""
  num_frames = tracks.shape[1]
  model = models.landmark_model
  if model.speech_input != "mel" and speech_at is None:
    raise ValueError(f"stage 1 reads {model.speech_input!r} speech features: pass `speech`")
  length = chunk + 2 * margin
  offset = None
  for start in range(0, num_frames, chunk):
    # Frames first .. first + length - 1; those outside the clip are silence.
    first = start - margin
    idx = np.clip(np.arange(first, first + length), 0, num_frames - 1)
    inputs = _stage1_inputs(model, tracks[:, idx], neutral,
                            mel=mel_at(first, length) if model.speech_input != "whisper" else None,
                            speech=speech_at(idx) if model.speech_input != "mel" else None)
    fn = _stage1(models, inputs)  # Every chunk has the same shapes: one compilation.
    if offset is None:
      offset = _still_offset(models, neutral)
    keep = min(chunk, num_frames - start)
    with _side_turn(priority=1):
      pred = np.asarray(fn(models.landmark_params, inputs)[:, margin:margin + keep])
    yield start, pred - offset


def _still_offset(models: Models, neutral) -> np.ndarray:
  """[68, 2] how far stage 1 moves the photo's jaw, brows, nose and eyes in silence with no
  emotion, beyond the training set's mean motion (its `mean_displacement` param); zero on the
  mouth. Stage 1's predictions are given less this, so that speech and emotion move the photo's own
  face.

  Trained on about 25 people, stage 1 also moves a new face towards theirs, enough to make
  another person of some photos (a narrower face, the eyes higher). The mean motion (at most about
  a pixel) is what faces do while speaking, not that pull, and it stays. So does the mouth's part:
  the lips at rest in speech sit otherwise than in a neutral photo, and the lip-sync figures lose
  with it taken off (docs/results.md#the-photos-own-face).

  Args:
    models: the networks; with the speech encoder when stage 1 reads Whisper features.
    neutral: [68, 2] the photo's landmarks in [-1, 1].
  """
  model = models.landmark_model
  length = LANDMARK_CHUNK + 2 * LANDMARK_MARGIN  # The shapes generation compiles stage 1 for.
  if model.speech_input != "mel" and models.speech_encoder is None:
    raise ValueError("stage 1 reads Whisper features: its silence needs the speech encoder "
                     "(Models.speech_encoder)")
  still = emotions.parse_emotion("neutral").vector()[None, None]
  silence = _stage1_inputs(
      model, np.broadcast_to(still, (1, length, still.shape[-1])), neutral,
      mel=(np.full((length, audio.MEL_WINDOW, audio.N_MELS), audio.LOG_MEL_FLOOR, np.float32)
           if model.speech_input != "whisper" else None),
      speech=models.silent_speech[:length] if model.speech_input != "mel" else None)
  fn = _stage1(models, silence)
  with _side_turn(priority=1):
    landmarks = np.asarray(fn(models.landmark_params, silence)[0])
  offset = (landmarks - np.asarray(neutral, np.float32)).mean(0) - np.asarray(
      models.landmark_params["mean_displacement"], np.float32)
  offset[face_graph.MOUTH] = 0.0
  return offset


# Stage 2 ------------------------------------------------------------------------------------------

def _render(model, params, image, neutral, target, emotion):
  out = model.apply({"params": params}, image, neutral, target, emotion)
  frames = jnp.clip(jnp.round((out["image"] + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
  # What the network adds to the warped neutral image: its frame is warped + paint.
  paint = (1.0 - out["occlusion"]) * (out["rgb"].astype(jnp.float32) - out["warped"])
  return {"image": frames, "flow": out["flow"], "paint": paint * 127.5}


def _stage2(models: Models, params, batch: int, emotion_dim: int):
  """`_render` compiled for one face and `batch` targets (`render_layers`' calls)."""
  model, size = models.texture_model, models.size
  spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  return cache.compiled(f"render {model!r}", functools.partial(_render, model), params,
                        spec(1, size, size, 3), spec(1, 68, 2), spec(batch, 68, 2),
                        spec(batch, emotion_dim), cpu_options=cache.CONV_NET_CPU_OPTIONS)


def render_layers(models: Models, params, crop, neutral, landmark_track, emotion_track,
                  batch: int = RENDER_BATCH) -> Iterator[dict]:
  """Yields stage 2's outputs, one frame at a time, `batch` frames per network call: 'image' [S, S,
  3] uint8 (its frame), and what `full_resolution.compose` needs to redo that frame at any
  resolution: 'flow' [S, S, 2], 'paint' [S, S, 3] (grey levels; float32; around the mouth only,
  `full_resolution.near_mouth`) and its target 'landmarks' [68, 2] in [-1, 1].

  Args:
    models: the networks (`texture_model` renders).
    params: the texture network's params (e.g. fine-tuned).
    crop: [S, S, 3] uint8 aligned photo crop.
    neutral: [68, 2] its landmarks in [-1, 1].
    landmark_track: [T, 68, 2] target landmarks, or a `background.Progressive` filling them (each
      batch waits for its frames).
    emotion_track: [T, 9].
  """
  # One face for the whole batch (the network computes its part once).
  image = jnp.asarray(crop, jnp.float32)[None] / 127.5 - 1.0
  neutral_batch = jnp.asarray(neutral, jnp.float32)[None]
  num_frames = emotion_track.shape[0]
  # Compiled (or read from the cache) before the first batch's landmarks are needed, or already.
  fn = _stage2(models, params, batch, emotion_track.shape[1])
  for start in range(0, num_frames, batch):
    # A fixed batch: one compilation.
    idx = np.minimum(np.arange(start, start + batch), num_frames - 1)
    track = (landmark_track.wait(int(idx[-1]) + 1)
             if isinstance(landmark_track, background.Progressive) else landmark_track)
    with _ONE_NETWORK.turn(priority=0):
      out = jax.device_get(fn(params, image, neutral_batch, jnp.asarray(track[idx]),
                              jnp.asarray(emotion_track[idx])))
    out["landmarks"] = np.asarray(track[idx])
    for i in range(min(batch, num_frames - start)):
      layers = {k: v[i] for k, v in out.items()}
      layers["paint"] = full_resolution.near_mouth(
          layers["paint"], landmarks_lib.denormalize(layers["landmarks"], models.size))
      yield layers


def render_frames(models: Models, params, crop, neutral, landmark_track, emotion_track,
                  batch: int = RENDER_BATCH) -> Iterator[np.ndarray]:
  """Stage 2's frames [S, S, 3] uint8 (`render_layers`' 'image'), one per frame."""
  return (layers["image"] for layers in render_layers(models, params, crop, neutral, landmark_track,
                                                       emotion_track, batch))


# End to end ---------------------------------------------------------------------------------------

def _emotion_keyframes(emotion, emotion_schedule) -> list:
  if emotion_schedule:
    return driving.parse_schedule(emotion_schedule)
  parsed = emotion if isinstance(emotion, emotions.Emotion) else emotions.parse_emotion(emotion)
  return [driving.Keyframe(0.0, parsed)]


def speech_blocks(models: Models, wave):
  """Stage 1's speech features of `wave` a window at a time (`whisper.speech_feature_blocks`):
  ([n, D] features of the frames that became final, frames final); one block (None, T) when
  stage 1 reads none."""
  if models.speech_encoder is None:
    return iter([(None, audio.num_video_frames(wave.size))])
  params, config = models.speech_encoder
  return _one_at_a_time(whisper.speech_feature_blocks(wave, params, config))



def _one_at_a_time(items):
  """Yields `items` (the speech encoder's windows), each produced in a turn of `_ONE_NETWORK`."""
  items = iter(items)
  while True:
    with _side_turn(priority=2):
      item = next(items, _DONE)
    if item is _DONE:
      return
    yield item


def _rest_after(blocks, started: threading.Event):
  """Yields the speech encoder's first window, then the others once `started` is set (the first
  frame rendered): on two cores the later windows of a long clip otherwise took turns before stage
  2's first batch, and its first frame came seconds after a short clip's."""
  for k, block in enumerate(blocks):
    yield block
    if k == 0:
      started.wait()


def drive(models: Models, neutral, wave, keyframes) -> tuple[np.ndarray, np.ndarray]:
  """(landmarks [T, 68, 2], emotion track [T, 9]) for speech `wave` [N] at 16 kHz: stage 1 and
  smoothing (the eyes open: blinks are drawn on the frames, `eyelids`)."""
  track = driving.emotion_track(keyframes, audio.num_video_frames(wave.size))
  for landmarks, _ in drive_blocks(models, neutral, wave, track):
    pass
  return landmarks, track  # pylint: disable=undefined-loop-variable  (one block at least)


class _RecentFrames:
  """Speech features of frames `first` on, as the speech encoder finishes them (`add`); frames no
  chunk of stage 1 reads any more are let go (`drop_before`), so memory stays that of a window.
  `recent(frames)` -> [len(frames), D]."""

  def __init__(self):
    self.first, self._rows = 0, None

  def add(self, block: np.ndarray) -> None:
    self._rows = block if self._rows is None else np.concatenate([self._rows, block])

  def drop_before(self, frame: int) -> None:
    if self._rows is not None and frame > self.first:
      self._rows = self._rows[frame - self.first:].copy()
      self.first = frame

  def __call__(self, frames: np.ndarray) -> np.ndarray:
    return self._rows[frames - self.first]


def drive_blocks(models: Models, neutral, wave, track, speech=None, timed=None):
  """`drive` a block at a time: rendering can start while the speech encoder and stage 1 go
  through the rest of a long clip.

  Stage 1 runs each chunk as soon as the speech encoder has finished its frames and context; a
  frame is final once the smoothing's reach past it is predicted.

  Args:
    models, neutral, wave: as in `drive`.
    track: [T, 9] the emotion per frame.
    speech: the speech blocks (default `speech_blocks(models, wave)`; e.g. started earlier).
    timed: `timed(iterator, name)` wraps the speech encoder's and stage 1's work to time it.

  Yields:
    (landmarks, ready): the [T, 68, 2] array `drive` returns, filled in order (the same array
    every time), and how many of its first frames are final; the last block has ready = T.
  """
  timed = timed or (lambda items, name: items)
  num_frames = track.shape[0]
  raw = np.empty((num_frames, 68, 2), np.float32)
  out = np.empty_like(raw)
  reach = driving.smoothing_reach()
  chunks, predicted, done = None, 0, 0
  speech = speech if speech is not None else timed(speech_blocks(models, wave), "speech_features")
  if models.speech_encoder is not None and models.landmark_model.speech_input == "whisper":
    # Compiled (or read from the cache) while the speech encoder works on the first window.
    length = LANDMARK_CHUNK + 2 * LANDMARK_MARGIN
    _stage1(models, _stage1_inputs(
        models.landmark_model, np.zeros((1, length, track.shape[1]), np.float32), neutral,
        speech=np.zeros((length, models.speech_encoder[1].width), np.float32)))
  recent = _RecentFrames()
  for features, heard in speech:
    if features is not None:
      recent.add(features)
    if chunks is None:
      chunks = timed(_landmark_chunks(models, _mel_at(speech_mel(models, wave)),
                                      recent if features is not None else None, track[None],
                                      neutral, LANDMARK_CHUNK, LANDMARK_MARGIN), "landmarks")
    # Every chunk whose frames and context the speech encoder has finished.
    while (predicted < num_frames and
           min(predicted + LANDMARK_CHUNK + LANDMARK_MARGIN, num_frames) <= heard):
      start, pred = next(chunks)
      raw[start:start + pred.shape[1]] = pred[0]
      predicted = start + pred.shape[1]
      recent.drop_before(predicted - LANDMARK_MARGIN)  # The next chunk's first frame of context.
    final = num_frames if predicted == num_frames else max(done, predicted - reach)
    if final > done:  # Smoothed from `reach` frames of context on each side (or the clip's end).
      lo, hi = max(0, done - reach), min(num_frames, final + reach)
      out[done:final] = driving.smooth(raw[lo:hi])[done - lo:final - lo]
      done = final
    yield out, done


def generate(image,
             speech,
             emotion="neutral",
             out="emotalk_out/generated.mp4",
             *,
             models: Optional[Models] = None,
             checkpoint=None,
             size: Optional[int] = None,
             finetune_steps: int = DEFAULT_FINETUNE_STEPS,
             crop_only: bool = False,
             crop_size: Optional[int] = None,
             seed: int = 0,
             emotion_schedule: Optional[str] = None,
             face_index: int = 0,
             render_batch: int = RENDER_BATCH,
             progress=True,
             face_search: Optional[face_process.Search] = None) -> dict:
  """Generates a talking-face video and writes it to `out` (H.264 + AAC, 25 fps, atomically).

  Args:
    image: photo path (or [H, W, 3] uint8 RGB).
    speech: audio file, or a video whose audio track is used.
    emotion: emotion text (`happy`, `happy:0.7`, `happy:0.6+surprised:0.4`) or an `Emotion`.
    out: the .mp4 to write.
    models: loaded networks (default: `load_models(checkpoint)`).
    checkpoint: directory with `landmark.npz` and `texture.npz` (default: the shipped sample
      checkpoints).
    size: expected crop size; must match the texture checkpoint's (None: whatever it renders).
    finetune_steps: one-shot adaptation steps on the photo before rendering (0: none).
    crop_only: write the aligned crop instead of the photo with the face replaced.
    crop_size: side of that crop in pixels (default S); any size, from the photo's own pixels.
    seed: blinks and fine-tuning augmentation.
    emotion_schedule: `"0:neutral,2.0:happy:0.8"` emotion keyframes (overrides `emotion`).
    face_index: which face when the photo has several (0 = largest; a warning names the count).
    render_batch: frames per stage-2 call (more: higher throughput on an accelerator).
    progress: show what is being done and a frame bar on stderr (a `Progress`, or a bool).
    face_search: the search of the photo `image` (a path) with `face_index`, already started
      (the command line starts it before it imports JAX); generate closes it. Default: started
      here.

  Returns:
    Summary: output, frames, seconds of speech, wall seconds, fps, size, and the fine-tune report.

  Raises:
    InputError: no face / bad photo, bad or silent speech, unknown emotion, bad schedule, a
      checkpoint that does not fit, an unwritable output. Nothing is written then.
  """
  clock = _Clock()
  status = progress if isinstance(progress, Progress) else Progress(bool(progress))
  search, wave = face_search, None
  try:
    try:
      keyframes = _emotion_keyframes(emotion, emotion_schedule)  # Cheap checks first.
      _check_output(out)
      # dlib searches the photo in a process of its own while the networks load and the speech is
      # encoded here.
      if search is None and isinstance(image, (str, pathlib.Path)):
        search = face_process.Search(image, face_index)
      if models is None:
        status.step("loading the networks")
        models = load_models(checkpoint)
      if size is not None and int(size) != models.size:
        raise InputError(
            checkpoint or bundled.CHECKPOINTS_DIR,
            f"renders {models.size}x{models.size} crops, not {size}x{size}; give a checkpoint "
            f"trained at {size} with --checkpoint")
      status.step("reading the speech")
      wave = audio.spool_audio(speech)  # In a file: memory does not grow with the speech.
      num_frames = audio.num_video_frames(wave.size)
      emotion_track = driving.emotion_track(keyframes, num_frames)
      # Stage 2 compiles (or reads its cache) from now on, beside the face search and the speech.
      threading.Thread(target=_stage2, args=(models, models.texture_params, render_batch,
                                             emotion_track.shape[1]), daemon=True).start()
      # From here the speech encoder, then stage 1, work through the clip in threads (compiled XLA,
      # outside the GIL): first while the face is searched, then while stage 2 renders the frames
      # they have finished.
      speech_work = background.prefetch(
          _rest_after(clock.timed(speech_blocks(models, wave), "speech_features"), clock.rendering),
          depth=1 + num_frames // 250)
      status.step("finding the face")
      landmarks_px = search and search.result()
    finally:
      if search:
        search.close()
    photo, aligned, neutral = read_face(image, models.size, face_index, landmarks_px)
    clock.lap("inputs")
    status.step("encoding the speech, predicting the landmarks")
    landmark_track = background.Progressive(
        drive_blocks(models, neutral, wave, emotion_track, speech=speech_work, timed=clock.timed))
    closed = driving.blink_amounts(driving.blink_times(num_frames, np.random.default_rng(seed)),
                                   num_frames)

    params, finetune_report = models.texture_params, None
    if finetune_steps > 0:
      status.step(f"fine-tuning on the photo ({finetune_steps} steps)")
      from emotalk_jax.generate import finetune  # pylint: disable=g-import-not-at-top
      params, report = finetune.finetune(params,
                                         models.texture_config,
                                         aligned.crop,
                                         landmarks=neutral,
                                         steps=finetune_steps,
                                         seed=seed,
                                         progress=status.enabled)
      # "_": images for plots.
      finetune_report = {k: v for k, v in report.items() if not k.startswith("_")}
      clock.lap("finetune")

    status.step("rendering the first frames (compiled once, then cached on disk)")
    canvas = (full_resolution.crop_canvas(models.size, crop_size or models.size) if crop_only else
              full_resolution.paste_canvas(photo.shape, aligned.transform, models.size))
    # Stage 2 renders the next batches in a thread while this one pastes and encodes.
    layers = background.prefetch(
        clock.timed(render_layers(models, params, aligned.crop, neutral, landmark_track,
                                  emotion_track, render_batch), "render"), 2 * render_batch)
    bar = status.frames(num_frames, render_batch)
    source = full_resolution.photo_source(photo, aligned.transform, models.size)
    lid_colours = eyelids.lid_colours(aligned.crop, aligned.landmarks)
    interior = mouth_interior.interior(aligned.crop, aligned.landmarks)
    frames = _composed(layers, closed, lid_colours, interior, photo, aligned.transform, canvas,
                       source, clock, bar)
    streamed = time.perf_counter()
    video_io.write_video(out, clock.timed(frames, "frames"), fps=FPS, audio=wave, crf=VIDEO_CRF)
    bar.close()
    # The encoder's own time: the streamed part's wall time less its waits for frames; stage 2's,
    # less its waits for stage 1.
    clock.add("encode", time.perf_counter() - streamed - clock.pop("frames"))
    clock.add("render", -landmark_track.waited_seconds)
    clock.lap("streamed_wall")
    total = clock.total()
    summary = {
        "output": str(out),
        "frames": int(num_frames),
        "seconds": round(wave.size / audio.SAMPLE_RATE, 3),
        "size": models.size,
        "wall_seconds": round(total, 2),
        "fps": round(num_frames / total, 2),
        "first_frame_seconds": clock.first_frame,
        "crop_only": bool(crop_only),
        "render_batch": int(render_batch),
        "seconds_by_stage": clock.laps()
    }
    if finetune_report is not None:
      summary["finetune"] = finetune_report
    return summary
  finally:
    clock.rendering.set()  # A speech encoder waiting for the first frame goes on (and ends).
    if wave is not None:
      wave.close()


def _composed(layers, closed, lid_colours, interior, photo, transform, canvas, source,
              clock: "_Clock", bar) -> Iterator[np.ndarray]:
  """Stage 2's layers -> output frames (`full_resolution.compose`) with the eyes closed by `closed`
  [T] (blinks; the photo's `eyelids.lid_colours`) and the mouth's inside drawn from the photo's
  `mouth_interior.Interior`, counted on the frame bar."""
  for x, amount in zip(layers, closed):
    if clock.first_frame is None:
      clock.first_frame = round(clock.total(), 3)
      clock.rendering.set()
    start = time.perf_counter()
    landmarks_px = landmarks_lib.denormalize(x["landmarks"], x["flow"].shape[0])
    frame = full_resolution.compose(
        photo, transform, canvas, x["flow"], x["paint"], source,
        closing=eyelids.Closing(landmarks_px, float(amount), lid_colours),
        opening=mouth_interior.Opening(landmarks_px, interior))
    clock.add("paste", time.perf_counter() - start)
    bar.update(1)
    yield frame


class _Clock:
  """Wall seconds per stage. The first stages run one after the other (`lap`: the time since the
  last lap); rendering, pasting and encoding then overlap, each booked with its own busy time
  (`add`, `timed`; from several threads), so the stages add up to more than the wall time."""

  def __init__(self):
    self._start = self._last = time.perf_counter()
    self._laps = {}
    self._lock = threading.Lock()
    self.first_frame = None  # Seconds from the start to the first rendered frame.
    self.rendering = threading.Event()  # Set at the first rendered frame.

  def add(self, name: str, seconds: float) -> None:
    with self._lock:
      self._laps[name] = self._laps.get(name, 0.0) + seconds

  def lap(self, name: str) -> None:
    now = time.perf_counter()
    self.add(name, now - self._last)
    self._last = now

  def timed(self, items, name: str):
    """Yields `items`, booking the time spent producing each to `name` (less any wait for a turn
    of `_ONE_NETWORK`)."""
    iterator = iter(items)
    while True:
      start, waited = time.perf_counter(), _ONE_NETWORK.waited_seconds()
      try:
        item = next(iterator)
      except StopIteration:
        return
      self.add(name, time.perf_counter() - start - (_ONE_NETWORK.waited_seconds() - waited))
      yield item

  def pop(self, name: str) -> float:
    with self._lock:
      return self._laps.pop(name, 0.0)

  def total(self) -> float:
    return time.perf_counter() - self._start

  def laps(self) -> dict:
    return {k: round(v, 3) for k, v in self._laps.items()}


def _check_output(out) -> None:
  """Fails before any work when `out` cannot be written (a folder, or a parent that cannot be
  made)."""
  out = pathlib.Path(out)
  if out.suffix.lower() != ".mp4":
    raise InputError(out, "the output must be an .mp4 file")
  if out.is_dir():
    raise InputError(out, "is a directory; give a file name such as out.mp4")
  parent = out.parent
  while not parent.exists():
    parent = parent.parent
  if not parent.is_dir() or not os.access(parent, os.W_OK):
    raise InputError(out, f"cannot be written: {parent} is not a writable folder")


MANIFEST_COLUMNS = ("image", "audio", "emotion", "out")


def _manifest_path(manifest: pathlib.Path, row: int, column: str, value: str, base: pathlib.Path,
                   must_exist: bool) -> pathlib.Path:
  """A manifest cell as a path under `base` (relative paths) or as given (absolute inputs)."""
  where = f"{manifest}: row {row}"
  if not value:
    raise InputError(where, f"empty {column!r}")
  path = pathlib.Path(value).expanduser()
  if not path.is_absolute():
    path = base / path
  if must_exist and not path.is_file():
    raise InputError(where, f"{column} {value!r}: no such file ({path})")
  return path


def generate_manifest(manifest, out_dir, *, models: Optional[Models] = None, checkpoint=None,
                      progress: bool = True, **kwargs) -> dict:
  """Batch mode: one video per CSV row (columns image,audio,emotion,out).

  Input paths are relative to the manifest's folder; `out` is relative to `out_dir` and must stay
  inside it. A failing row is skipped with its reason and the rest go on.

  Returns:
    {'succeeded': [per-row summaries], 'failed': [{'row', 'reason'}], 'total'}.
  """
  manifest = pathlib.Path(manifest)
  out_dir = pathlib.Path(out_dir)
  try:
    text = manifest.read_text(encoding="utf-8")
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(manifest, f"cannot read it ({e})") from None
  reader = csv.DictReader(text.splitlines())
  missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
  if missing:
    raise InputError(manifest, f"missing column(s) {', '.join(missing)}; expected a header "
                     f"{','.join(MANIFEST_COLUMNS)}")
  rows = list(reader)
  if not rows:
    raise InputError(manifest, "has no rows")
  models = load_models(checkpoint) if models is None else models
  succeeded, failed = [], []
  for number, row in enumerate(rows, start=2):  # Row 1 is the header.
    try:
      image = _manifest_path(manifest, number, "image", (row["image"] or "").strip(),
                             manifest.parent, True)
      speech = _manifest_path(manifest, number, "audio", (row["audio"] or "").strip(),
                              manifest.parent, True)
      out = _manifest_path(manifest, number, "out", (row["out"] or "").strip(), out_dir,
                           False).resolve()
      if out_dir.resolve() not in out.parents:
        raise InputError(f"{manifest}: row {number}",
                         f"out {row['out']!r} leaves the output folder {out_dir}")
      summary = generate(image, speech, (row["emotion"] or "neutral").strip(), out, models=models,
                         progress=progress, **kwargs)
      succeeded.append({"row": number, **summary})
    except InputError as e:
      failed.append({"row": number, "reason": str(e)})
  return {"total": len(rows), "succeeded": succeeded, "failed": failed}

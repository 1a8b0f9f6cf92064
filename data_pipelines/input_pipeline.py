"""The tf.data input pipeline: random K-frame windows of TFDS clips -> global `jax.Array` batches.

Usage (single or multi-host; every process runs the same code):

```python
from data_pipelines import input_pipeline

mesh = input_pipeline.make_mesh()                        # 1-D ('data',) mesh over all devices
it = input_pipeline.InputIterator("mead", "train", batch_size=64, window=8, seed=0, mesh=mesh)
batch = next(it)          # dict of jax.Arrays, batch axis sharded over 'data'
state = it.get_state()    # JSON-serialisable; it.set_state(state) resumes exactly after this batch
```

One element = one window of `window` (K) consecutive frames of one clip (`data_pipelines.features`
describes the stored clips). The local (per-process) batch, as numpy from `make_dataset` or
`InputIterator(mesh=None)`, holds (B = batch_size // process_count):

| key | shape, dtype | meaning |
|---|---|---|
| `frames` | [B, K, S, S, 3] uint8 | the window's aligned crops (convert to float in JAX) |
| `landmarks` | [B, K, 68, 2] float32 | their landmarks, [-1, 1] |
| `mel` | [B, K, 16, 80] float32 | log-mel window of each frame (all LOG_MEL_FLOOR without audio) |
| `speech` | [B, K, 384] float32 | if the dataset has it: Whisper features (0 without audio) |
| `detected` | [B, K] bool | face found in that frame (else filled from its neighbours) |
| `frame_mask` | [B, K] bool | real frame (False only for padding, `short_clips="pad"`) |
| `neutral_frame` | [B, S, S, 3] uint8 | the identity reference |
| `neutral_landmarks` | [B, 68, 2] float32 | its landmarks |
| `neutral_source` | [B] int32 | 0 a neutral clip of the same speaker, 1 this clip's first frame |
| `emotion` | [B, 9] float32 | the model's emotion input: one-hot over the 8 classes, then the intensity |
| `emotion_index` | [B] int32 | class index in `emotalk_jax.emotions.EMOTIONS` (for classification losses) |
| `intensity` | [B] float32 | in [0, 1] (also the last entry of `emotion`) |
| `emotion_exact` | [B] bool | False where the dataset label was mapped approximately |
| `has_audio` | [B] bool | mask for audio losses |
| `speaker_id` | [B] int32 | stable 31-bit hash (FarmHash) of the dataset-prefixed speaker text |
| `start` | [B] int32 | first frame of the window in its clip |
| `num_frames` | [B] int32 | the clip's length T |
| `clip_id`, `speaker` | [B] bytes | host-side only: `to_global_batch` leaves text out |
| `epoch`, `position` | [B] int64 | bookkeeping for resumption (`InputIterator` removes them) |

Public API: `make_dataset` (the tf.data pipeline), `InputIterator` (resumable; numpy or global
batches), `make_mesh`, `to_global_batch`, `process_split`, `clip_length_stats`, `get_builder`,
`hide_gpus_from_tensorflow`.

Design:
* **Windows.** Clip i of epoch e gets the window start ~ U{0, ..., T-K}, drawn with a stateless RNG
  keyed by (seed, e, i), where i is the clip's index in this process's split. Only the K JPEG frames
  of the window are decoded (frames are read with `tfds.decode.SkipDecoding`). Frame j of a window
  is frame start + j of the clip, and so are `landmarks[j]`, `mel[j]` (the mel window centred on it)
  and `detected[j]`. Clips shorter than K are dropped by default (`clip_length_stats` counts them);
  `short_clips="pad"` keeps them instead, repeating the last frame and marking the padding False in
  `frame_mask`.
* **Shuffling and determinism.** Epoch e shuffles the (already windowed, so small) examples with a
  buffer of `shuffle_buffer` and a seed derived from (seed, e); the order on disk is already random
  (TFDS shuffles examples when it writes them), files are read in a fixed order. Everything is a
  function of the seed: the same seed gives the same batches, run after run
  (`tf.data.Options().deterministic = True`). A global `tf.random.set_seed` would change the
  shuffle, so leave it unset (or set it the same way every run).
* **Speaker balance** (`balance_speakers=True`). An epoch then draws the same number of windows,
  q = ceil(clips / speakers), from every speaker of this process's part of the split, whatever
  their number of clips: a speaker with n clips gives each of them q // n windows, and q % n of
  them (chosen with a stateless RNG keyed by (seed, epoch, speaker)) one more, each window with its
  own random start. The clips' speakers are read once when the pipeline is made (one pass over the
  split's `speaker` and `detected` features). The shuffle then mixes the epoch's q x speakers
  windows; a buffer at least that large mixes them completely. Resumption works as without.
* **Multi-host.** Each process reads `tfds.split_for_jax_process(split)` (disjoint, together the
  whole split) and makes batch_size // process_count examples per batch; `to_global_batch` turns the
  local batches into one global `jax.Array` per key, sharded over the mesh's 'data' axis.
* **Resumption.** The stream is a pure function of (seed, epoch, position in epoch): a state is, per
  process, the epoch and the position after the last example handed out. Resuming rebuilds the
  pipeline and skips that many (small, undecoded) examples of that epoch: exact, no shuffle buffer
  saved, and independent of the batch size. See `InputIterator` for saving it with Orbax.
* **TensorFlow never takes a GPU.** Importing this module hides all GPUs from TensorFlow
  (`tf.config.set_visible_devices([], "GPU")`), so that JAX keeps the accelerator memory. Import it
  (or call `hide_gpus_from_tensorflow()`) before anything else initialises TensorFlow's devices.
"""

import hashlib
import importlib
import importlib.util
import logging
import os
from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf


def hide_gpus_from_tensorflow() -> None:
  """Makes every GPU invisible to TensorFlow, which only feeds tf.data (JAX owns the accelerators).

  Harmless where there is no GPU. After TensorFlow has initialised its devices this can no longer
  change anything; then a warning says so if TensorFlow does hold a GPU.
  """
  try:
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError) as e:  # Devices already initialised.
    if tf.config.get_visible_devices("GPU"):
      logging.warning(
          "TensorFlow already initialised and sees a GPU (%s); import "
          "data_pipelines.input_pipeline before using TensorFlow so it stays on the CPU", e)


hide_gpus_from_tensorflow()

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import tensorflow_datasets as tfds

from emotalk_jax import emotions
# pylint: enable=g-import-not-at-top,wrong-import-position

DATA_AXIS = "data"
STATE_FORMAT = "emotalk_input_pipeline/v1"
SHORT_CLIP_MODES = ("drop", "pad")
# Features the pipeline reads; others a builder may add are not even parsed.
_FEATURES = ("clip_id", "frames", "landmarks", "mel", "has_audio", "detected", "emotion",
             "intensity", "emotion_exact", "speaker", "neutral_frame", "neutral_landmarks",
             "neutral_source")
# Settings that fix the order of the stream: a state only resumes a pipeline with the same ones.
_STATE_KEYS = ("dataset", "split", "seed", "window", "shuffle", "shuffle_buffer", "short_clips",
               "process_count", "balance_speakers")
# Values of settings a saved state may lack (states from before the setting existed).
_STATE_DEFAULTS = {"balance_speakers": False}
# Optional features, read when the dataset has them.
_OPTIONAL_FEATURES = ("speech",)
_DEFAULT_SHUFFLE_BUFFER = 1024
# Tags that separate the random streams derived from the seed.
_WINDOW_TAG, _SHUFFLE_TAG, _BALANCE_TAG = 1, 2, 3


# Builders -----------------------------------------------------------------------------------------

def get_builder(builder_or_name, data_dir=None) -> tfds.core.DatasetBuilder:
  """A TFDS builder from a builder, a dataset name ('mead', 'mead/<config>:1.0.0': the builders of
  `data_pipelines/<name>/` are imported on demand, any other registered name works too) or the
  directory of a prepared dataset version (read without its builder class)."""
  if isinstance(builder_or_name, tfds.core.DatasetBuilder):
    return builder_or_name
  name = os.fspath(builder_or_name)
  if os.path.isfile(os.path.join(name, "dataset_info.json")):
    return tfds.builder_from_directory(name)
  package = name.split(":")[0].split("/")[0]
  if package.isidentifier() and importlib.util.find_spec(f"data_pipelines.{package}") is not None:
    importlib.import_module(f"data_pipelines.{package}")  # Registers its builder.
  return tfds.builder(name, data_dir=data_dir)


def _check_features(builder) -> None:
  have = set(builder.info.features.keys())
  missing = [k for k in _FEATURES if k not in have]
  if missing:
    raise ValueError(f"dataset {builder.info.full_name} lacks feature(s) {', '.join(missing)}; "
                     "expected the format of data_pipelines.features")


def _optional_features(builder) -> tuple:
  have = set(builder.info.features.keys())
  return tuple(k for k in _OPTIONAL_FEATURES if k in have)


def _decoders(optional=()):
  # Parse only the features used; keep the images encoded until the window is chosen and shuffled.
  return tfds.decode.PartialDecoding({k: True for k in _FEATURES + tuple(optional)},
                                     decoders={"frames": tfds.decode.SkipDecoding(),
                                               "neutral_frame": tfds.decode.SkipDecoding()})


def process_split(split: str,
                  process_index: Optional[int] = None,
                  process_count: Optional[int] = None):
  """This process's disjoint part of `split` (all parts together are the split; sizes differ by
  <= 1)."""
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} is outside [0, {process_count})")
  if process_count == 1:
    return split
  return tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count)


def clip_length_stats(builder_or_name,
                      split: str,
                      window: int,
                      *,
                      data_dir=None,
                      process_index: Optional[int] = None,
                      process_count: Optional[int] = 1) -> dict:
  """Counts the clips of `split` (by default all processes' parts) shorter than `window` frames.

  Parses only each clip's `detected` track, but still reads every record of the split once (TFRecord
  has no index): a trainer logs it once at start, or skips it for big datasets.
  Returns {'num_clips', 'num_short', 'min_frames', 'max_frames', 'total_frames'}.
  """
  builder = get_builder(builder_or_name, data_dir)
  ds = builder.as_dataset(split=process_split(split, process_index, process_count),
                          shuffle_files=False,
                          decoders=tfds.decode.PartialDecoding({"detected": True}))
  lengths = np.fromiter(
      (int(n) for n in ds.map(lambda ex: tf.shape(ex["detected"])[0]).as_numpy_iterator()),
      np.int64)
  return {"num_clips": int(lengths.size), "num_short": int((lengths < window).sum()),
          "min_frames": int(lengths.min() if lengths.size else 0),
          "max_frames": int(lengths.max(initial=0)), "total_frames": int(lengths.sum())}


def test_windows(builder, config, mesh=None) -> "InputIterator":
  """The fixed (unshuffled) windows of `config.test_split` a trainer's evaluation reads: the same
  batches at every evaluation, for every model and baseline scored on them (`config`: test_split,
  eval_batch_size, window, seed)."""
  return InputIterator(builder, config.test_split, batch_size=config.eval_batch_size,
                       window=config.window, seed=config.seed, mesh=mesh, shuffle=False)


def whole_clips(builder_or_name, split: str, features, *, data_dir=None):
  """Yields every clip of `split` in file order as a dict of numpy arrays holding only `features`
  (decoded; names of `data_pipelines.features`; optional ones the dataset lacks are left out): what
  evaluation reads whole, where the training stream reads windows."""
  builder = get_builder(builder_or_name, data_dir)
  have = set(builder.info.features.keys())
  keys = [k for k in features if k in have or k not in _OPTIONAL_FEATURES]
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders=tfds.decode.PartialDecoding({k: True for k in keys}))
  yield from tfds.as_numpy(ds)


# The pipeline -------------------------------------------------------------------------------------

def _fold(key, *data):
  for d in data:
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(d, tf.int64))
  return key


def _root_key(seed: int):
  return tf.constant([seed >> 32 & 0xFFFFFFFF, seed & 0xFFFFFFFF], tf.int64)


def _select_window(ex, *, window: int, key):
  """Gathers the K-frame window (frames still JPEG bytes) and the clip-level labels of one clip."""
  num_frames = tf.shape(ex["landmarks"])[0]
  tracks = ("frames", "mel", "detected") + (("speech",) if "speech" in ex else ())
  same_length = tf.reduce_all(tf.stack([tf.shape(ex[k])[0] == num_frames for k in tracks]))
  check = tf.debugging.Assert(
      same_length, ["frames, landmarks, mel and detected differ in length in clip", ex["clip_id"]])
  with tf.control_dependencies([check]):
    num_starts = tf.maximum(num_frames - window, 0) + 1
  start = tf.random.stateless_uniform([], seed=key, minval=0, maxval=num_starts, dtype=tf.int32)
  idx = start + tf.range(window)
  frame_mask = idx < num_frames
  idx = tf.minimum(idx, num_frames - 1)  # Padding (short_clips="pad") repeats the last frame.
  emotion_index = tf.cast(ex["emotion"], tf.int32)
  intensity = tf.cast(ex["intensity"], tf.float32)
  extra = {}
  if "speech" in ex:
    extra["speech"] = tf.cast(tf.gather(ex["speech"], idx), tf.float32)
  return {
      **extra,
      "frames": tf.gather(ex["frames"], idx),
      "landmarks": tf.gather(ex["landmarks"], idx),
      "mel": tf.gather(ex["mel"], idx),
      "detected": tf.gather(ex["detected"], idx) & frame_mask,
      "frame_mask": frame_mask,
      "neutral_frame": ex["neutral_frame"],
      "neutral_landmarks": ex["neutral_landmarks"],
      "neutral_source": tf.cast(ex["neutral_source"], tf.int32),
      "emotion": tf.concat([tf.one_hot(emotion_index, emotions.NUM_EMOTIONS, dtype=tf.float32),
                            intensity[None]], axis=0),
      "emotion_index": emotion_index,
      "intensity": intensity,
      "emotion_exact": ex["emotion_exact"],
      "has_audio": ex["has_audio"],
      "speaker_id": tf.cast(tf.strings.to_hash_bucket_fast(ex["speaker"], 2**31 - 1), tf.int32),
      "start": start,
      "num_frames": num_frames,
      "clip_id": ex["clip_id"],
      "speaker": ex["speaker"],
  }


def _decode_image(encoded):
  return tf.io.decode_image(encoded, channels=3, expand_animations=False)  # JPEG or PNG.


def _decode_images(ex, *, window: int, frame_shape):
  frames = tf.map_fn(_decode_image,
                     ex["frames"],
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
  frames.set_shape([window, *frame_shape])
  neutral = _decode_image(ex["neutral_frame"])
  neutral.set_shape(frame_shape)
  return {**ex, "frames": frames, "neutral_frame": neutral}


def make_dataset(builder_or_name,
                 split: str,
                 *,
                 batch_size: int,
                 window: int,
                 seed: int,
                 shuffle: bool = True,
                 repeat: bool = True,
                 data_dir=None,
                 process_index: Optional[int] = None,
                 process_count: Optional[int] = None,
                 shuffle_buffer: int = _DEFAULT_SHUFFLE_BUFFER,
                 short_clips: str = "drop",
                 drop_remainder: bool = True,
                 start_epoch: int = 0,
                 start_position: int = 0,
                 balance_speakers: bool = False) -> tf.data.Dataset:
  """tf.data pipeline of this process's batches of random K-frame windows (see the module
  docstring).

  Args:
    builder_or_name: a TFDS builder, a registered dataset name, or a prepared dataset's directory.
    split: TFDS split ('train', 'train[:90%]', ...); each process reads its own part of it.
    batch_size: the GLOBAL batch size; each process makes batch_size // process_count.
    window: K, frames per example.
    seed: fixes the shuffle order and the windows; same seed, same batches.
    shuffle: shuffle the clips each epoch (else they come in the split's order).
    repeat: go on forever (epochs 0, 1, ...); else stop after one epoch.
    data_dir: TFDS data_dir for a dataset given by name.
    process_index, process_count: this process and how many (default: JAX's).
    shuffle_buffer: clips in the shuffle buffer: windows, still JPEG, so about K * 20 kB each at
      256x256.
    short_clips: 'drop' clips with fewer than K frames, or 'pad' them (`frame_mask` marks padding).
    drop_remainder: drop a last partial batch (only matters with repeat=False).
    start_epoch, start_position: start after the first `start_position` examples of epoch
      `start_epoch` (resumption; `InputIterator` sets them from its state).
    balance_speakers: every speaker gives the same number of windows per epoch (see the module
      docstring), instead of one window per clip.

  Returns:
    A dataset of dicts of tensors with a leading local batch axis (keys in the module docstring).
  """
  for name, value in (("batch_size", batch_size), ("window", window), ("shuffle_buffer",
                                                                       shuffle_buffer)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if short_clips not in SHORT_CLIP_MODES:
    raise ValueError(f"short_clips must be one of {SHORT_CLIP_MODES}, got {short_clips!r}")
  if start_epoch < 0 or start_position < 0:
    raise ValueError(f"bad start: epoch {start_epoch}, position {start_position}")
  process_index = jax.process_index() if process_index is None else int(process_index)
  process_count = jax.process_count() if process_count is None else int(process_count)
  if batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} is not divisible by the {process_count} processes")
  local_batch = batch_size // process_count

  builder = get_builder(builder_or_name, data_dir)
  _check_features(builder)
  frame_shape = tuple(builder.info.features["frames"].shape[1:])
  part = process_split(split, process_index, process_count)
  base = builder.as_dataset(
      split=part, shuffle_files=False, decoders=_decoders(_optional_features(builder)),
      read_config=tfds.ReadConfig(try_autocache=False))
  min_frames = window if short_clips == "drop" else 1
  base = base.enumerate().filter(lambda i, ex: tf.shape(ex["landmarks"])[0] >= min_frames)
  if repeat and next(iter(base.take(1)), None) is None:
    raise ValueError(
        f"{builder.info.full_name} {split} (process {process_index} of {process_count}) "
        f"has no clip of at least {min_frames} frames")
  root = _root_key(int(seed))

  if balance_speakers:
    clip_speakers = _clip_speakers(builder, part, min_frames)

    def counts_for(epoch):
      return balanced_counts(clip_speakers, seed=int(seed), epoch=int(epoch))

  def one_epoch(epoch):
    wkey = _fold(root, _WINDOW_TAG, epoch)
    if balance_speakers:
      counts = tf.numpy_function(counts_for, [epoch], tf.int64, stateful=False)
      counts = tf.ensure_shape(counts, [len(clip_speakers)])
      repeated = base.flat_map(lambda i, ex: tf.data.Dataset.range(counts[i]).map(
          lambda j: (i, j, ex)))
      ds = repeated.map(lambda i, j, ex: _select_window(ex, window=window, key=_fold(wkey, i, j)),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
      ds = base.map(lambda i, ex: _select_window(ex, window=window, key=_fold(wkey, i)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle:
      shuffle_seed = tf.random.stateless_uniform([],
                                                 seed=_fold(root, _SHUFFLE_TAG, epoch),
                                                 minval=0,
                                                 maxval=2**62,
                                                 dtype=tf.int64)
      ds = ds.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=False)
    ds = ds.enumerate().skip(
        tf.where(epoch == start_epoch, tf.constant(start_position, tf.int64), 0))
    return ds.map(lambda pos, ex: {**ex, "epoch": epoch, "position": pos})

  end = np.iinfo(np.int64).max if repeat else 1
  ds = tf.data.Dataset.range(start_epoch, end).flat_map(one_epoch)
  ds = ds.map(lambda ex: _decode_images(ex, window=window, frame_shape=frame_shape),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local_batch, drop_remainder=drop_remainder)
  ds = ds.prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options)


def _clip_speakers(builder, part, min_frames: int) -> list:
  """The speaker (bytes) of each clip of `part` in reading order; None for clips left out."""
  ds = builder.as_dataset(split=part, shuffle_files=False,
                          read_config=tfds.ReadConfig(try_autocache=False),
                          decoders=tfds.decode.PartialDecoding({"speaker": True, "detected": True}))
  ds = ds.map(lambda ex: (ex["speaker"], tf.shape(ex["detected"])[0]))
  return [bytes(s) if int(n) >= min_frames else None for s, n in ds.as_numpy_iterator()]


def balanced_counts(clip_speakers, *, seed: int, epoch: int,
                    per_speaker: Optional[int] = None) -> np.ndarray:
  """Windows per clip in one speaker-balanced epoch (see the module docstring).

  Args:
    clip_speakers: [N] the speaker of each clip in reading order; None for a clip left out.
    seed, epoch: fix which clips of a speaker get the extra windows.
    per_speaker: q, windows per speaker and epoch; default ceil(clips / speakers).

  Returns:
    [N] int64 counts; every speaker's clips together get exactly q.
  """
  by_speaker = {}
  for i, s in enumerate(clip_speakers):
    if s is not None:
      by_speaker.setdefault(s, []).append(i)
  counts = np.zeros(len(clip_speakers), np.int64)
  if not by_speaker:
    return counts
  n_clips = sum(len(v) for v in by_speaker.values())
  q = -(-n_clips // len(by_speaker)) if per_speaker is None else int(per_speaker)
  for speaker, clips in by_speaker.items():
    name = speaker if isinstance(speaker, bytes) else speaker.encode()
    tag = int.from_bytes(hashlib.sha256(name).digest()[:8], "little")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, _BALANCE_TAG, int(epoch), tag])
    clips = np.asarray(clips)
    counts[clips] = q // len(clips)
    counts[rng.permutation(clips)[:q % len(clips)]] += 1
  return counts


# JAX side -----------------------------------------------------------------------------------------

def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh named ('data',) over `devices` (default: all devices of all processes).

  Its axis type is Auto, so that jit propagates shardings as in data-parallel training.
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def to_global_batch(local_batch: Mapping[str, Any], mesh: jax.sharding.Mesh) -> dict:
  """This process's numpy batch -> global `jax.Array`s, batch axis sharded over the mesh's 'data'
  axis.

  Every process calls it with its own local batch (the same size everywhere); the global batch is
  the processes' batches in process order. Text arrays (`clip_id`, `speaker`) stay host-side and
  are left out.

  Raises:
    ValueError: the global batch size is not divisible by the number of devices along 'data'.
  """
  if DATA_AXIS not in mesh.shape:
    raise ValueError(f"mesh has no {DATA_AXIS!r} axis (axes: {tuple(mesh.shape)}); use make_mesh()")
  num_data = mesh.shape[DATA_AXIS]
  sharding = NamedSharding(mesh, P(DATA_AXIS))
  out = {}
  for key, x in local_batch.items():
    x = np.asarray(x)
    if x.dtype.kind in "OSU":
      continue
    global_size = x.shape[0] * jax.process_count()
    if global_size % num_data:
      raise ValueError(
          f"global batch size {global_size} ({x.shape[0]} per process x "
          f"{jax.process_count()} processes, key {key!r}) is not divisible by the {num_data} "
          f"devices on the mesh's {DATA_AXIS!r} axis; "
          f"use a batch_size that is a multiple of {num_data}")
    out[key] = jax.make_array_from_process_local_data(sharding, x)
  return out


# Resumable iterator -------------------------------------------------------------------------------

class InputIterator:
  """Iterator over batches whose position can be saved and restored exactly.

  `next(it)` returns this process's numpy batch (mesh=None) or the global batch of `jax.Array`s
  (`to_global_batch`); the bookkeeping keys `epoch` and `position` are removed. Text keys stay in
  the numpy batches only.

  State: `get_state()` returns a JSON-serialisable dict: the settings that fix the stream's order
  (dataset, split, seed, window, shuffle, shuffle_buffer, short_clips, process_count,
  balance_speakers) and, per process index, the epoch and the position in it after the last
  example handed out.
  `set_state(state)` checks the settings and moves to that position; the next batch is the one that
  would have followed (with any batch_size).

  With several processes, `get_state()` gathers every process's position (a collective: call it on
  all processes together, as one does when saving a checkpoint), so the dict is the same on all of
  them and only the primary host needs to write it. With Orbax, save it next to the train state:

  ```python
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(train_state),
                                          data=ocp.args.JsonSave(it.get_state())))
  restored = mngr.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                    data=ocp.args.JsonRestore()))
  it.set_state(restored["data"])
  ```
  """

  def __init__(self,
               builder_or_name,
               split: str,
               *,
               batch_size: int,
               window: int,
               seed: int,
               mesh: Optional[jax.sharding.Mesh] = None,
               data_dir=None,
               process_index: Optional[int] = None,
               process_count: Optional[int] = None,
               state: Optional[Mapping[str, Any]] = None,
               **kwargs):
    """Args as `make_dataset` (whose other keyword arguments pass through `kwargs`), and:

    mesh: give global `jax.Array` batches sharded over this mesh; None: local numpy batches.
    state: start from this `get_state()` dict.
    """
    self._builder = get_builder(builder_or_name, data_dir)
    self._split = split
    self._batch_size = batch_size
    self._window = window
    self._seed = int(seed)
    self._mesh = mesh
    self._process_index = jax.process_index() if process_index is None else int(process_index)
    self._process_count = jax.process_count() if process_count is None else int(process_count)
    self._kwargs = kwargs
    if mesh is not None and DATA_AXIS in mesh.shape and batch_size % mesh.shape[DATA_AXIS]:
      raise ValueError(
          f"batch_size {batch_size} is not divisible by the {mesh.shape[DATA_AXIS]} devices "
          f"on the mesh's {DATA_AXIS!r} axis")
    self._epoch, self._position = 0, 0
    self._iterator = None
    if state is not None:
      self.set_state(state)
    else:
      self._build()  # Fail early on bad arguments.

  def _settings(self) -> dict:
    return {"dataset": self._builder.info.full_name, "split": str(self._split), "seed": self._seed,
            "window": self._window, "shuffle": bool(self._kwargs.get("shuffle", True)),
            "shuffle_buffer": int(self._kwargs.get("shuffle_buffer", _DEFAULT_SHUFFLE_BUFFER)),
            "short_clips": self._kwargs.get("short_clips", "drop"),
            "process_count": self._process_count,
            "balance_speakers": bool(self._kwargs.get("balance_speakers", False))}

  def _build(self):
    ds = make_dataset(self._builder,
                      self._split,
                      batch_size=self._batch_size,
                      window=self._window,
                      seed=self._seed,
                      process_index=self._process_index,
                      process_count=self._process_count,
                      start_epoch=self._epoch,
                      start_position=self._position,
                      **self._kwargs)
    self._iterator = ds.as_numpy_iterator()

  def __iter__(self):
    return self

  def __next__(self):
    if self._iterator is None:
      self._build()
    batch = next(self._iterator)
    epoch, position = batch.pop("epoch"), batch.pop("position")
    self._epoch, self._position = int(epoch[-1]), int(position[-1]) + 1
    return batch if self._mesh is None else to_global_batch(batch, self._mesh)

  def get_state(self) -> dict:
    """JSON-serialisable position of the stream (see the class docstring)."""
    mine = np.array([self._epoch, self._position], np.int64)
    if self._process_count > 1 and jax.process_count() == self._process_count:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      everyone = np.asarray(multihost_utils.process_allgather(mine.astype(np.int32)))
      positions = {
          str(i): {
              "epoch": int(e),
              "position": int(p)
          } for i, (e, p) in enumerate(everyone)
      }
    else:  # One process, or several simulated by passing process_index/process_count.
      positions = {str(self._process_index): {"epoch": int(mine[0]), "position": int(mine[1])}}
    return {"format": STATE_FORMAT, **self._settings(), "positions": positions}

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Continues from a `get_state()` dict (after a JSON round trip too)."""
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
      raise ValueError(f"not an input pipeline state (expected format {STATE_FORMAT!r}): {state!r}")
    ours = self._settings()
    for key in _STATE_KEYS:
      if state.get(key, _STATE_DEFAULTS.get(key)) != ours[key]:
        raise ValueError(
            f"the saved input pipeline state has {key}={state.get(key)!r} but this pipeline "
            f"has {key}={ours[key]!r}; resuming needs the same {', '.join(_STATE_KEYS)}")
    entry = state["positions"].get(str(self._process_index))
    if entry is None:
      raise ValueError(
          f"the saved input pipeline state has no position for process {self._process_index}")
    self._epoch, self._position = int(entry["epoch"]), int(entry["position"])
    self._iterator = None

  # Aliases for trainers that use these names.
  state_dict = get_state
  restore = set_state

"""The shared core of the emotalk TFDS builders: clip -> example, neutral references, skips, splits.

A dataset builder (`data_pipelines/<name>/<name>_dataset_builder.py`) subclasses `EmotalkBuilder`
and implements three things:

* `_check_layout(manual_dir)`: raise `LayoutError` (its message shows the expected layout) when the
  manual_dir is missing or malformed;
* `_scan(manual_dir) -> list[ClipSpec]`: the clips found in the layout, with their labels;
* `_assign_splits(specs) -> {split name: [ClipSpec]}`: speaker-disjoint splits (`speaker_splits`).

Everything else is here:

* one example per clip (`features.features(frame_size)`): `emotalk_jax.media.preprocess` at 25 fps
  (any input rate), optionally only the first `max_frames` frames; a clip without (usable) audio
  keeps `mel` filled with `audio.LOG_MEL_FLOOR` and `has_audio=False`;
* a silent audio track (the clip's own or a wav beside it, peak below `audio.SILENCE_PEAK`, e.g.
  the all-zero tracks of some MEAD driving clips) counts as no audio (`has_audio=False`);
* with `speech=True` in the config, the optional `speech` feature: Whisper tiny.en encoder features
  per frame [T, 384] float16 (zeros without audio), the encoder loaded once per process; with
  `speech_offset_max`, each clip encoded at its own seeded position in the encoder's window
  (`speech_offset`);
* the neutral reference: when the dataset has neutral clips (`label.emotion == 'neutral'` with
  `label.exact`), the speaker's first neutral clip (by clip id) gives it, computed once per speaker
  from its first second of video (`neutral_source='speaker_neutral'`); otherwise this clip's own
  frame (`'first_frame'`). In both cases the frame is the first one where the face was detected;
* clips that fail (no face, undecodable, bad audio, ...) are skipped, never stopping the build; the
  skips are logged and reported in `skipped_clips.json` in the dataset directory and in
  `builder.info.metadata['skipped_clips']` (count per split and every clip with its reason). A split
  in which every clip fails raises instead (that is a setup problem, not bad clips);
* generation in-process, or with Apache Beam when a `beam_runner` or `beam_options` is given in the
  `tfds.download.DownloadConfig` (`tfds build ... --beam_pipeline_options=...`):
  `_generate_examples` then returns a `beam.PTransform` (neutral references computed once per
  speaker, passed to the clip workers as a side input).
"""

import abc
import collections
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import pathlib
import warnings
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import utils as tfds_utils

from data_pipelines import features as features_lib
from data_pipelines.features import ClipSpec
from emotalk_jax.errors import InputError
from emotalk_jax.media import audio
from emotalk_jax.media import preprocess
from emotalk_jax.media import video_io

FPS = 25.0
VIDEO_EXTENSIONS = (".mp4", ".mpg", ".mpeg", ".mov", ".avi", ".mkv", ".webm", ".flv", ".m4v")
# The neutral reference is taken from the first second of the speaker's neutral clip.
NEUTRAL_PREFIX_FRAMES = 25
SKIP_REPORT = "skipped_clips.json"
_SKIP_PART = ".skipped_clips.{split}.json"

log = logging.getLogger("emotalk.data")


class LayoutError(InputError):
  """The manual_dir (or a folder/CSV given to a builder) is missing or does not have the expected
  layout."""


def layout_error(path, problem: str, expected: str) -> LayoutError:
  return LayoutError(path, f"{problem}\nExpected layout:\n{expected.rstrip()}")


# ----------------------------------------------------------------------------------------------
# Config.

# Seconds: the largest `speech_offset_max` (a 5 s clip then still ends by 27.5 s into the window,
# the last position `whisper.speech_features` reads a frame of a long speech from).
SPEECH_OFFSET_LIMIT = 22.5


@dataclasses.dataclass(eq=False)
class EmotalkConfig(tfds.core.BuilderConfig):
  """Options every emotalk builder has.

  Attributes:
    frame_size: side of the aligned face crops (128 or 256).
    max_frames: keep only the first this many frames (at 25 fps) of each clip; None keeps all.
    face_index: which face when a clip shows several (0 = largest).
    test_speakers: speakers (ids without the dataset prefix, e.g. 'M003') put in the test split.
    validation_speakers: speakers put in the validation split.
    test_fraction: share of the remaining speakers put in test (deterministic by speaker id).
    validation_fraction: share of the remaining speakers put in validation.
    single_split: when set (e.g. 'test'), every clip goes to this one split and the speaker options
      are ignored: for datasets used only to test a model trained elsewhere.
    speech: also store the `speech` feature: Whisper tiny.en encoder features per frame, [T, 384]
      float16 (zeros without audio). Costs about 1.3 s of CPU per clip of up to 22 s (one 30 s
      encoder window) on top of preprocessing; the encoder is loaded once per build process.
    speech_offset_max: seconds; with `speech`, each clip's audio is encoded as if it began up to
      this far into a longer recording (after silence; `speech_offset`), instead of at the start of
      the encoder's 30 s window. Whisper's features depend on where in its window a sound falls,
      and generation reads a long speech's frames from anywhere in the first 27.5 s of a window:
      a network trained only on short clips at the window's start follows the mouth less well
      further in (docs/results.md#where-the-speech-falls-in-whispers-window).
  """
  frame_size: int = features_lib.FRAME_SIZE
  max_frames: int | None = None
  face_index: int = 0
  test_speakers: tuple = ()
  validation_speakers: tuple = ()
  test_fraction: float = 0.0
  validation_fraction: float = 0.0
  single_split: str = ""
  speech: bool = False
  speech_offset_max: float = 0.0

  def __post_init__(self):
    if self.frame_size not in (128, 256):
      raise ValueError(f"frame_size must be 128 or 256, got {self.frame_size}")
    if self.max_frames is not None and int(self.max_frames) < 1:
      raise ValueError(f"max_frames must be at least 1 or None, got {self.max_frames}")
    if not 0.0 <= float(self.speech_offset_max) <= SPEECH_OFFSET_LIMIT:
      raise ValueError(f"speech_offset_max must be in [0, {SPEECH_OFFSET_LIMIT}] seconds, got "
                       f"{self.speech_offset_max}")
    # JSON configs (`tfds build --config '{...}'`) give lists.
    self.test_speakers = tuple(self.test_speakers)
    self.validation_speakers = tuple(self.validation_speakers)


@dataclasses.dataclass(frozen=True)
class ProcessOptions:
  """What clip processing needs (picklable, so Beam workers get it)."""
  frame_size: int = features_lib.FRAME_SIZE
  max_frames: int | None = None
  face_index: int = 0
  speech: bool = False
  speech_offset_max: float = 0.0


# ----------------------------------------------------------------------------------------------
# Clip -> example.


@dataclasses.dataclass(frozen=True)
class NeutralRef:
  """The identity reference: one aligned crop [S, S, 3] uint8 and its landmarks [68, 2] in [-1,
  1]."""
  frame: np.ndarray
  landmarks: np.ndarray
  clip_id: str


def _reference_index(detected: np.ndarray) -> int:
  """The first frame where the face was detected (0 if none was: then all are filled)."""
  hits = np.flatnonzero(np.asarray(detected))
  return int(hits[0]) if hits.size else 0


def _quiet_preprocess(video: video_io.Video,
                      opts: ProcessOptions,
                      audio_path=None) -> preprocess.Clip:
  """`preprocess.preprocess_decoded` with its 'no audio' warnings turned into debug logs."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    clip = preprocess.preprocess_decoded(video, size=opts.frame_size, face_index=opts.face_index,
                                         audio_path=audio_path)
  for w in caught:
    log.debug("%s", w.message)
  return clip


def is_silent_file(path) -> bool:
  """Whether an audio file is digital silence (peak |x| below `audio.SILENCE_PEAK`, -80 dBFS).

  Raises:
    InputError: the file cannot be read (or has no audio stream).
  """
  wave = audio.load_audio(path, allow_silent=True)
  return not float(np.max(np.abs(wave), initial=0.0)) >= audio.SILENCE_PEAK


def preprocess_clip(spec: ClipSpec, opts: ProcessOptions) -> preprocess.Clip:
  """Decodes (at 25 fps, first `max_frames` frames), tracks, aligns and crops one clip; mel when it
  has audio.

  A silent audio track (the video's own or the wav beside it: peak below `audio.SILENCE_PEAK`, e.g.
  all zeros) counts as no audio: the clip is kept with `mel=None` (has_audio False).

  Raises:
    InputError (or another exception from decoding): the clip cannot be used.
  """
  audio_path = spec.audio_path
  if audio_path is not None and is_silent_file(audio_path):
    log.info("%s: %s is silent; the clip has no audio", spec.clip_id, audio_path)
    audio_path = None
    video = video_io.read_video(spec.video_path, fps=FPS, max_frames=opts.max_frames,
                                with_audio=False)
  else:
    video = video_io.read_video(spec.video_path, fps=FPS, max_frames=opts.max_frames,
                                with_audio=audio_path is None)
  return _quiet_preprocess(video, opts, audio_path=audio_path)


@functools.lru_cache(maxsize=1)
def speech_encoder():
  """(params, config) of the Whisper tiny.en encoder, loaded once per process."""
  from emotalk_jax.models import whisper_weights  # pylint: disable=import-outside-toplevel
  return whisper_weights.load_encoder()


def speech_offset(clip_id: str, offset_max: float) -> int:
  """Video frames (40 ms) of silence before clip `clip_id`'s audio when it is encoded: uniform in
  [0, offset_max) seconds, the same in every build (seeded by the clip id)."""
  frames = int(round(float(offset_max) * audio.FPS))
  if frames <= 0:
    return 0
  seed = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "little")
  return int(np.random.default_rng(seed).integers(frames))


def speech_track(clip: preprocess.Clip, offset_frames: int = 0) -> np.ndarray:
  """The `speech` feature of a preprocessed clip: [T, 384] float16, zeros when it has no audio.

  Whisper features of the clip's 16 kHz wave cut to its T frames (T * 40 ms), encoded after
  `offset_frames` frames of silence (`speech_offset`: where in the encoder's window the clip falls)
  and read from there; frames past the end of the audio are zero.
  """
  from emotalk_jax.models import whisper  # pylint: disable=import-outside-toplevel
  t = len(clip.frames)
  out = np.zeros((t, features_lib.SPEECH_DIM), np.float16)
  if clip.mel is None or clip.audio is None:
    return out
  params, config = speech_encoder()
  samples_per_frame = whisper.SAMPLE_RATE // whisper.FPS
  wave = np.asarray(clip.audio, np.float32)[:t * samples_per_frame]
  wave = np.concatenate([np.zeros(offset_frames * samples_per_frame, np.float32), wave])
  feats = whisper.speech_features(wave, params, config)[offset_frames:offset_frames + t]
  out[:len(feats)] = feats.astype(np.float16)
  return out


def neutral_reference(spec: ClipSpec, opts: ProcessOptions) -> NeutralRef:
  """The reference frame of a neutral clip, from its first second."""
  video = video_io.read_video(spec.video_path,
                              fps=FPS,
                              max_frames=NEUTRAL_PREFIX_FRAMES,
                              with_audio=False)
  clip = _quiet_preprocess(video, opts)
  i = _reference_index(clip.detected)
  return NeutralRef(clip.frames[i], clip.landmarks[i].astype(np.float32), spec.clip_id)


def speaker_reference(speaker: str, candidates: Sequence[ClipSpec],
                      opts: ProcessOptions) -> NeutralRef | None:
  """The first of a speaker's neutral clips that preprocesses, or None (then clips use their own
  frame)."""
  for spec in candidates:
    try:
      return neutral_reference(spec, opts)
    except Exception as e:  # pylint: disable=broad-except
      log.warning("neutral clip %s of speaker %s cannot be used as reference (%s); trying the next",
                  spec.clip_id, speaker, _reason(e))
  if candidates:
    log.warning("speaker %s: no usable neutral clip; its clips use their own first frame", speaker)
  return None


def make_example(spec: ClipSpec, clip: preprocess.Clip, ref: NeutralRef | None,
                 speech: np.ndarray | None = None) -> dict:
  """A preprocessed clip -> the feature dict of `features.features()`.

  Args:
    spec: the clip's record.
    clip: the preprocessed clip.
    ref: the speaker's neutral reference, or None (then the clip's own first detected frame).
    speech: [T, 384] Whisper features to store as `speech` (configs with speech=True), or None.
  """
  t = len(clip.frames)
  has_audio = clip.mel is not None
  mel = clip.mel if has_audio else np.full(
      (t, audio.MEL_WINDOW, audio.N_MELS), audio.LOG_MEL_FLOOR, np.float32)
  if ref is None:
    i = _reference_index(clip.detected)
    ref = NeutralRef(clip.frames[i], clip.landmarks[i], spec.clip_id)
    source = "first_frame"
  else:
    source = "speaker_neutral"
  extra = {} if speech is None else {"speech": np.asarray(speech, np.float16)}
  return {
      **extra,
      "clip_id": spec.clip_id,
      "frames": clip.frames,
      "landmarks": clip.landmarks.astype(np.float32),
      "mel": mel.astype(np.float32),
      "has_audio": has_audio,
      "detected": clip.detected.astype(bool),
      "emotion": spec.label.emotion,
      "intensity": np.float32(spec.label.intensity),
      "emotion_exact": bool(spec.label.exact),
      "speaker": spec.speaker,
      "dataset": spec.dataset,
      "neutral_frame": ref.frame,
      "neutral_landmarks": np.asarray(ref.landmarks, np.float32),
      "neutral_source": source,
      "fps": np.float32(clip.fps),
  }


def _reason(e: BaseException) -> str:
  if isinstance(e, InputError):
    return e.problem
  return f"{type(e).__name__}: {e}"


def skip_record(spec: ClipSpec, split: str, e: BaseException) -> dict:
  return {"clip_id": spec.clip_id, "split": split, "video_path": str(spec.video_path),
          "audio_path": None if spec.audio_path is None else str(spec.audio_path),
          "error": type(e).__name__, "reason": _reason(e)}


def process_spec(spec: ClipSpec, opts: ProcessOptions, ref: NeutralRef | None) -> tuple[str, dict]:
  clip = preprocess_clip(spec, opts)
  speech = (speech_track(clip, speech_offset(spec.clip_id, opts.speech_offset_max))
            if opts.speech else None)
  return spec.clip_id, make_example(spec, clip, ref, speech)


# ----------------------------------------------------------------------------------------------
# Neutral candidates and splits.


def neutral_candidates(specs: Iterable[ClipSpec]) -> dict[str, list[ClipSpec]]:
  """{speaker: their exact-neutral clips, by clip id}: the default reference candidates."""
  out = collections.defaultdict(list)
  for s in specs:
    if s.label.emotion == "neutral" and s.label.exact:
      out[s.speaker].append(s)
  return {k: sorted(v, key=lambda s: s.clip_id) for k, v in out.items()}


def _speaker_rank(speaker: str, salt: str) -> str:
  return hashlib.sha256(f"{salt}:{speaker}".encode()).hexdigest()


def speaker_splits(
    speakers: Iterable[str],
    *,
    test: Sequence[str] = (),
    validation: Sequence[str] = (),
    train: Sequence[str] = (),
    test_fraction: float = 0.0,
    validation_fraction: float = 0.0,
    salt: str = "emotalk",
    strict: bool = False,
) -> dict[str, str]:
  """Speaker-disjoint split assignment: {speaker: 'train' | 'validation' | 'test'}.

  Speakers named in `test` / `validation` go there. Of the rest, ceil(fraction * n) go to test (then
  validation), taken in the order of sha256(salt:speaker): deterministic, independent of the input
  order, and a speaker keeps its split while others are added as long as the counts do not change.
  A fraction above 0 always takes at least one speaker (when any is left). Everything else is train.

  Args:
    speakers: the speaker ids (duplicates are fine).
    test, validation, train: explicit speaker lists (a published protocol, a CSV's split column).
      Matching is on the full id or on the id without its dataset prefix ('mead/M003' matches
      'M003').
    strict: raise if a listed speaker is not among `speakers`.
  """
  speakers = sorted(set(speakers))
  for name, frac in (("test_fraction", test_fraction), ("validation_fraction",
                                                        validation_fraction)):
    if not 0.0 <= frac < 1.0:
      raise ValueError(f"{name} must be in [0, 1), got {frac}")

  def short(s):
    return s.split("/", 1)[-1]

  lists = {"test": set(test), "validation": set(validation), "train": set(train)}
  for a, b in (("test", "validation"), ("test", "train"), ("validation", "train")):
    overlap = lists[a] & lists[b]
    if overlap:
      raise ValueError(f"speakers listed both for {a} and {b}: {sorted(overlap)}")
  assigned = {}
  for split, names in (("test", test), ("validation", validation), ("train", train)):
    wanted = set(names)
    for s in speakers:
      if s in wanted or short(s) in wanted:
        assigned[s] = split
    if strict:
      found = {s for s in speakers if assigned.get(s) == split
              } | {short(s) for s in speakers if assigned.get(s) == split}
      missing = sorted(wanted - found)
      if missing:
        raise ValueError(f"{split} speakers not found in the data: {missing}")
  rest = sorted((s for s in speakers if s not in assigned), key=lambda s: _speaker_rank(s, salt))
  n = len(rest)
  for split, frac in (("test", test_fraction), ("validation", validation_fraction)):
    k = min(len(rest), max(1, math.ceil(frac * n))) if frac > 0 else 0
    for s in rest[:k]:
      assigned[s] = split
    rest = rest[k:]
  for s in rest:
    assigned[s] = "train"
  return assigned


def group_by_split(specs: Iterable[ClipSpec],
                   assignment: Mapping[str, str]) -> dict[str, list[ClipSpec]]:
  """Specs grouped by the split of their speaker, each sorted by clip id; empty splits left out."""
  out = collections.defaultdict(list)
  for s in specs:
    out[assignment[s.speaker]].append(s)
  return {k: sorted(v, key=lambda s: s.clip_id) for k, v in sorted(out.items())}


def check_unique_ids(specs: Sequence[ClipSpec], where) -> None:
  seen = {}
  for s in specs:
    if s.clip_id in seen:
      raise InputError(where,
                       f"two clips get the id {s.clip_id!r}: {seen[s.clip_id]} and {s.video_path}")
    seen[s.clip_id] = s.video_path


def is_inside(path, root) -> bool:
  """Whether `path` (after resolving links and '..') lies inside the folder `root`."""
  try:
    pathlib.Path(path).resolve().relative_to(pathlib.Path(root).resolve())
    return True
  except ValueError:
    return False


# ----------------------------------------------------------------------------------------------
# Generation: in-process and Beam.


def generate_in_process(specs: Sequence[ClipSpec], candidates: Mapping[str, Sequence[ClipSpec]],
                        opts: ProcessOptions, split: str,
                        skipped: list) -> Iterator[tuple[str, dict]]:
  """Yields (clip_id, example) for every clip that preprocesses; appends a record per failure to
  `skipped`."""
  refs = {}
  n_ok = 0
  n_failed = 0
  for spec in specs:
    if spec.speaker not in refs:
      refs[spec.speaker] = speaker_reference(spec.speaker, candidates.get(spec.speaker, ()), opts)
    try:
      key, example = process_spec(spec, opts, refs[spec.speaker])
    except Exception as e:  # pylint: disable=broad-except
      record = skip_record(spec, split, e)
      log.warning("skipping %s (%s): %s", spec.clip_id, spec.video_path, record["reason"])
      skipped.append(record)
      n_failed += 1
      continue
    n_ok += 1
    yield key, example
  if n_ok == 0 and n_failed:
    raise RuntimeError(f"split {split!r}: all {n_failed} clips failed; first: "
                       f"{skipped[-n_failed]['video_path']}: {skipped[-n_failed]['reason']}")


def _beam_reference(item, opts):
  speaker, candidates = item
  return speaker, speaker_reference(speaker, candidates, opts)


def _beam_process(spec, opts, split, refs):
  beam = tfds.core.lazy_imports_lib.lazy_imports.apache_beam
  try:
    yield process_spec(spec, opts, refs.get(spec.speaker))
  except Exception as e:  # pylint: disable=broad-except
    record = skip_record(spec, split, e)
    log.warning("skipping %s (%s): %s", spec.clip_id, spec.video_path, record["reason"])
    yield beam.pvalue.TaggedOutput("skipped", record)


def _beam_write_skips(records, path):
  epath.Path(path).write_text(json.dumps(sorted(records, key=lambda r: r["clip_id"]), indent=1))


def beam_transform(specs: Sequence[ClipSpec], candidates: Mapping[str, Sequence[ClipSpec]],
                   opts: ProcessOptions, split: str, skip_part_path):
  """The Beam version of `generate_in_process`: a PTransform from the pipeline to (key, example)
  pairs.

  The skip records of the split are written (as one JSON list) to `skip_part_path`.
  """
  beam = tfds.core.lazy_imports_lib.lazy_imports.apache_beam
  speakers = sorted({s.speaker for s in specs})
  speaker_candidates = [(sp, list(candidates.get(sp, ()))) for sp in speakers]
  specs = list(specs)
  skip_part_path = os.fspath(skip_part_path)

  class _Generate(beam.PTransform):

    def expand(self, pbegin):
      refs = (pbegin
              | "speakers" >> beam.Create(speaker_candidates)
              | "neutral_reference" >> beam.Map(_beam_reference, opts))
      results = (pbegin | "clips" >> beam.Create(specs) | "reshuffle" >> beam.Reshuffle() |
                 "preprocess" >> beam.FlatMap(_beam_process, opts, split, beam.pvalue.AsDict(
                     refs)).with_outputs("skipped", main="examples"))
      _ = (results.skipped
           | "collect_skipped" >> beam.combiners.ToList()
           | "write_skipped" >> beam.Map(_beam_write_skips, skip_part_path))
      return results.examples

  return _Generate()


# ----------------------------------------------------------------------------------------------
# The base builder.


class EmotalkBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the emotalk builders: see the module docstring for what a subclass implements."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  # Dataset tag written in `dataset` and used as speaker prefix.
  DATASET = ""
  HOMEPAGE = ""
  # Whether the speaker's neutral clip gives the reference (datasets with neutral clips per
  # speaker).
  SPEAKER_NEUTRAL = True

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._use_beam = False
    self._skipped = []

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """The builder's file (README.md, CITATIONS.bib and checksums.tsv are read beside it).

    TFDS 4.9.10's own version goes through `importlib_resources`, which it does not declare as a
    dependency; the file of the class is what it computes for a plain package anyway.
    """
    return epath.Path(inspect.getfile(cls))

  # To implement. ------------------------------------------------------------------------------

  @abc.abstractmethod
  def _check_layout(self, manual_dir: pathlib.Path) -> None:
    """Raises LayoutError (with the expected layout) when `manual_dir` is missing or malformed."""

  @abc.abstractmethod
  def _scan(self, manual_dir: pathlib.Path) -> list[ClipSpec]:
    """The clips of the layout."""

  def _assign_splits(self, specs: Sequence[ClipSpec]) -> dict[str, list[ClipSpec]]:
    """Speaker-disjoint splits from the config's speaker lists and fractions (override for other
    rules).

    With `single_split` set in the config, every clip goes to that split (cross-dataset testing).
    """
    c = self.builder_config
    if c.single_split:
      return {c.single_split: sorted(specs, key=lambda s: s.clip_id)}
    present = {s.speaker for s in specs} | {s.speaker.split("/", 1)[-1] for s in specs}
    for split, names in (("test", c.test_speakers), ("validation", c.validation_speakers)):
      missing = sorted(set(names) - present)
      if missing:
        log.warning("%s: %s speakers %s are not in the data (their split gets no clips from them)",
                    self.name, split, missing)
    assignment = speaker_splits((s.speaker for s in specs),
                                test=c.test_speakers,
                                validation=c.validation_speakers,
                                test_fraction=c.test_fraction,
                                validation_fraction=c.validation_fraction,
                                salt=self.name)
    return group_by_split(specs, assignment)

  def _neutral_candidates(self, specs: Sequence[ClipSpec]) -> dict[str, list[ClipSpec]]:
    return neutral_candidates(specs) if self.SPEAKER_NEUTRAL else {}

  # Shared. ------------------------------------------------------------------------------------

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=features_lib.features(self.builder_config.frame_size,
                                       speech=bool(getattr(self.builder_config, "speech", False))),
        homepage=self.HOMEPAGE or None,
        metadata=tfds.core.MetadataDict(),
    )

  @property
  def _process_options(self) -> ProcessOptions:
    c = self.builder_config
    return ProcessOptions(frame_size=c.frame_size, max_frames=c.max_frames, face_index=c.face_index,
                          speech=bool(c.speech), speech_offset_max=float(c.speech_offset_max))

  def _manual_root(self, dl_manager) -> pathlib.Path:
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError as e:  # TFDS: the manual_dir does not exist / is empty.
      where = getattr(dl_manager, "_manual_dir", None) or "manual_dir"
      problem = "manual_dir does not exist or is empty" if "does not exist" in str(e) else str(e)
      raise layout_error(where, problem, self.MANUAL_DOWNLOAD_INSTRUCTIONS) from None
    return pathlib.Path(os.fspath(manual_dir))

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    self._check_layout(root)
    specs = self._scan(root)
    if not specs:
      raise layout_error(root, "no clips found", self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    check_unique_ids(specs, root)
    splits = self._assign_splits(specs)
    candidates = self._neutral_candidates(specs)
    counts = {k: len(v) for k, v in splits.items()}
    log.info("%s: %d clips, %d speakers; splits %s", self.name, len(specs),
             len({s.speaker for s in specs}), counts)
    return {
        split: self._generate_examples(split_specs, candidates, split)
        for split, split_specs in splits.items()
    }

  def _generate_examples(self, specs, candidates, split):
    """In-process: a generator of (clip_id, example). With Beam: a PTransform producing the same."""
    opts = self._process_options
    if self._use_beam:
      return beam_transform(specs, candidates, opts, split,
                            self.data_path / _SKIP_PART.format(split=split))
    return generate_in_process(specs, candidates, opts, split, self._skipped)

  def _download_and_prepare(self, dl_manager, download_config):
    self._use_beam = bool(download_config.beam_runner or download_config.beam_options)
    self._skipped = []
    super()._download_and_prepare(dl_manager, download_config)
    records = list(self._skipped)
    for part in sorted(self.data_path.glob(_SKIP_PART.format(split="*"))):
      records += json.loads(part.read_text())
      part.unlink()
    records.sort(key=lambda r: (r["split"], r["clip_id"]))
    per_split = collections.Counter(r["split"] for r in records)
    report = {
        "num_skipped": len(records),
        "per_split": dict(sorted(per_split.items())),
        "skipped": records
    }
    (self.data_path / SKIP_REPORT).write_text(json.dumps(report, indent=1))
    self.info.metadata["skipped_clips"] = report
    if records:
      log.warning("%s: skipped %d clip(s) (%s); reasons in %s", self.name, len(records),
                  ", ".join(f"{k}: {v}" for k, v in sorted(per_split.items())),
                  self.data_path / SKIP_REPORT)
      for r in records:
        log.warning("  skipped %s [%s]: %s", r["clip_id"], r["split"], r["reason"])
    else:
      log.info("%s: no clip skipped", self.name)


def read_skip_report(builder: tfds.core.DatasetBuilder) -> dict:
  """The skip report of a prepared dataset ({'num_skipped', 'per_split', 'skipped': [records]})."""
  return json.loads((epath.Path(builder.data_dir) / SKIP_REPORT).read_text())

"""Tiny TFDS datasets in the emotalk example format, made from examples held in memory (a test
helper).

The clips of the shared fixtures in conftest.py (`dataset_dir`, `pipeline_dataset`) are defined
here: pseudo-clips cut from the bundled GRID clip preprocessed at SIZE x SIZE.
"""

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import features

SIZE = 64
# The trainers' dataset. clip_id, first and end frame in the GRID clip, emotion, intensity, speaker,
# has_audio, split.
CUTS = [
    ("t0_angry", 0, 20, "angry", 1.0, "grid/s1", True, "train"),
    ("t1_happy", 15, 40, "happy", 2 / 3, "grid/s2", True, "train"),
    ("t2_sad", 30, 55, "sad", 1 / 3, "grid/s1", False, "train"),
    ("t3_neutral", 40, 75, "neutral", 1.0, "grid/s2", True, "train"),
    ("t4_surprised", 5, 35, "surprised", 1.0, "grid/s3", True, "train"),
    ("e0_fear", 50, 75, "fear", 1.0, "grid/s4", True, "test"),
    ("e1_disgusted", 0, 30, "disgusted", 0.5, "grid/s4", True, "test"),
]
# The input pipeline's dataset (one split): clip_id, first and end frame, emotion, intensity,
# speaker, has_audio; plus INDEX_CLIP, a synthetic clip whose frames, landmarks and mel encode the
# frame index.
PIPELINE_CUTS = [
    ("c0_angry", 0, 20, "angry", 1.0, "grid/s1", True),
    ("c1_happy", 20, 45, "happy", 2 / 3, "grid/s2", True),
    ("c2_sad_silent", 45, 75, "sad", 1 / 3, "grid/s1", False),
    ("c3_short", 10, 16, "fear", 1.0, "grid/s3", True),
    ("c4_neutral", 30, 70, "neutral", 2 / 3, "grid/s2", True),
    ("c5_surprised", 5, 55, "surprised", 1.0, "grid/s3", True),
    ("c6_contempt", 60, 75, "contempt", 1 / 3, "grid/s1", True),
]
INDEX_CLIP, INDEX_LEN = "c7_index", 40
SHORT = {"c3_short"}  # Shorter than the pipeline tests' window of 8.

with tfds.core.registered.skip_registration():

  class InMemoryClips(tfds.core.GeneratorBasedBuilder):
    """Writes `sources` ({split: {clip_id: example dict}}) as they are, frames JPEG-encoded by
    TFDS."""
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, sources, frame_size: int, speech: bool = False, **kwargs):
      self._sources = sources
      self._frame_size = frame_size
      self._speech = speech
      super().__init__(**kwargs)

    def _info(self):
      feats = features.features(frame_size=self._frame_size, speech=self._speech)
      return tfds.core.DatasetInfo(builder=self, features=feats)

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(split) for split in self._sources}

    def _generate_examples(self, split):
      for clip_id, example in self._sources[split].items():
        yield clip_id, dict(example)


def build(sources, data_dir, frame_size: int, speech: bool = False) -> tfds.core.DatasetBuilder:
  """Prepares a dataset of `sources` ({split: {clip_id: example}}) under `data_dir`.

  With `speech`, the examples must hold the optional `speech` feature too ([T, 384] float16).
  """
  builder = InMemoryClips(sources=sources, frame_size=frame_size, speech=speech,
                          data_dir=str(data_dir))
  builder.download_and_prepare()
  return builder


def preprocessed_grid():
  """The bundled GRID clip preprocessed at SIZE x SIZE (frames, landmarks, mel, detected)."""
  from emotalk_jax import bundled  # pylint: disable=g-import-not-at-top
  from emotalk_jax.media import preprocess  # pylint: disable=g-import-not-at-top
  return preprocess.preprocess_video(bundled.GRID_CLIP, size=SIZE)


def example(clip_id, frames, landmarks, mel, detected, *, emotion="neutral", intensity=1.0,
            speaker="s", has_audio=True, emotion_exact=True):
  """One example dict as the builder writes it; the neutral frame is the first."""
  return dict(clip_id=clip_id, dataset="test", fps=25.0, emotion_exact=emotion_exact, frames=frames,
              landmarks=landmarks, mel=np.asarray(mel, np.float32), detected=detected,
              emotion=emotion, intensity=intensity, speaker=speaker, has_audio=has_audio,
              neutral_frame=frames[0], neutral_landmarks=landmarks[0],
              neutral_source="first_frame")


def tiny_sources(grid):
  """{split: {clip_id: example}} of CUTS cut from `grid` (fresh dicts: callers may change them)."""
  out = {"train": {}, "test": {}}
  for clip_id, a, b, emotion, intensity, speaker, has_audio, split in CUTS:
    out[split][clip_id] = example(clip_id, grid.frames[a:b], grid.landmarks[a:b], grid.mel[a:b],
                                  grid.detected[a:b], emotion=emotion, intensity=intensity,
                                  speaker=speaker, has_audio=has_audio)
  return out


def pipeline_sources(grid):
  """clip_id -> example of PIPELINE_CUTS and INDEX_CLIP (silent clips get the log-mel floor)."""
  from emotalk_jax.media import audio  # pylint: disable=g-import-not-at-top
  out = {}
  for clip_id, a, b, emotion, intensity, speaker, has_audio in PIPELINE_CUTS:
    mel = grid.mel[a:b] if has_audio else np.full((b - a, audio.MEL_WINDOW, audio.N_MELS),
                                                    audio.LOG_MEL_FLOOR, np.float32)
    out[clip_id] = example(clip_id, grid.frames[a:b], grid.landmarks[a:b], mel, grid.detected[a:b],
                           emotion=emotion, intensity=intensity, speaker=speaker,
                           has_audio=has_audio, emotion_exact=clip_id != "c6_contempt")
  t = np.arange(INDEX_LEN)
  out[INDEX_CLIP] = example(
      INDEX_CLIP,
      np.broadcast_to((5 * t).astype(np.uint8)[:, None, None, None],
                      (INDEX_LEN, SIZE, SIZE, 3)).copy(),
      np.broadcast_to(t.astype(np.float32)[:, None, None], (INDEX_LEN, 68, 2)).copy(),
      np.broadcast_to(t.astype(np.float32)[:, None, None],
                      (INDEX_LEN, audio.MEL_WINDOW, audio.N_MELS)).copy(),
      (t % 3 != 0), emotion="disgusted", intensity=0.5, speaker="synthetic/s9")
  return out


def stage_config(stage: str, dataset_dir, **overrides):
  """configs/<stage>_test.py reading `dataset_dir`, with `overrides` applied."""
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{stage}_test").get_config()
  config.dataset = dataset_dir
  config.dataset_config = ""
  config.update(overrides)
  return config

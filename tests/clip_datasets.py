"""Tiny TFDS datasets in the emotalk example format, made from examples held in memory (a test helper)."""

import tensorflow_datasets as tfds

from data_pipelines import features

with tfds.core.registered.skip_registration():

  class InMemoryClips(tfds.core.GeneratorBasedBuilder):
    """Writes `sources` ({split: {clip_id: example dict}}) as they are, frames JPEG-encoded by TFDS."""
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

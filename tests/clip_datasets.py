"""Tiny TFDS datasets in the emotalk example format, made from examples held in memory (a test helper)."""

import tensorflow_datasets as tfds

from data_pipelines import features

with tfds.core.registered.skip_registration():

  class InMemoryClips(tfds.core.GeneratorBasedBuilder):
    """Writes `sources` ({split: {clip_id: example dict}}) as they are, frames JPEG-encoded by TFDS."""
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, sources, frame_size: int, **kwargs):
      self._sources = sources
      self._frame_size = frame_size
      super().__init__(**kwargs)

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=features.features(frame_size=self._frame_size))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(split) for split in self._sources}

    def _generate_examples(self, split):
      for clip_id, example in self._sources[split].items():
        yield clip_id, dict(example)


def build(sources, data_dir, frame_size: int) -> tfds.core.DatasetBuilder:
  """Prepares a dataset of `sources` ({split: {clip_id: example}}) under `data_dir`."""
  builder = InMemoryClips(sources=sources, frame_size=frame_size, data_dir=str(data_dir))
  builder.download_and_prepare()
  return builder

"""Data benchmarks that print JSON: dataset build throughput and input-pipeline throughput.

  python -m data_pipelines.bench            # or: emotalk bench data

Builds the sample dataset from ../shared/data (`talking_face_folder`, config `sample`) when it is
present, else a folder of copies of the bundled GRID clip, into a temporary data_dir; then times the
training input pipeline on it. Timings are wall-clock on the machine that runs them.
"""

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import input_pipeline
from data_pipelines.talking_face_folder import talking_face_folder_dataset_builder as folder_builder
from emotalk_jax import bundled
from emotalk_jax import emotions


def _bundled_folder(root, num_clips: int) -> None:
  """`num_clips` copies of the bundled GRID clip named <speaker>_<emotion>.mpg (labels from the
  names)."""
  for i in range(num_clips):
    shutil.copy(bundled.GRID_CLIP, os.path.join(root, f"s{i % 4}_{emotions.EMOTIONS[i % 8]}.mpg"))


def data_benchmark(frame_size: int = 256,
                   max_frames: int | None = 100,
                   batch_size: int = 8,
                   window: int = 5,
                   num_batches: int = 50,
                   bundled_clips: int = 8) -> dict:
  """Builds a dataset (clips/min) and reads training batches from it (examples/s)."""
  with tempfile.TemporaryDirectory() as tmp:
    if (folder_builder.shared_data_root() / "README.md").exists():
      source = "sample dataset from ../shared/data"
      config = folder_builder.sample_config("bench", frame_size=frame_size, max_frames=max_frames)
      manual_dir = None
    else:
      source = f"{bundled_clips} copies of the bundled GRID clip"
      config = folder_builder.FolderConfig(
          name="bench", frame_size=frame_size, max_frames=max_frames,
          pattern=r"(?P<speaker>s\d)_(?P<emotion>[a-z]+)", test_speakers=("folder/s3",))
      manual_dir = os.path.join(tmp, "clips")
      os.makedirs(manual_dir)
      _bundled_folder(manual_dir, bundled_clips)
    builder = folder_builder.Builder(config=config, data_dir=os.path.join(tmp, "tfds"))
    start = time.perf_counter()
    # TFDS prints progress to stdout; stdout is for the JSON
    with contextlib.redirect_stdout(sys.stderr):
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir))
    build_s = time.perf_counter() - start
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    num_clips = sum(splits.values())
    num_frames = sum(
        len(ex["landmarks"]) for split in splits for ex in tfds.as_numpy(
            builder.as_dataset(split=split,
                               decoders={
                                   "frames": tfds.decode.SkipDecoding(),
                                   "neutral_frame": tfds.decode.SkipDecoding()
                               })))

    it = input_pipeline.InputIterator(builder,
                                      "train",
                                      batch_size=batch_size,
                                      window=window,
                                      seed=0)
    next(it)  # builds the tf.data graph and fills the prefetch buffer outside the timing
    start = time.perf_counter()
    for _ in range(num_batches):
      batch = next(it)
    read_s = time.perf_counter() - start
  return {
      "benchmark": "data",
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
      "source": source,
      "build": {
          "frame_size": frame_size,
          "max_frames": max_frames,
          "splits": splits,
          "frames": int(num_frames),
          "seconds": round(build_s, 1),
          "clips_per_min": round(60 * num_clips / build_s, 1),
          "frames_per_s": round(num_frames / build_s, 1)
      },
      "input_pipeline": {
          "split": "train",
          "batch_size": batch_size,
          "window_frames": window,
          "batch_frames_shape": list(np.shape(batch["frames"])),
          "examples_per_s": round(num_batches * batch_size / read_s, 1),
          "batches_per_s": round(num_batches / read_s, 2)
      },
  }


if __name__ == "__main__":
  print(json.dumps(data_benchmark(), indent=2))

"""Builds one emotalk TFDS dataset: `python -m data_pipelines.build NAME [options]`; prints a JSON
summary.

The same as `tfds build data_pipelines/NAME ...`, without the `tfds` command's own dependencies (in
TFDS 4.9.10 that command imports apache_beam and mlcroissant at start-up, even for in-process
builds).

  python -m data_pipelines.build mead --manual_dir ~/data/MEAD --data_dir ~/tensorflow_datasets
  python -m data_pipelines.build mead --config left_30 --manual_dir ~/data/MEAD
  python -m data_pipelines.build talking_face_folder --config sample
  python -m data_pipelines.build talking_face_folder --manual_dir my_clips \\
      --config '{"name": "mine", "pattern": "(?P<speaker>[a-z]+)_(?P<emotion>[a-z]+)",
      "test_fraction": 0.2}'
  python -m data_pipelines.build cremad --manual_dir CREMA-D \\
      --beam_pipeline_options direct_num_workers=2

`--config` takes a config name or a JSON object of the config's fields (a new config: give it a new
name).
"""

import argparse
import importlib
import json
import logging
import sys

import tensorflow_datasets as tfds

from data_pipelines import common

BUILDERS = ("mead", "cremad", "ravdess", "talking_face_folder")


def builder_class(name: str):
  name = name.rstrip("/").rsplit("/", 1)[-1]
  if name not in BUILDERS:
    raise SystemExit(f"unknown dataset {name!r}; one of {', '.join(BUILDERS)}")
  return importlib.import_module(f"data_pipelines.{name}.{name}_dataset_builder").Builder


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m data_pipelines.build", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("dataset", help=f"one of {', '.join(BUILDERS)} (or data_pipelines/<name>)")
  parser.add_argument("--config", help="config name, or a JSON object of config fields")
  parser.add_argument("--manual_dir",
                      help="the raw dataset (MEAD, CREMA-D, RAVDESS; a folder of clips)")
  parser.add_argument("--data_dir", help="where to write (default: TFDS's, ~/tensorflow_datasets)")
  parser.add_argument("--beam_pipeline_options",
                      help="build with Apache Beam: comma-separated flags, "
                      "e.g. runner=DirectRunner,direct_num_workers=4")
  parser.add_argument("--overwrite", action="store_true", help="rebuild an existing version")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

  cls = builder_class(args.dataset)
  config = args.config
  if config and config.lstrip().startswith("{"):
    config = cls.builder_config_cls(**json.loads(config))
  builder = cls(config=config, data_dir=args.data_dir)
  download_config = tfds.download.DownloadConfig(manual_dir=args.manual_dir)
  if args.overwrite:
    download_config.download_mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
  if args.beam_pipeline_options:
    beam = tfds.core.lazy_imports_lib.lazy_imports.apache_beam
    download_config.beam_options = beam.options.pipeline_options.PipelineOptions(
        flags=[f"--{opt}" for opt in args.beam_pipeline_options.split(",")])
  try:
    builder.download_and_prepare(download_config=download_config)
  except common.InputError as e:
    print(f"data_pipelines.build: error: {e}", file=sys.stderr)
    return 2
  report = common.read_skip_report(builder)
  print(json.dumps({
      "dataset": builder.info.full_name, "data_dir": str(builder.data_dir),
      "splits": {k: v.num_examples for k, v in builder.info.splits.items()},
      "skipped": report["per_split"],
  }, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())

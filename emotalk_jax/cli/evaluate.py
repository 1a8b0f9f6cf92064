"""The harness forms of `emotalk evaluate` (the stage forms are in `emotalk_jax.cli.main`).

  emotalk evaluate --generated GEN.mp4 [--reference REF.mp4] [--source PHOTO] [--emotion EMOTION]
                   [--audio SPEECH] [--json OUT.json] [...]
  emotalk evaluate --manifest EVAL.csv --out-dir DIR [...]
"""

import argparse
import pathlib
import sys

from emotalk_jax import errors

# The harness options; `uses_harness` tells a stage form that got any of them.
_DESTS = ("generated", "reference", "source", "emotion", "audio", "json", "manifest", "out_dir",
          "metrics", "emotion_model", "emotion_classes", "syncnet", "csim_every", "max_frames",
          "no_plots")


def add_arguments(p: argparse.ArgumentParser) -> None:
  """Adds the harness options to the `evaluate` parser."""
  g = p.add_argument_group("evaluation harness (instead of a stage)")
  g.add_argument("--generated", metavar="VIDEO", help="the generated video to score")
  g.add_argument("--reference",
                 metavar="VIDEO",
                 help="ground-truth video (PSNR, SSIM, M-LMD, F-LMD)")
  g.add_argument("--source", metavar="PHOTO", help="source photo of the person (CSIM)")
  g.add_argument("--emotion", help="target emotion, e.g. happy or happy:0.7 (emotion accuracy)")
  g.add_argument(
      "--audio",
      metavar="SPEECH",
      help="speech for lip sync (default: the generated video's track, else the reference's)")
  g.add_argument("--json",
                 metavar="OUT",
                 help="result file (default emotalk_out/<generated>_eval.json); the "
                 "plots go beside it as <OUT>_curves.png and <OUT>_emotion.png")
  g.add_argument("--manifest",
                 metavar="CSV",
                 help="evaluate every row of a CSV manifest (columns generated, "
                 "reference, source, emotion, audio, name)")
  g.add_argument("--out-dir",
                 metavar="DIR",
                 help="manifest mode: folder for per-row JSON, plots and summary.md")
  g.add_argument("--metrics",
                 help="comma-separated metric groups (default all): image, cpbd, lmd, csim, "
                 "emotion, lipsync, syncnet")
  g.add_argument("--emotion-model", metavar="FILE",
                 help="expression classifier: Keras .h5/.hdf5 (run in JAX), .keras or TFLite "
                      "(through TensorFlow); default: fer's model")
  g.add_argument("--emotion-classes", metavar="NAMES",
                 help="comma-separated class names of --emotion-model's outputs (default fer's 7)")
  g.add_argument("--syncnet",
                 metavar="NPZ",
                 help="SyncNet weights (.npz, see emotalk_jax/evaluate/syncnet.py) for "
                 "LSE-C / LSE-D")
  g.add_argument("--csim-every",
                 type=int,
                 default=1,
                 metavar="N",
                 help="embed every N-th frame for CSIM (default 1)")
  g.add_argument("--max-frames", type=int, metavar="N", help="evaluate only the first N frames")
  g.add_argument("--no-plots", action="store_true", help="do not write PNG plots")


def uses_harness(args) -> bool:
  """Whether any harness option was given (they cannot be combined with a stage)."""
  defaults = {"csim_every": 1, "no_plots": False}
  return any(getattr(args, d, None) not in (None, defaults.get(d)) for d in _DESTS)


def _options(args) -> dict:
  # Keeps `--help` fast.
  from emotalk_jax.evaluate import harness as evaluate  # pylint: disable=g-import-not-at-top
  options = {"csim_every": args.csim_every, "max_frames": args.max_frames}
  if args.metrics:
    groups = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    unknown = [m for m in groups if m not in evaluate.METRICS]
    if unknown:
      raise errors.InputError("--metrics", f"unknown metric group {unknown[0]!r}; choose from "
                                           f"{', '.join(evaluate.METRICS)}")
    options["metrics"] = groups
  if args.emotion_model:
    options["emotion_model"] = args.emotion_model
  if args.emotion_classes:
    options["emotion_classes"] = tuple(c.strip() for c in args.emotion_classes.split(","))
  if args.syncnet:
    options["syncnet_weights"] = args.syncnet
  if args.max_frames is not None and args.max_frames < 1:
    raise errors.InputError("--max-frames", f"must be at least 1, got {args.max_frames}")
  return options


def run(args) -> dict:
  """Runs the harness form of `emotalk evaluate`; returns the JSON summary to print."""
  from emotalk_jax.evaluate import harness as evaluate  # pylint: disable=g-import-not-at-top
  from emotalk_jax.evaluate import manifest as eval_manifest  # pylint: disable=g-import-not-at-top
  from emotalk_jax.evaluate import plots as eval_plots  # pylint: disable=g-import-not-at-top
  if args.manifest and args.generated:
    raise errors.InputError("evaluate", "give either --generated VIDEO or --manifest CSV, not both")
  if args.manifest:
    for flag in ("reference", "source", "emotion", "audio", "json"):
      if getattr(args, flag):
        raise errors.InputError(
            "evaluate", f"--{flag} is per video: with --manifest it is a column of the CSV")
    if not args.out_dir:
      raise errors.InputError("evaluate", "--manifest needs --out-dir DIR for the per-row results")

    def progress(name, index, count):
      print(f"emotalk: evaluating {index + 1}/{count}: {name}", file=sys.stderr, flush=True)

    return eval_manifest.evaluate_manifest(args.manifest, args.out_dir, plots=not args.no_plots,
                                           progress=progress, **_options(args))
  if not args.generated:
    raise errors.InputError(
        "evaluate", "give a stage (landmark), --generated VIDEO, or --manifest CSV --out-dir "
        "DIR (see emotalk evaluate --help)")
  if args.out_dir:
    raise errors.InputError("evaluate",
                            "--out-dir is for --manifest; a single video's result goes to --json")
  options = _options(args)
  out = pathlib.Path(args.json) if args.json else (pathlib.Path("emotalk_out") /
                                                   f"{pathlib.Path(args.generated).stem}_eval.json")
  result = evaluate.evaluate_files(args.generated, args.reference, args.source, args.emotion,
                                   args.audio, **options)
  stem = out.with_suffix("")
  if not args.no_plots:
    result["plots"] = eval_plots.plot_result(result, stem)
  eval_manifest.write_json(out, result)
  summary = {k: v for k, v in result.items() if k != "per_frame"}
  return {"json": str(out), **summary}

"""The `emotalk` command line.

Every subcommand is a thin wrapper over library functions a notebook can call directly. Bad input
raises
`InputError`, which is printed as `emotalk: error: <file>: <problem>` with exit status 2 and no
traceback.
"""

import argparse
import json
import pathlib
import sys
import warnings

from emotalk_jax import bundled
from emotalk_jax.cli import evaluate as eval_cli
from emotalk_jax import errors
from emotalk_jax import stages

# The demo's emotions in turn over its 8.95 s of speech: each keyframe ramps in over
# `driving.TRANSITION_S` (0.5 s) and is then held for 1.2 s or more.
DEMO_SCHEDULE = "0:neutral,1.7:happy,3.4:sad,5.1:angry,6.8:surprised"
VIDEO_SUFFIXES = {".mp4", ".mpg", ".mpeg", ".mov", ".flv", ".webm", ".mkv", ".avi", ".m4v"}


def _default_out(path: pathlib.Path, suffix: str) -> pathlib.Path:
  return pathlib.Path("emotalk_out") / f"{path.stem}{suffix}"


def cmd_landmarks(args) -> dict:
  """Draws the aligned crop with its landmarks and face-graph edges (PNG for a photo, MP4 for a
  video)."""
  # Keeps `--help` fast.
  from emotalk_jax.models import visualize  # pylint: disable=g-import-not-at-top
  src = pathlib.Path(args.input)
  is_video = src.suffix.lower() in VIDEO_SUFFIXES
  out = pathlib.Path(args.out) if args.out else _default_out(
      src, "_landmarks.mp4" if is_video else "_landmarks.png")
  if is_video:
    summary = visualize.draw_video_landmarks(src, out, size=args.size, face_index=args.face_index)
  else:
    summary = visualize.draw_image_landmarks(src, out, size=args.size, face_index=args.face_index)
  return {"output": str(out), **summary}


def cmd_preprocess(args) -> dict:
  """Full preprocessing of a clip: track, smooth, align, crop, log-mel; writes an .npz and an
  aligned MP4."""
  from emotalk_jax.media import preprocess  # pylint: disable=g-import-not-at-top
  from emotalk_jax.models import visualize  # pylint: disable=g-import-not-at-top
  src = pathlib.Path(args.input)
  out_dir = pathlib.Path(args.out)
  clip = preprocess.preprocess_video(src, size=args.size, fps=args.fps, face_index=args.face_index,
                                     audio_path=args.audio, progress=not args.quiet)
  npz = out_dir / f"{src.stem}.npz"
  mp4 = out_dir / f"{src.stem}_aligned.mp4"
  preprocess.save_clip(clip, npz)
  visualize.write_clip_video(clip, mp4)
  return {"npz": str(npz), "video": str(mp4), **clip.summary()}


def cmd_emotion(args) -> dict:
  """Parses emotion text (e.g. `happy:0.6+surprised:0.4`) and prints the model's emotion vector."""
  from emotalk_jax import emotions  # pylint: disable=g-import-not-at-top
  parsed = [emotions.parse_emotion(text) for text in args.text]
  return {
      "order":
          list(emotions.EMOTIONS) + ["intensity"],
      "emotions": [{
          "text": t,
          "canonical": str(e),
          "vector": [round(float(v), 6) for v in e.vector()]
      } for t, e in zip(args.text, parsed)]
  }


def cmd_bench(args) -> dict:
  """Benchmarks that print JSON: `preprocess` (frames/s per clip), `data` (dataset build clips/min
  and input-pipeline examples/s), `evaluate` (evaluation harness frames/s), `emotion-ceiling` (the
  expression classifier's accuracy on the real labelled MEAD clips of ../shared/data), `landmark`
  (stage-1 training steps/s and examples/s, and frames/s of the network alone on 60 s), `texture`
  (stage-2 steps/s and frames/s), `generate` (each run a fresh process: seconds to the first frame
  with a cold and a warm compilation cache, end-to-end frames/s at 128 and 256 for 10/60/300 s of
  speech, peak memory, CPU seconds, seconds by stage; --sizes, --lengths, --batch, --repeats; see
  emotalk_jax/bench/generate.py),
  `speech` (the Whisper encoder's speech features: x real time for 10 s and 60 s of speech),
  `sharpness` (generated face vs photo: variance of the Laplacian and CPBD over the face, 8 photos;
  see emotalk_jax/bench/sharpness.py),
  `emotion-judge` (generates every --photos x --emotions video of one neutral sentence and reads
  each with the same classifier: accuracy, per-class recall, confusion matrix; PNGs in --out-dir;
  see emotalk_jax/bench/emotion_judge.py)."""
  _check_judge_flags(args)
  if args.what == "emotion-judge":
    from emotalk_jax.bench import emotion_judge  # pylint: disable=g-import-not-at-top
    return emotion_judge.judge(
        args.photos, args.speech,
        args.emotions.split(",") if args.emotions else emotion_judge.DEFAULT_EMOTIONS,
        1.0 if args.intensity is None else args.intensity,
        args.out_dir or "emotalk_out/emotion_judge", checkpoint=args.checkpoint,
        finetune_steps=args.finetune_steps or 0, seed=args.seed or 0, progress=not args.quiet)
  if args.what in ("evaluate", "emotion-ceiling"):
    from emotalk_jax.bench import evaluate as eval_bench  # pylint: disable=g-import-not-at-top
    if args.what == "evaluate":
      return eval_bench.evaluate_benchmark(args.clips or None, num_frames=args.frames)
    return eval_bench.emotion_ceiling()
  if args.batch is not None and args.batch < 1:
    raise errors.InputError("--batch", f"must be at least 1 frame, got {args.batch}")
  if args.what in ("landmark", "texture"):
    from emotalk_jax.bench import networks  # pylint: disable=g-import-not-at-top
    if args.what == "landmark":
      return networks.landmark_benchmark()
    extra = (args.batch,) if args.batch else ()
    return networks.texture_benchmark(batch_sizes=(1, 8, 32) + extra)
  if args.what == "generate":
    from emotalk_jax.bench import generate as bench_generate  # pylint: disable=g-import-not-at-top
    sizes = _numbers("--sizes", args.sizes or "128,256", int)
    lengths = _numbers("--lengths", args.lengths or "10,60,300", float)
    # On a CPU a 256 network renders a few frames/s: 300 s of speech would take most of an hour.
    if args.repeats < 1:
      raise errors.InputError("--repeats", f"must be at least 1 run, got {args.repeats}")
    return bench_generate.generate_benchmark(
        sizes, lengths, batch=args.batch or 8, progress=not args.quiet, repeats=args.repeats,
        lengths_by_size=None if args.lengths else {256: (10.0, 60.0)})
  if args.what == "speech":
    from emotalk_jax.bench import speech  # pylint: disable=g-import-not-at-top
    return speech.speech_benchmark()
  if args.what == "sharpness":
    from emotalk_jax.bench import sharpness  # pylint: disable=g-import-not-at-top
    return sharpness.sharpness_benchmark()
  if args.what == "data":
    from data_pipelines import bench as data_bench  # pylint: disable=g-import-not-at-top
    return data_bench.data_benchmark(max_frames=args.frames)
  from emotalk_jax.bench import (  # pylint: disable=g-import-not-at-top
      preprocess as bench_preprocess)
  return bench_preprocess.preprocess_benchmark(args.clips or None, num_frames=args.frames)


JUDGE_FLAGS = ("photos", "speech", "emotions", "intensity", "out_dir", "checkpoint",
               "finetune_steps", "seed", "quiet")


def _numbers(flag: str, text: str, kind) -> tuple:
  """'128,256' -> (128, 256); a clear error naming `flag` otherwise."""
  try:
    values = tuple(kind(x) for x in text.split(","))
  except ValueError:
    raise errors.InputError(flag, f"expected comma-separated numbers, got {text!r}") from None
  if not values or min(values) <= 0:
    raise errors.InputError(flag, f"expected positive numbers, got {text!r}")
  return values


def _check_judge_flags(args) -> None:
  """Flags of `bench emotion-judge` given to another benchmark would be silently ignored: refuse."""
  if args.what == "emotion-judge":
    return
  given = [f"--{n.replace('_', '-')}" for n in JUDGE_FLAGS if getattr(args, n) not in (None, False)]
  if given:
    raise errors.InputError(f"bench {args.what}",
                            f"{', '.join(given)} only apply to `bench emotion-judge`")


def cmd_train(args) -> dict:
  """Trains a stage: `emotalk train landmark --config configs/landmark.py --workdir DIR
  [--config.x=y ...]`
  (absl / ml_collections flags; see emotalk_jax/train/main.py)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import main as train_main  # pylint: disable=g-import-not-at-top
  try:
    return train_main.main([args.stage] + list(args.flags))
  except flags.Error as e:  # Bad or missing flag, unreadable config file.
    raise errors.InputError(f"train {args.stage}", str(e)) from e


def cmd_evaluate(args) -> dict:
  """Scores generated videos with the evaluation harness (PSNR, SSIM, CPBD, M-LMD, F-LMD, CSIM,
  emotion accuracy, lip sync; emotalk_jax/evaluate/harness.py): `emotalk evaluate --generated
  GEN.mp4 [--reference REF.mp4] [--source PHOTO] [--emotion EMOTION] [--json OUT.json]` or `emotalk
  evaluate --manifest EVAL.csv --out-dir DIR`. Or evaluates a trained stage against its baselines on
  the same test windows: `emotalk evaluate landmark --config CONFIG.py --workdir DIR
  [--checkpoint=best|latest|STEP]
  [--num_train_batches=N] [--num_eval_batches=N] [--config.x=y ...]` (see
  emotalk_jax/train/landmark_baselines.py)."""
  from emotalk_jax.cli import evaluate as eval_cli  # pylint: disable=g-import-not-at-top
  if args.stage is None:
    return eval_cli.run(args)
  if eval_cli.uses_harness(args):
    raise errors.InputError(
        f"evaluate {args.stage}", "harness options (--generated, --manifest, ...) cannot be "
        "combined with a stage; put the stage's flags after it")
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    return stages.get(args.stage).evaluate([args.stage] + list(args.flags))
  except flags.Error as e:  # Bad or missing flag, unreadable config file, no checkpoint.
    raise errors.InputError(f"evaluate {args.stage}", str(e)) from e


def cmd_finetune(args) -> dict:
  """Adapts the texture network to one neutral photo (self-reconstruction under augmentation) and
  reports the photo's reconstruction PSNR / SSIM before and after: `emotalk finetune --image PHOTO
  --checkpoint
  RUN_DIR_OR_NPZ --out DIR [--steps N]` (see emotalk_jax/generate/finetune.py)."""
  from emotalk_jax.generate import finetune  # pylint: disable=g-import-not-at-top
  try:
    return finetune.main(args.image,
                         args.checkpoint,
                         args.out,
                         steps=args.steps,
                         learning_rate=args.learning_rate)
  except (FileNotFoundError, ValueError) as e:  # No checkpoint / config, params of another model.
    raise errors.InputError(args.checkpoint, str(e)) from e


def _generate_options(args) -> dict:
  if args.crop_size is not None and not args.crop_only:
    raise errors.InputError("--crop-size", "is the side of the --crop-only output; add --crop-only")
  if args.crop_size is not None and not 16 <= args.crop_size <= 4096:
    raise errors.InputError("--crop-size", f"must be 16 to 4096 pixels, got {args.crop_size}")
  return dict(finetune_steps=args.finetune_steps, crop_only=args.crop_only,
              crop_size=args.crop_size, seed=args.seed,
              emotion_schedule=args.emotion_schedule, face_index=args.face_index, size=args.size,
              progress=_progress(args))


def _progress(args):
  """Step lines and a frame bar on stderr (`--quiet`: none), the first line before JAX loads."""
  from emotalk_jax.generate import progress  # pylint: disable=g-import-not-at-top
  status = progress.Progress(enabled=not args.quiet)
  status.step("loading JAX")
  return status


def cmd_generate(args) -> dict:
  """Photo + speech + emotion -> an H.264/AAC video at 25 fps (see
  emotalk_jax/generate/pipeline.py): `emotalk generate --image PHOTO --audio SPEECH --emotion
  EMOTION --out OUT.mp4`, or many videos from a
  CSV with columns image,audio,emotion,out: `emotalk generate --manifest JOBS.csv --out-dir DIR`."""
  if args.manifest and (args.image or args.audio):
    raise errors.InputError(args.manifest,
                            "--manifest replaces --image/--audio; give one or the other")
  missing = [
      flag for flag, value in (("--image", args.image), ("--audio", args.audio)) if not value
  ]
  if missing and not args.manifest:
    raise errors.InputError("generate",
                            f"{' and '.join(missing)} required (or --manifest JOBS.csv)")
  options = _generate_options(args)
  # dlib's second of loading starts now, in a process of its own, while JAX is imported.
  search = None if args.manifest else start_generating(args.image, args.face_index)
  from emotalk_jax.generate import pipeline as generate  # pylint: disable=g-import-not-at-top
  if args.manifest:
    models = generate.load_models(args.checkpoint)
    result = generate.generate_manifest(args.manifest, args.out_dir or "emotalk_out", models=models,
                                        **options)
    for failure in result["failed"]:
      print(f"emotalk: warning: skipped row {failure['row']}: {failure['reason']}", file=sys.stderr)
    return result
  return generate.generate(args.image,
                           args.audio,
                           args.emotion,
                           args.out or "emotalk_out/generated.mp4",
                           checkpoint=args.checkpoint,
                           face_search=search,
                           **options)


def start_generating(image, face_index: int):
  """What `emotalk generate` and `emotalk demo` do before they import JAX: set up the process's
  allocator (`background.fewer_malloc_arenas`) and start the photo's face search in a process of
  its own (`face_process`), which `generate(face_search=)` takes over."""
  from emotalk_jax.generate import background  # pylint: disable=g-import-not-at-top
  from emotalk_jax.media import face_process  # pylint: disable=g-import-not-at-top
  background.fewer_malloc_arenas()
  return face_process.Search(image, face_index)


def cmd_export(args) -> dict:
  """Exports a training run's inference params as NAME.npz + NAME.json (what `--checkpoint` folders
  hold:
  landmark.npz and texture.npz): `emotalk export landmark --workdir RUN --out DIR/landmark.npz
  [--checkpoint best|latest|STEP] [--config CONFIG.py]` (the config only for runs without
  config.json)."""
  config = None
  if args.config:
    from emotalk_jax.train import main as train_main  # pylint: disable=g-import-not-at-top
    config = train_main.load_config_file(args.config)
  checkpoint = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
  try:
    return stages.get(args.stage).export_run(args.workdir, args.out, checkpoint, config)
  except (FileNotFoundError, ValueError) as e:
    raise errors.InputError(args.workdir, str(e)) from e


def cmd_demo(args) -> dict:
  """The bundled neutral photo (GRID speaker s4, CC BY 4.0) says four GRID sentences in her own
  voice (9 s), neutral, then happy, sad, angry and surprised in turn (each held over 1 s), with the
  shipped sample checkpoints: `emotalk demo [--out demo.mp4]`."""
  status = _progress(args)
  search = start_generating(bundled.DEMO_PHOTO, 0)
  from emotalk_jax.generate import pipeline as generate  # pylint: disable=g-import-not-at-top
  return generate.generate(bundled.DEMO_PHOTO, bundled.DEMO_SPEECH, out=args.out,
                           emotion_schedule=DEMO_SCHEDULE, finetune_steps=args.finetune_steps,
                           progress=status, face_search=search)


def cmd_emotion_grid(args) -> dict:
  """One still of the photo's face per emotion (rows) and intensity (columns), rendered by both
  stages and labelled, to see the range of emotions at a glance: `emotalk emotion-grid --image
  PHOTO [--audio SPEECH] --out grid.png [--emotions neutral,happy,...] [--intensities
  0.33,0.66,1]`. Without --audio the face is at rest (silence); with it, every cell shows the same
  frame, one where the mouth is moderately open (see emotalk_jax/generate/emotion_grid.py)."""
  from emotalk_jax.generate import emotion_grid  # pylint: disable=g-import-not-at-top
  return emotion_grid.main(args.image, args.out, args.audio,
                           args.emotions or emotion_grid.DEFAULT_EMOTIONS,
                           args.intensities or emotion_grid.DEFAULT_INTENSITIES,
                           checkpoint=args.checkpoint, face_index=args.face_index,
                           frame=args.frame, cell_size=args.cell_size,
                           draw_landmarks=args.landmarks)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="emotalk",
      description=
      "Emotion-controllable one-shot talking-face generation in JAX (research reimplementation).")
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

  def add_face_args(p):
    p.add_argument("--size",
                   type=int,
                   default=256,
                   choices=(128, 256),
                   help="aligned crop size in pixels (default 256)")
    p.add_argument(
        "--face-index",
        type=int,
        default=0,
        help="which face when there are several: 0 = largest (default), 1 = second largest, ...")

  p = sub.add_parser("landmarks",
                     help="draw the aligned face crop with its 68 landmarks and graph edges",
                     description=cmd_landmarks.__doc__)
  p.add_argument("input", nargs="?", default=str(bundled.GRID_CLIP),
                 help="photo or video (default: the bundled GRID clip)")
  p.add_argument("--out",
                 help="output .png (photo) or .mp4 (video); default emotalk_out/<name>_landmarks.*")
  add_face_args(p)
  p.set_defaults(func=cmd_landmarks)

  p = sub.add_parser("preprocess", help="align, crop and extract landmarks + log-mel from a video",
                     description=cmd_preprocess.__doc__)
  p.add_argument("input", nargs="?", default=str(bundled.GRID_CLIP),
                 help="video file (default: the bundled GRID clip)")
  p.add_argument("--out", default="emotalk_out", help="output folder (default emotalk_out)")
  p.add_argument("--audio", help="separate audio file to use instead of the video's own track")
  p.add_argument("--fps", type=float, default=25.0, help="output frame rate (default 25)")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  add_face_args(p)
  p.set_defaults(func=cmd_preprocess)

  p = sub.add_parser("emotion", help="parse emotion text and print the emotion vector",
                     description=cmd_emotion.__doc__)
  p.add_argument("text", nargs="+", help="e.g. happy, happy:0.7, happy:0.6+surprised:0.4")
  p.set_defaults(func=cmd_emotion)

  p = sub.add_parser("bench", help="benchmarks that print JSON", description=cmd_bench.__doc__)
  p.add_argument("what",
                 choices=("preprocess", "data", "evaluate", "emotion-ceiling", "emotion-judge",
                          "landmark", "texture", "generate", "speech", "sharpness"),
                 help="what to benchmark")
  p.add_argument("--clips", nargs="*",
                 help="preprocess, evaluate: video files (default: a 256x256 and a 512x512 clip)")
  p.add_argument("--frames", type=int, default=100, help="frames per clip (default 100)")
  speed = p.add_argument_group("generate, texture")
  speed.add_argument("--sizes", help="network crop sizes, comma-separated (default 128,256)")
  speed.add_argument("--lengths",
                     help="seconds of speech per run, comma-separated (default 10,60,300; 10,60 "
                     "at 256)")
  speed.add_argument("--batch", type=int,
                     help="generate: frames per stage-2 call (default 8; more for throughput on "
                     "an accelerator); texture: one more inference batch size")
  speed.add_argument("--repeats", type=int, default=1,
                     help="generate: runs per size and length, reported by their median (default "
                     "1)")
  judge = p.add_argument_group("emotion-judge")
  judge.add_argument("--photos", nargs="+",
                     help="face photos (default: the 8 of emotion_judge.DEFAULT_PHOTOS in "
                     "../shared/data)")
  judge.add_argument("--speech",
                     help="the sentence every video says (default: a RAVDESS neutral sentence in "
                     "../shared/data)")
  judge.add_argument("--emotions",
                     help="comma-separated emotions to ask for (default "
                     "neutral,happy,sad,angry,surprised)")
  judge.add_argument("--intensity", type=float,
                     help="intensity of every asked emotion, in [0, 1] (default 1)")
  judge.add_argument("--out-dir",
                     help="videos, emotion_judge.json, confusion.png, contact_sheet.png (default "
                     "emotalk_out/emotion_judge)")
  judge.add_argument("--checkpoint", "--checkpoint-dir", dest="checkpoint",
                     help="folder with landmark.npz and texture.npz (default: the shipped ones)")
  judge.add_argument("--finetune-steps", type=int,
                     help="adapt the texture network to each photo first, this many steps "
                     "(default 0)")
  judge.add_argument("--seed", type=int, help="blinks and fine-tuning augmentation (default 0)")
  judge.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
  p.set_defaults(func=cmd_bench)

  p = sub.add_parser("train",
                     help="train a stage (absl flags: --config FILE --workdir DIR --config.x=y)",
                     description=cmd_train.__doc__)
  p.add_argument("stage", choices=tuple(stages.STAGES), help="which network to train")
  p.add_argument("flags",
                 nargs=argparse.REMAINDER,
                 help="--config CONFIG.py --workdir DIR [--config.field=value ...]")
  p.set_defaults(func=cmd_train)

  p = sub.add_parser("finetune", help="adapt the texture network to one neutral photo",
                     description=cmd_finetune.__doc__)
  p.add_argument("--image", required=True, help="a neutral photo of the new face")
  p.add_argument("--checkpoint",
                 required=True,
                 help="a texture training workdir or an exported .npz")
  p.add_argument("--out",
                 required=True,
                 help="output folder (adapted params, report.json, reconstruction.png)")
  p.add_argument("--steps", type=int, default=50, help="fine-tuning steps (default 50)")
  p.add_argument("--learning-rate",
                 type=float,
                 default=4e-4,
                 help="Adam learning rate (default 4e-4)")
  p.set_defaults(func=cmd_finetune)

  p = sub.add_parser("generate", help="photo + speech + emotion -> talking-face video with sound",
                     description=cmd_generate.__doc__)
  p.add_argument("--image", help="photo with one (or the --face-index'th largest) face")
  p.add_argument("--audio", help="speech: any audio file, or a video whose audio track is used")
  p.add_argument("--emotion", default="neutral",
                 help="e.g. happy, happy:0.7, happy:0.6+surprised:0.4 (default neutral)")
  p.add_argument("--out", help="output .mp4 (default emotalk_out/generated.mp4)")
  p.add_argument("--manifest", help="CSV with columns image,audio,emotion,out: one video per row")
  p.add_argument(
      "--out-dir",
      help="--manifest: folder the rows' `out` paths are relative to (default emotalk_out)")
  p.add_argument("--checkpoint",
                 help="folder with landmark.npz and texture.npz (default: the shipped samples)")
  p.add_argument("--finetune-steps", type=int, default=0,
                 help="adapt the texture network to the photo first, this many steps (default 0)")
  p.add_argument("--size",
                 type=int,
                 choices=(128, 256),
                 help="crop size; must match the texture checkpoint")
  p.add_argument("--crop-only",
                 action="store_true",
                 help="write the aligned face crop, not the whole photo")
  p.add_argument("--crop-size", type=int, metavar="PX",
                 help="--crop-only: side of the crop in pixels (default: the network's size), "
                 "rendered from the photo's own pixels")
  p.add_argument("--seed",
                 type=int,
                 default=0,
                 help="blinks and fine-tuning augmentation (default 0)")
  p.add_argument("--emotion-schedule",
                 help='emotion over time, e.g. "0:neutral,2.0:happy:0.8,4.5:sad:0.5" '
                 "(seconds:emotion; overrides --emotion)")
  p.add_argument(
      "--face-index",
      type=int,
      default=0,
      help="which face when there are several: 0 = largest (default), 1 = second largest, ...")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_generate)

  p = sub.add_parser("export", help="export a training run's params for `generate --checkpoint`",
                     description=cmd_export.__doc__)
  p.add_argument("stage", choices=tuple(stages.STAGES), help="which network")
  p.add_argument("--workdir", required=True, help="the training workdir")
  p.add_argument("--out", required=True, help="output .npz (its config goes beside it as .json)")
  p.add_argument("--checkpoint", default="best", help="best (default), latest or a step")
  p.add_argument("--config", help="the run's config file, for runs that did not save config.json")
  p.set_defaults(func=cmd_export)

  p = sub.add_parser(
      "demo",
      help="generate a video from the bundled photo and speech (no arguments needed)",
      description=cmd_demo.__doc__)
  p.add_argument("--out", default="demo.mp4", help="output .mp4 (default demo.mp4)")
  p.add_argument("--finetune-steps",
                 type=int,
                 default=0,
                 help="adapt to the photo first (default 0)")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_demo)

  p = sub.add_parser("emotion-grid",
                     help="one still per emotion and intensity of a photo's face, in a labelled "
                     "grid",
                     description=cmd_emotion_grid.__doc__)
  p.add_argument("--image", default=str(bundled.DEMO_PHOTO),
                 help="photo with one (or the --face-index'th largest) face (default: the bundled "
                 "neutral demo photo)")
  p.add_argument("--audio",
                 help="speech whose frame every cell shows (default: none, the face at rest)")
  p.add_argument("--out", default="emotalk_out/emotion_grid.png",
                 help="output .png or .jpg (default emotalk_out/emotion_grid.png)")
  p.add_argument("--emotions",
                 help="rows, comma-separated (default: neutral,happy,sad,angry,surprised,fear,"
                 "disgusted,contempt); neutral gets one cell and the input photo beside it")
  p.add_argument("--intensities",
                 help="columns, comma-separated, each in [0, 1], fractions allowed (default: "
                 "MEAD's levels 1/3,2/3,1); 0 is the neutral face")
  p.add_argument("--checkpoint",
                 help="folder with landmark.npz and texture.npz (default: the shipped samples)")
  p.add_argument("--frame", type=int,
                 help="with --audio: the frame to show (25 fps; default: one where the mouth is "
                 "moderately open)")
  p.add_argument("--cell-size", type=int, default=256,
                 help="pixels per cell (default 256; the network's crop is scaled to it)")
  p.add_argument("--landmarks", action="store_true",
                 help="draw stage 1's predicted landmarks over the cells")
  p.add_argument(
      "--face-index",
      type=int,
      default=0,
      help="which face when there are several: 0 = largest (default), 1 = second largest, ...")
  p.set_defaults(func=cmd_emotion_grid)

  p = sub.add_parser(
      "evaluate",
      help="score generated videos (harness), or a trained stage against its baselines",
      description=cmd_evaluate.__doc__)
  p.add_argument("stage", nargs="?", choices=tuple(stages.STAGES),
                 help="a trained stage to evaluate against its baselines (omit for the harness)")
  p.add_argument(
      "flags",
      nargs=argparse.REMAINDER,
      help="stage flags: --config CONFIG.py --workdir DIR [--checkpoint=best|latest|STEP] "
      "[--config.field=value ...]")
  eval_cli.add_arguments(p)
  p.set_defaults(func=cmd_evaluate)
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  format_warning = warnings.formatwarning
  warnings.formatwarning = lambda msg, *_: f"emotalk: warning: {msg}\n"
  try:
    result = args.func(args)
  except errors.InputError as e:
    print(f"emotalk: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("emotalk: interrupted", file=sys.stderr)
    return 130
  finally:
    warnings.formatwarning = format_warning
  print(json.dumps(result, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())

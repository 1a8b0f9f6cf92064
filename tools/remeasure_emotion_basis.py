"""Re-measures a stage-1 checkpoint's emotion basis, and the mean motion that depends on it.

Usage (from the repository root; the `av` dataset built):

  python tools/remeasure_emotion_basis.py --checkpoint landmark.npz [--data-dir /tmp/tfds_data] \
      [--out NEW.npz] [--json OUT.json]

Stage 1's `emotion_basis` is measured, not learnt (`evaluate.emotion_geometry.estimate_basis` of
the train split's labelled speakers, set by the trainer and frozen), and the network does not see
the emotion; its frozen `mean_displacement` is the train split's mean motion less each window's
emotion offset, so it depends on the basis. When the way the basis is measured changes, this
writes the checkpoint with both measured again and every other param as it was (`--out`), and
prints JSON: each class's length before and after (px of the 256 crop over landmarks 17-67), the
mean motion's largest change, and the held-out emotion geometry
(`train.landmark.emotion_geometry_scores`) of both.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from emotalk_jax import checkpoints
from emotalk_jax import emotions
from emotalk_jax import stages
from emotalk_jax.evaluate import emotion_geometry
from emotalk_jax.train import landmark as train_landmark
# pylint: enable=g-import-not-at-top,wrong-import-position


def _geometry(model, params, config, builder) -> dict:
  scores = train_landmark.emotion_geometry_scores(train_landmark.predict_fn(model), params, config,
                                                  builder)
  return {speaker: {
      **{k: score[k] for k in ("num_cosine_ok", "num_magnitude_ok", "num_both_ok")},
      "per_emotion": {name: {k: round(row[k], 3) for k in ("cosine", "magnitude_ratio",
                                                           "half_ratio") if k in row}
                      for name, row in score["per_emotion"].items()}}
          for speaker, score in scores.items()}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", required=True, help="a stage-1 .npz (`emotalk export`)")
  parser.add_argument("--data-dir", default="/tmp/tfds_data")
  parser.add_argument("--out", help="write the re-measured checkpoint here")
  parser.add_argument("--json")
  args = parser.parse_args(argv)

  model, params, config = stages.get("landmark").load(args.checkpoint)
  if "emotion_basis" not in params:
    raise SystemExit(f"{args.checkpoint}: has no emotion basis to measure")
  config.data_dir = args.data_dir
  builder = train_landmark.get_builder(config)
  old = np.asarray(params["emotion_basis"])
  new = emotion_geometry.estimate_basis(train_landmark.emotion_displacements(config, builder))
  remeasured = dict(params, emotion_basis=new)
  px = lambda d: round(emotion_geometry.PX_256 * emotion_geometry.expression_length(d), 2)
  report = {"length_px": {name: {"before": px(old[i]), "after": px(new[i])}
                          for i, name in enumerate(emotions.EMOTIONS)
                          if old[i].any() or new[i].any()}}
  if config.get("init_mean_displacement", False):  # Else the param is not the measured one.
    mean = train_landmark.mean_displacement(config, builder, basis=new)
    report["mean_motion_change_px"] = round(float(
        np.abs(mean - np.asarray(params["mean_displacement"])).max() * emotion_geometry.PX_256), 3)
    remeasured["mean_displacement"] = mean.astype(np.float32)
  report["held_out_before"] = _geometry(model, params, config, builder)
  report["held_out_after"] = _geometry(model, remeasured, config, builder)
  if args.out:
    checkpoints.export(remeasured, config, args.out)
    report["written"] = str(args.out)
  text = json.dumps(report, indent=2)
  print(text)
  if args.json:
    pathlib.Path(args.json).write_text(text + "\n")
  return report


if __name__ == "__main__":
  main()

"""Does stage 2 at 256 paint better than at 128, and does drawing the mouth's inside from a real
mouth? Each rendered as generation renders, scored at 256.

Usage (from the repository root; the `av` dataset built, see docs/data.md):

  python tools/eval_texture_resolution.py --workdir runs/texture_av256 [--checkpoint latest] \
      [--data_dir /tmp/tfds_data] [--max-clips N] [--json OUT.json] [--sheet MOUTHS.png]

On the held-out `av` clips (`emotalk evaluate texture`'s frames: every 4th frame, at most 20 per
clip, driven from the clip's first frame by each target's true landmarks), every method's frame is
made the way `emotalk generate` makes it for a 256-px output (`full_resolution.compose` on the
first frame's 256 crop) and scored against the real 256 frame:

* `shipped_128`: the shipped texture network at its own 128: flow and paint upsampled, the warp
  reading the 256 crop's own pixels, the mouth's inside as the network paints it;
* `shipped_128_drawn_mouth`: the same with the mouth's inside drawn from a real open mouth
  (`generate.mouth_interior`; today's generation);
* `shipped_at_256`: the same params run at 256 (the network is convolutional), not trained there;
* `trained_256`: the run's checkpoint (`configs/texture_av256.py`: the shipped params trained on at
  256);
* `tps`: the thin-plate-spline warp of the 256 first frame that stage 2 starts from (no network).

Prints JSON: per method PSNR / SSIM over the frame and the mouth box (`texture_baselines`' scores),
ms per frame for the network alone (20 targets a call), each 256 method's and the drawn mouth's
paired difference against `shipped_128`, and generation's two mouths' against `tps`, with 95 %
intervals over clips. `--sheet` writes the mouths of the most open frames (one per clip) at 2x:
the real frame, then each method, a row each.
"""

import argparse
import functools
import json
import pathlib
import sys
import time

import cv2
import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import texture_av256
from emotalk_jax import bundled
from emotalk_jax import stages
from emotalk_jax.evaluate import image_metrics
from emotalk_jax.generate import full_resolution
from emotalk_jax.generate import mouth_interior
from emotalk_jax.generate import pipeline
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.models import face_graph
from emotalk_jax.models import texture_losses
from emotalk_jax.models import texture_model
from emotalk_jax.train import texture_baselines as tb
# pylint: enable=g-import-not-at-top,wrong-import-position

SIZE = tb.LMD_SIZE  # 256: the output and the truth.
METRICS = ("psnr", "ssim", "mouth_psnr", "mouth_ssim")
SHEET_MOUTHS = 6
MAX_TARGETS = 20  # Targets per clip (`texture_baselines.test_clips`' default max_frames).


def _layers(render, params, source, landmarks, emotion, size: int):
  """(flow [T-1, s, s, 2], paint [T-1, s, s, 3] grey levels, seconds) of the network at `size` for
  targets 1.. driven from frame 0 (`render`: `pipeline._render` of the network, jitted), the paint
  kept near the mouth as generation keeps it (`full_resolution.near_mouth`). Every call renders
  MAX_TARGETS targets (the last repeated), so the network compiles once."""
  image = texture_model.to_float_image(jnp.asarray(tb.resize(source, size)))[None]
  n = len(landmarks) - 1
  targets = landmarks[1 + np.minimum(np.arange(MAX_TARGETS), n - 1)]
  start = time.perf_counter()
  out = jax.device_get(render(params, image, jnp.asarray(landmarks[:1]), jnp.asarray(targets),
                              jnp.broadcast_to(jnp.asarray(emotion), (MAX_TARGETS, emotion.size))))
  seconds = time.perf_counter() - start
  paint = np.stack([full_resolution.near_mouth(p, landmarks_lib.denormalize(t, size))
                    for p, t in zip(out["paint"][:n], landmarks[1:])])
  return out["flow"][:n], paint, seconds


def _composed(source, flow, paint, landmarks=None) -> np.ndarray:
  """[T, 256, 256, 3]: each frame as generation composes it on the 256 source crop; with
  `landmarks` [T + 1, 68, 2] (the source's, then the targets', in [-1, 1]) the mouth's inside is
  drawn (`mouth_interior`)."""
  size = flow.shape[1]
  # Photo (256) px -> crop px, pixel centres to pixel centres.
  scale = size / SIZE
  transform = np.array([[scale, 0.0, 0.5 * scale - 0.5], [0.0, scale, 0.5 * scale - 0.5]])
  canvas = full_resolution.crop_canvas(size, SIZE)
  if landmarks is None:
    openings = [None] * len(flow)
  else:
    inside = mouth_interior.interior(source, landmarks_lib.denormalize(landmarks[0], SIZE))
    openings = [mouth_interior.Opening(landmarks_lib.denormalize(t, size), inside)
                for t in landmarks[1:]]
  return np.stack([full_resolution.compose(source, transform, canvas, f, p, opening=o)
                   for f, p, o in zip(flow, paint, openings)])


def _score(into: dict, generated, truth, landmarks) -> None:
  """Appends one clip's METRICS of `generated` against `truth` [T, 256, 256, 3] (mouth box from
  the targets' `landmarks` [T, 68, 2]) to the lists of `into`."""
  scores = {**image_metrics.image_scores(generated, truth),
            **tb.mouth_scores(generated, truth, landmarks)}
  for k in METRICS:
    into[k].append(np.asarray(scores[k]))


def _mouth_sheet(picks, path) -> None:
  """Writes the mouths of `picks` [(opening, landmarks [68, 2], {row: [256, 256, 3]})], the most
  open first, side by side at 2x, one row per image kind."""
  picks = sorted(picks, key=lambda p: -p[0])[:SHEET_MOUTHS]
  rows = []
  for kind in picks[0][2]:
    cells = []
    for _, landmarks, images in picks:
      x0, y0, x1, y1 = np.round(texture_losses.mouth_box(landmarks, SIZE)).astype(int)
      cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
      y, x = np.clip([cy - 32, cx - 48], 0, [SIZE - 64, SIZE - 96])
      cells.append(cv2.resize(images[kind][y:y + 64, x:x + 96], (192, 128),
                              interpolation=cv2.INTER_CUBIC))
    row = np.concatenate(cells, axis=1)
    cv2.putText(row, kind, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    rows.append(row)
  cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="the 256 run (configs/texture_av256.py)")
  parser.add_argument("--checkpoint", default="latest", help="best, latest or a step")
  parser.add_argument("--data_dir", default="/tmp/tfds_data")
  parser.add_argument("--max-clips", type=int, default=None)
  parser.add_argument("--json", default=None, help="also write the JSON here")
  parser.add_argument("--sheet", default=None, help="write the most open mouths here (.png)")
  args = parser.parse_args(argv)

  config = texture_av256.get_config()
  config.data_dir = args.data_dir
  stage = stages.get("texture")
  shipped_model, shipped, _ = stage.load(bundled.CHECKPOINTS_DIR / "texture.npz")
  checkpoint = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
  trained_model, trained, _ = stage.load(args.workdir, config=config, checkpoint=checkpoint)
  methods = {"shipped_128": (shipped_model, shipped, 128),
             "shipped_at_256": (shipped_model, shipped, SIZE),
             "trained_256": (trained_model, trained, SIZE)}
  # Stage 2's layers exactly as generation computes them.
  render = pipeline._render  # pylint: disable=protected-access
  renders = {name: jax.jit(functools.partial(render, model))
             for name, (model, _, _) in methods.items()}
  drawn = "shipped_128_drawn_mouth"  # shipped_128's layers, the mouth's inside drawn.
  scores = {m: {k: [] for k in METRICS} for m in [*methods, drawn, "tps"]}
  seconds = {m: 0.0 for m in methods}
  num_frames, num_calls, picks = 0, 0, []
  for clip in tb.test_clips(config, max_clips=args.max_clips):
    frames, landmarks = clip["frames"], clip["landmarks"]
    if len(frames) < 2:
      continue
    truth = frames[1:]
    widest = int(np.argmax(face_graph.mouth_opening(landmarks[1:], np)))
    pick = {"real": truth[widest]}
    for name, (_, params, size) in methods.items():
      if not num_frames:  # Compile outside the timing.
        _layers(renders[name], params, frames[0], landmarks, clip["emotion"], size)
      flow, paint, spent = _layers(renders[name], params, frames[0], landmarks, clip["emotion"],
                                   size)
      seconds[name] += spent
      kinds = {name: None, drawn: landmarks} if name == "shipped_128" else {name: None}
      for kind, drawn_from in kinds.items():
        generated = _composed(frames[0], flow, paint, drawn_from)
        pick[kind] = generated[widest]
        _score(scores[kind], generated, truth, landmarks[1:])
    spline = np.stack([tb.tps_warp(frames[0], landmarks[0], lm) for lm in landmarks[1:]])
    pick["tps"] = spline[widest]
    _score(scores["tps"], spline, truth, landmarks[1:])
    picks.append((float(face_graph.mouth_opening(landmarks[1 + widest], np)), landmarks[1 + widest],
                  pick))
    num_frames, num_calls = num_frames + len(truth), num_calls + 1
  out = {"num_clips": len(scores["shipped_128"]["psnr"]), "num_frames": num_frames,
         "checkpoint": str(args.checkpoint)}
  for name in scores:
    out[name] = {k: round(float(np.mean(np.concatenate(v))), 4) for k, v in scores[name].items()}
    if name != "tps":
      per_frame = seconds[name if name in methods else "shipped_128"] / (num_calls * MAX_TARGETS)
      out[name]["network_ms_per_frame"] = round(1000.0 * per_frame, 2)
  out["paired_vs_shipped_128"] = {
      name: {k: tb.paired_difference(scores[name][k], scores["shipped_128"][k], True)
             for k in METRICS} for name in ("shipped_at_256", "trained_256", drawn)}
  out["paired_vs_tps"] = {
      name: {k: tb.paired_difference(scores[name][k], scores["tps"][k], True) for k in METRICS}
      for name in ("shipped_128", drawn)}
  if args.sheet:
    _mouth_sheet(picks, args.sheet)
  text = json.dumps(out, indent=1)
  print(text)
  if args.json:
    pathlib.Path(args.json).write_text(text)
  return out


if __name__ == "__main__":
  main()

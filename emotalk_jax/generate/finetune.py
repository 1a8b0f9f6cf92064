"""One-shot fine-tuning of the texture network on a single neutral photo of a new face.

The photo is aligned and cropped like the training data (`face.align_face`), then the generator
learns to rebuild it from itself under augmentation: each step draws pairs (source, target) of the
same photo, each under its own small affine transform (rotation, scale, shift) with the landmarks
moved along, both under the same random flip and colour change, and with jitter on the landmarks the
network sees; the loss is the L1 (+ the VGG19 perceptual term when weights are given) of the
generated target. Only the generator changes; the emotion input is neutral. The random draws are
made on the host (`draw_augmentation`), the pixels resampled inside the jitted step.

  from emotalk_jax.generate import finetune
    model, params, config = stages.get("texture").load("runs/texture_sample")
  params, report = finetune.finetune(params, config, "photo.jpg", steps=50)
  # report: {'psnr_before', 'psnr_after', 'ssim_before', 'ssim_after', 'seconds', ...}

  emotalk finetune --image photo.jpg --checkpoint runs/texture_sample --out adapted/ [--steps 50]

writes `adapted/texture_finetuned.npz` (+ `.json`; `stages.get('texture').load` reads it),
`adapted/report.json` and `adapted/reconstruction.png` (photo | before | after). The report's PSNR /
SSIM (`image_metrics`) are the mean over 8 held-out augmented pairs of the photo (a seed apart from
training's): how well the network rebuilds this face under new motions; `identity_psnr_*` rebuilds
the photo from itself.
"""

import json
import pathlib
import time
from typing import Optional, Union

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from emotalk_jax import checkpoints
from emotalk_jax import emotions
from emotalk_jax.evaluate import image_metrics
from emotalk_jax.media import face
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.media import video_io
from emotalk_jax.models import texture_losses
from emotalk_jax.models import texture_model
from emotalk_jax.models import vgg as vgg_lib
from emotalk_jax.models import warp
from emotalk_jax import stages

PARAMS_FILE = "texture_finetuned.npz"
# Adam at 4e-4 for 50 steps beats 5e-5 for 150 on held-out pairs (audrey.jpg, shipped 128 px
# checkpoint: 19.02 vs 18.42 dB, SSIM 0.769 vs 0.740; anne.jpg 22.51 dB vs 21.94 at 5e-5 x 100) in a
# third of the steps; 8e-4 was worse than 4e-4 on anne.jpg. docs/results.md "Fine-tuning".
DEFAULT_STEPS = 50
DEFAULT_LEARNING_RATE = 4e-4


def aligned_photo(image, size: int, source: str = "<image>", face_index: int = 0):
  """(crop [size, size, 3] uint8, landmarks [68, 2] in [-1, 1]) of the face in a photo (path or
  RGB array)."""
  if isinstance(image, (str, pathlib.Path)):
    source = str(image)
    image = video_io.read_image(image)
  aligned = face.align_face(np.asarray(image), source, size=size, face_index=face_index)
  return aligned.crop, landmarks_lib.normalize(aligned.landmarks, size)


def _affine(angle_degrees, scale, shift):
  """[..., 2, 3] maps p -> scale * R(angle) p + shift of normalised (x, y) coordinates."""
  angle = np.radians(angle_degrees)
  c, s = scale * np.cos(angle), scale * np.sin(angle)
  return np.stack([np.stack([c, -s, shift[..., 0]], -1), np.stack([s, c, shift[..., 1]], -1)], -2)


def draw_augmentation(rng: np.random.Generator,
                      points,
                      batch_size: int,
                      *,
                      max_rotation=5.0,
                      max_scale=0.05,
                      max_shift=0.04,
                      colour=0.1,
                      landmark_noise=0.004,
                      flip_prob=0.5) -> dict:
  """The random part of `batch_size` self-reconstruction pairs, drawn on the host.

  Each pair shows the photo under one random flip and colour change, each side under its own affine
  (rotation, scale, shift). The draws and everything that depends on the landmarks alone are
  computed here in numpy (a few hundred numbers a step), so the device only resamples pixels: the
  jitted augmentation compiles in ~0.7 s instead of ~4 s with jax.random's draws in the graph
  (either threefry implementation, 2-core CPU).

  Args:
    rng: the generator to draw from.
    points: the photo's landmarks [68, 2] in [-1, 1].
    batch_size: number of pairs.
    max_rotation (degrees), max_scale, max_shift (normalised units), colour (brightness / contrast /
      saturation amount), landmark_noise (std of the jitter on the landmarks the network sees),
      flip_prob: the augmentation's ranges.

  Returns:
    {'sampling': [2, n, 2, 3] per side (neutral, target) the affine map from an output pixel's
     normalised coordinates to where it samples the photo (the flip included), 'colour': [3, n]
     (brightness, contrast, saturation) and 'neutral_landmarks', 'target_landmarks' [n, 68, 2]},
    float32 numpy.
  """
  n = batch_size
  points = np.asarray(points, np.float64)
  flip = rng.random(n) < flip_prob
  affines = np.stack([
      _affine(rng.uniform(-max_rotation, max_rotation, n),
              1.0 + rng.uniform(-max_scale, max_scale, n),
              rng.uniform(-max_shift, max_shift, (n, 2))) for _ in range(2)])  # [2, n, 2, 3]
  linear, offset = affines[..., :2], affines[..., 2]
  inverse = np.linalg.inv(linear)
  # A flip is x -> -x in normalised coordinates (pixel centres map onto pixel centres), so it folds
  # into the sampling map: output p samples the photo at F A^-1 (p - shift).
  mirror = np.where(flip[:, None, None], np.diag([-1.0, 1.0]), np.eye(2))  # [n, 2, 2]
  sample_linear = mirror @ inverse
  sample_offset = -np.einsum("snij,snj->sni", sample_linear, offset)
  pts = np.where(flip[:, None, None], landmarks_lib.mirror(points), points)  # [n, 68, 2]
  moved = np.einsum("snij,nkj->snki", linear, pts) + offset[:, :, None]
  moved = moved + landmark_noise * rng.standard_normal(moved.shape)
  return {
      "sampling": np.concatenate([sample_linear, sample_offset[..., None]], -1).astype(np.float32),
      "colour": np.stack([rng.uniform(-colour, colour, n),
                          1.0 + rng.uniform(-colour, colour, n),
                          1.0 + rng.uniform(-colour, colour, n)]).astype(np.float32),
      "neutral_landmarks": moved[0].astype(np.float32),
      "target_landmarks": moved[1].astype(np.float32)
  }


def augment_images(photo, draws) -> tuple:
  """(neutral, target) [n, S, S, 3] images in [-1, 1]: a photo [S, S, 3] in [-1, 1] resampled and
  recoloured by `draw_augmentation`'s draws (jnp; traceable, borders repeat the edge pixels)."""
  sampling, colour = draws["sampling"], draws["colour"]
  n, s = sampling.shape[1], photo.shape[0]
  grid = warp.identity_grid(s, s).reshape(-1, 2)
  src = jnp.einsum("snij,qj->snqi", sampling[..., :2], grid) + sampling[:, :, None, :, 2]
  pix = ((src + 1.0) * s - 1.0) / 2.0  # [2, n, S*S, 2] pixel coordinates in the photo.
  images = jnp.broadcast_to(photo, (2 * n,) + photo.shape)
  moved = warp.sample_pixels(images, pix[..., 0].reshape(2 * n, s, s),
                             pix[..., 1].reshape(2 * n, s, s), "border").reshape(2, n, s, s, 3)
  brightness, contrast, saturation = (c[None, :, None, None, None] for c in colour)
  grey = jnp.mean(moved, -1, keepdims=True)
  moved = grey + saturation * (moved - grey)
  mean = jnp.mean(moved, (-3, -2, -1), keepdims=True)
  moved = jnp.clip((moved - mean) * contrast + mean + brightness, -1.0, 1.0)
  return moved[0], moved[1]


def augmented_pairs(rng: np.random.Generator, photo, points, batch_size: int, **augment) -> dict:
  """`batch_size` self-reconstruction pairs of one photo [S, S, 3] in [-1, 1] with landmarks [68,
  2] (`augment`: `draw_augmentation`'s ranges).

  Returns {'neutral', 'neutral_landmarks', 'target', 'target_landmarks'}: [n, S, S, 3] images in
  [-1, 1] and [n, 68, 2] landmarks (jittered by `landmark_noise`, normalised units).
  """
  draws = draw_augmentation(rng, points, batch_size, **augment)
  neutral, target = jax.jit(augment_images)(photo, draws)
  return {"neutral": neutral, "target": target, "neutral_landmarks": draws["neutral_landmarks"],
          "target_landmarks": draws["target_landmarks"]}


def neutral_emotion(n: int) -> jax.Array:
  return jnp.broadcast_to(jnp.asarray(emotions.parse_emotion("neutral").vector(), jnp.float32),
                          (n, texture_model.EMOTION_DIM))


def reconstruct(model, params, photo, points) -> np.ndarray:
  """The generator's output [S, S, 3] uint8 for (photo, its own landmarks, neutral)."""
  image = texture_model.to_float_image(jnp.asarray(photo))[None]
  lm = jnp.asarray(points, jnp.float32)[None]
  out = jax.jit(model.apply)({"params": params}, image, lm, lm, neutral_emotion(1))
  return texture_model.to_uint8_image(out["image"][0])


def _scorer(model, photo, points, held_out):
  """params -> (mean {'psnr', 'ssim'} of the generator's targets for fixed held-out pairs, PSNR of
  the photo rebuilt from itself, that rebuild [S, S, 3] uint8): one batch, one compiled forward."""
  photo_f = texture_model.to_float_image(jnp.asarray(photo))[None]
  points = jnp.asarray(points, jnp.float32)[None]
  inputs = (jnp.concatenate([held_out["neutral"], photo_f]),
            jnp.concatenate([held_out["neutral_landmarks"], points]),
            jnp.concatenate([held_out["target_landmarks"], points]),
            neutral_emotion(held_out["neutral"].shape[0] + 1))
  truth = texture_model.to_uint8_image(jnp.concatenate([held_out["target"], photo_f]))
  render = jax.jit(lambda params, *x: model.apply({"params": params}, *x)["image"])

  def scores(params):
    images = texture_model.to_uint8_image(render(params, *inputs))
    s = image_metrics.image_scores(images, truth)
    return ({"psnr": float(np.mean(s["psnr"][:-1])), "ssim": float(np.mean(s["ssim"][:-1]))},
            float(s["psnr"][-1]), images[-1])

  return scores


def make_train_step(model, optimizer, photo, batch_size: int, vgg=None,
                    perceptual_weight: float = 10.0):
  """The jitted fine-tuning step on a photo [S, S, 3] in [-1, 1]: `train_step(params, opt_state,
  draws) -> (params, opt_state, L1)` on the pairs of `draws` (`draw_augmentation`'s).

  One step per call: XLA:CPU runs a step inside lax.scan / fori_loop ~8x slower than as its own
  computation (measured at 128 px, batch 4), which outweighs the host round trip per step.
  """
  emotion = neutral_emotion(batch_size)

  @jax.jit
  def train_step(params, opt_state, draws):
    neutral, target = augment_images(photo, draws)

    def loss_fn(p):
      out = model.apply({"params": p}, neutral, draws["neutral_landmarks"],
                        draws["target_landmarks"], emotion)
      l1 = texture_losses.l1(out["image"], target)
      loss = l1
      if vgg:
        loss += perceptual_weight / 10.0 * vgg_lib.perceptual_loss(vgg, out["image"], target)
      return loss, l1

    (_, l1), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, l1

  return train_step


def finetune(params,
             model_or_config: Union[texture_model.TextureNet, ml_collections.ConfigDict],
             image,
             *,
             steps: int = DEFAULT_STEPS,
             learning_rate: float = DEFAULT_LEARNING_RATE,
             batch_size: int = 4,
             size: Optional[int] = None,
             seed: int = 0,
             vgg_weights: Optional[str] = None,
             perceptual_weight: float = 10.0,
             face_index: int = 0,
             augment: Optional[dict] = None,
             landmarks=None,
             progress: bool = False):
  """Adapts generator params to one neutral photo (self-reconstruction under augmentation).

  Args:
    params: the generator's params (e.g. from `stages.get('texture').load`).
    model_or_config: the `TextureNet`, or the training config (its model and `image_size`).
    image: a photo path or [H, W, 3] uint8 RGB array (the face is found and aligned), or, with
      `landmarks` ([68, 2] in [-1, 1]), an already aligned [S, S, 3] crop (e.g.
      `face.align_face`'s).
    steps, learning_rate, batch_size: Adam steps on `batch_size` augmented pairs each.
    size: crop size (default the config's `image_size`, else 128).
    vgg_weights: a VGG19 `.npz` adds the perceptual term (weight `perceptual_weight`).
    augment: overrides of `draw_augmentation`'s keyword arguments (the augmentation's ranges).
    progress: show a progress bar.

  Returns:
    (adapted params, report {'psnr_before', 'psnr_after', 'ssim_before', 'ssim_after' (mean over 8
     held-out augmented pairs of the photo, seeded apart from training: the photo rebuilt under new
     motions), 'identity_psnr_before', 'identity_psnr_after' (the photo from itself, no motion),
     'steps', 'seconds', 'size', 'final_l1'} plus the photo and its identity reconstructions [S, S,
     3] uint8 under '_photo', '_before', '_after' for plotting).

  Raises:
    InputError: unreadable photo or no face.
  """
  if isinstance(model_or_config, texture_model.TextureNet):
    model, size = model_or_config, size or 128
  else:
    model, size = texture_model.create_model(model_or_config), size or int(
        model_or_config.image_size)
  if landmarks is None:
    photo, points = aligned_photo(image, size, face_index=face_index)
  else:
    photo, points = np.asarray(image, np.uint8), np.asarray(landmarks, np.float32)
    if photo.shape != (size, size, 3) or points.shape != (68, 2):
      raise ValueError(
          f"an aligned crop must be [{size}, {size}, 3] with landmarks [68, 2]; got {photo.shape} "
          f"and {points.shape}")
  start = time.perf_counter()
  params = jax.tree.map(jnp.asarray, params)
  aug = dict(augment or {})
  photo_f = texture_model.to_float_image(jnp.asarray(photo))
  # Held-out pairs (their own seed) the report scores: the photo rebuilt under the augmentation's
  # motions.
  held_out = augmented_pairs(np.random.default_rng(seed + 1), photo_f, points, 8, **aug)
  scores = _scorer(model, photo, points, held_out)
  scores_before, identity_before, before = scores(params)
  vgg = vgg_lib.load_weights(vgg_weights) if vgg_weights else {}
  tx = optax.adam(learning_rate, b1=0.5, b2=0.999)
  train_step = make_train_step(model, tx, photo_f, batch_size, vgg, perceptual_weight)
  rng = np.random.default_rng(seed)
  opt_state = jax.jit(tx.init)(params)
  l1 = jnp.nan
  from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  for _ in tqdm.trange(steps,
                       desc="finetune",
                       unit="step",
                       disable=not progress,
                       dynamic_ncols=True):
    params, opt_state, l1 = train_step(params, opt_state,
                                       draw_augmentation(rng, points, batch_size, **aug))
  scores_after, identity_after, after = scores(params)
  seconds = time.perf_counter() - start
  report = {
      "psnr_before": scores_before["psnr"],
      "psnr_after": scores_after["psnr"],
      "ssim_before": scores_before["ssim"],
      "ssim_after": scores_after["ssim"],
      "identity_psnr_before": identity_before,
      "identity_psnr_after": identity_after,
      "steps": int(steps),
      "seconds": round(seconds, 2),
      "size": int(size),
      "final_l1": float(l1),
      "_photo": photo,
      "_before": before,
      "_after": after
  }
  return params, report


def main(image, checkpoint, out, steps: int = DEFAULT_STEPS, **kwargs) -> dict:
  """`emotalk finetune`: load (workdir or .npz), fine-tune, write params + report + a
  before/after PNG."""
  model, params, config = stages.get("texture").load(checkpoint)
  del model
  params, report = finetune(params, config, image, steps=steps, **kwargs)
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  npz = checkpoints.export(params, config, out / PARAMS_FILE)
  video_io.write_image(
      out / "reconstruction.png",
      np.concatenate(
          [report.pop("_photo"), report.pop("_before"),
           report.pop("_after")], 1))
  report.update(image=str(image), checkpoint=str(checkpoint), params=str(npz),
                reconstruction=str(out / "reconstruction.png"))
  (out / "report.json").write_text(json.dumps(report, indent=2))
  return report

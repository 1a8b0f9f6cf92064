"""One-shot fine-tuning of the texture network on a single neutral photo of a new face.

The photo is aligned and cropped like the training data (`face.align_face`), then the generator
learns to
rebuild it from itself under augmentation: each step draws pairs (source, target) of the same photo,
  each
under its own small affine transform (rotation, scale, shift) with the landmarks moved along, both
under the same random flip and colour change, and with jitter on the landmarks the network sees; the
loss is the L1 (+ the VGG19 perceptual term when weights are given) of the generated target. Only
the generator changes; the emotion input is neutral.

  from emotalk_jax.generate import finetune
    model, params, config = stages.get("texture").load("runs/texture_sample")
  params, report = finetune.finetune(params, config, "photo.jpg", steps=200)
  # report: {'psnr_before', 'psnr_after', 'ssim_before', 'ssim_after', 'seconds', ...}

  emotalk finetune --image photo.jpg --checkpoint runs/texture_sample --out adapted/ [--steps 200]

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


def aligned_photo(image, size: int, source: str = "<image>", face_index: int = 0):
  """(crop [size, size, 3] uint8, landmarks [68, 2] in [-1, 1]) of the face in a photo (path or
  RGB array)."""
  if isinstance(image, (str, pathlib.Path)):
    source = str(image)
    image = video_io.read_image(image)
  aligned = face.align_face(np.asarray(image), source, size=size, face_index=face_index)
  return aligned.crop, landmarks_lib.normalize(aligned.landmarks, size)


def _random_affine(rng, n: int, max_rotation: float, max_scale: float, max_shift: float):
  """[n, 2, 3] affine maps of normalised coordinates (crop -> transformed crop)."""
  k1, k2, k3 = jax.random.split(rng, 3)
  angle = jnp.radians(jax.random.uniform(k1, (n,), minval=-max_rotation, maxval=max_rotation))
  scale = 1.0 + jax.random.uniform(k2, (n,), minval=-max_scale, maxval=max_scale)
  shift = jax.random.uniform(k3, (n, 2), minval=-max_shift, maxval=max_shift)
  c, s = scale * jnp.cos(angle), scale * jnp.sin(angle)
  return jnp.stack([jnp.stack([c, -s, shift[:, 0]], -1), jnp.stack([s, c, shift[:, 1]], -1)], 1)


def _apply_affine(image, points, affine):
  """Moves an image [n, S, S, 3] and its landmarks [n, 68, 2] by affines [n, 2, 3] (normalised
  coordinates).
  Output pixel p takes the input at A^-1 p; borders repeat the edge pixels."""
  n, s = image.shape[0], image.shape[1]
  linear, offset = affine[:, :, :2], affine[:, :, 2]
  inverse = jnp.linalg.inv(linear)
  grid = warp.identity_grid(s, s).reshape(1, -1, 2)
  src = jnp.einsum("nij,nqj->nqi", inverse, grid - offset[:, None])  # [n, S*S, 2] normalised.
  pix = ((src + 1.0) * s - 1.0) / 2.0
  moved = warp.sample_pixels(image, pix[..., 0].reshape(n, s, s), pix[..., 1].reshape(n, s, s),
                             "border")
  return moved, jnp.einsum("nij,nkj->nki", linear, points) + offset[:, None]


def _colour_jitter(rng, images, amount: float):
  """The same random brightness / contrast / saturation change for images [2, n, S, S, 3] in [-1,
  1]."""
  n = images.shape[1]
  k1, k2, k3 = jax.random.split(rng, 3)
  shape = (1, n, 1, 1, 1)
  brightness = jax.random.uniform(k1, shape, minval=-amount, maxval=amount)
  contrast = 1.0 + jax.random.uniform(k2, shape, minval=-amount, maxval=amount)
  saturation = 1.0 + jax.random.uniform(k3, shape, minval=-amount, maxval=amount)
  grey = jnp.mean(images, -1, keepdims=True)
  images = grey + saturation * (images - grey)
  mean = jnp.mean(images, (-3, -2, -1), keepdims=True)
  return jnp.clip((images - mean) * contrast + mean + brightness, -1.0, 1.0)


def augmented_pairs(rng,
                    photo,
                    points,
                    batch_size: int,
                    *,
                    max_rotation=5.0,
                    max_scale=0.05,
                    max_shift=0.04,
                    colour=0.1,
                    landmark_noise=0.004,
                    flip_prob=0.5) -> dict:
  """`batch_size` self-reconstruction pairs of one photo [S, S, 3] in [-1, 1] with landmarks [68,
  2].

  Returns {'neutral', 'neutral_landmarks', 'target', 'target_landmarks'}: [n, S, S, 3] images in
  [-1, 1] and [n, 68, 2] landmarks (the input landmarks jittered by `landmark_noise`, normalised
  units).
  """
  keys = jax.random.split(rng, 6)
  images = jnp.broadcast_to(photo, (batch_size,) + photo.shape)
  pts = jnp.broadcast_to(points, (batch_size,) + points.shape)
  flip = jax.random.bernoulli(keys[0], flip_prob, (batch_size,))
  images = jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)
  pts = jnp.where(flip[:, None, None], landmarks_lib.mirror(pts, jnp), pts)
  src, src_pts = _apply_affine(
      images, pts, _random_affine(keys[1], batch_size, max_rotation, max_scale, max_shift))
  tgt, tgt_pts = _apply_affine(
      images, pts, _random_affine(keys[2], batch_size, max_rotation, max_scale, max_shift))
  src, tgt = _colour_jitter(keys[3], jnp.stack([src, tgt]), colour)
  return {"neutral": src, "target": tgt,
          "neutral_landmarks": src_pts + landmark_noise * jax.random.normal(keys[4], src_pts.shape),
          "target_landmarks": tgt_pts + landmark_noise * jax.random.normal(keys[5], tgt_pts.shape)}


def neutral_emotion(n: int) -> jax.Array:
  return jnp.broadcast_to(jnp.asarray(emotions.parse_emotion("neutral").vector(), jnp.float32),
                          (n, texture_model.EMOTION_DIM))


def reconstruct(model, params, photo, points) -> np.ndarray:
  """The generator's output [S, S, 3] uint8 for (photo, its own landmarks, neutral)."""
  image = texture_model.to_float_image(jnp.asarray(photo))[None]
  lm = jnp.asarray(points, jnp.float32)[None]
  out = jax.jit(model.apply)({"params": params}, image, lm, lm, neutral_emotion(1))
  return texture_model.to_uint8_image(out["image"][0])


def _pair_scorer(model, pairs):
  """params -> mean {'psnr', 'ssim'} of the generator's targets for fixed `augmented_pairs`."""
  apply = jax.jit(model.apply)
  truth = texture_model.to_uint8_image(pairs["target"])

  def scores(params):
    out = apply({"params": params}, pairs["neutral"], pairs["neutral_landmarks"],
                pairs["target_landmarks"], neutral_emotion(truth.shape[0]))
    s = image_metrics.image_scores(texture_model.to_uint8_image(out["image"]), truth)
    return {"psnr": float(np.mean(s["psnr"])), "ssim": float(np.mean(s["ssim"]))}

  return scores


def finetune(params,
             model_or_config: Union[texture_model.TextureNet, ml_collections.ConfigDict],
             image,
             *,
             steps: int = 150,
             learning_rate: float = 5e-5,
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
    augment: overrides of `augmented_pairs`' keyword arguments.
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
  # Held-out pairs (their own seed) the report scores: the photo rebuilt under the augmentation's
  # motions.
  held_out = augmented_pairs(jax.random.PRNGKey(seed + 1),
                             texture_model.to_float_image(jnp.asarray(photo)),
                             jnp.asarray(points, jnp.float32), 8, **aug)
  held_out_scores = _pair_scorer(model, held_out)
  scores_before, before = held_out_scores(params), reconstruct(model, params, photo, points)
  vgg = vgg_lib.load_weights(vgg_weights) if vgg_weights else {}
  tx = optax.adam(learning_rate, b1=0.5, b2=0.999)
  photo_f = texture_model.to_float_image(jnp.asarray(photo))
  points_j = jnp.asarray(points, jnp.float32)
  emotion = neutral_emotion(batch_size)

  @jax.jit
  def step(params, opt_state, rng):
    pairs = augmented_pairs(rng, photo_f, points_j, batch_size, **aug)

    def loss_fn(p):
      out = model.apply({"params": p}, pairs["neutral"], pairs["neutral_landmarks"],
                        pairs["target_landmarks"], emotion)
      l1 = texture_losses.l1(out["image"], pairs["target"])
      loss = l1
      if vgg:
        loss += perceptual_weight / 10.0 * vgg_lib.perceptual_loss(vgg, out["image"],
                                                                   pairs["target"])
      return loss, l1

    (_, l1), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, l1

  opt_state = tx.init(params)
  rng = jax.random.PRNGKey(seed)
  l1 = jnp.nan
  from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  for _ in tqdm.trange(steps,
                       desc="finetune",
                       unit="step",
                       disable=not progress,
                       dynamic_ncols=True):
    rng, key = jax.random.split(rng)
    params, opt_state, l1 = step(params, opt_state, key)
  after = reconstruct(model, params, photo, points)
  seconds = time.perf_counter() - start
  scores_after = held_out_scores(params)
  same_before = image_metrics.image_scores(before[None], photo[None])
  same_after = image_metrics.image_scores(after[None], photo[None])
  report = {
      "psnr_before": scores_before["psnr"],
      "psnr_after": scores_after["psnr"],
      "ssim_before": scores_before["ssim"],
      "ssim_after": scores_after["ssim"],
      "identity_psnr_before": float(same_before["psnr"][0]),
      "identity_psnr_after": float(same_after["psnr"][0]),
      "steps": int(steps),
      "seconds": round(seconds, 2),
      "size": int(size),
      "final_l1": float(l1),
      "_photo": photo,
      "_before": before,
      "_after": after
  }
  return params, report


def main(image, checkpoint, out, steps: int = 150, **kwargs) -> dict:
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

"""Stage 2 training: the flow-guided texture network (neutral image + landmarks + emotion -> frame)
as a GAN.

A library in the style of the google/flax examples: `train_and_evaluate(config, workdir)` does the
whole run; `emotalk train texture --config configs/texture.py --workdir DIR` calls it.

Training pairs: every frame of a K-frame window (`config.window`) of a clip is a target, driven from
  the
clip's identity reference (`neutral_frame`, `neutral_landmarks`: a neutral clip of the same speaker,
or the clip's first frame) with the frame's own landmarks and the clip's emotion. Frames are resized
in the step to `config.image_size` (the datasets store 256).

One jitted step updates the generator and the discriminator together (params {'generator',
'discriminator'}, one `train_lib.TrainState`, `optax.multi_transform` with their own learning
rates): both gradients come from the same params, and `stop_gradient` keeps each network's loss off
the other. It is sharded exactly like stage 1 (`train_lib.make_train_step`: params replicated, batch
along 'data').

Losses (a weight of 0 turns a term off; the log lists the terms that are on):
  generator  l1_weight |G - real| + landmark_l1_weight (the same, weighted towards the target
             landmarks) + mouth_l1_weight (the same, over a box around the target's mouth) +
             rgb_l1_weight (L1 of the decoder's frame before the occlusion blend) +
             correction_weight
             (L1 of the output minus the warped neutral image: what the texture branch paints) +
             perceptual_weight VGG19 (only with `config.vgg_weights`, see
             `emotalk_jax/models/vgg.py`) + adversarial_weight (hinge or LSGAN) +
             feature_matching_weight (discriminator features) + flow_smoothness_weight (edge-aware,
             every flow scale) + flow_residual_weight (px the flow departs from the landmarks'
             spline); both flow terms see only what the motion branch adds to the spline; +
             occlusion_weight mean(1 - occlusion)
  discriminator  hinge / LSGAN on real vs generated frames, conditioned on the target landmark map.

What it writes in `workdir`:
  config.json          the run's config (`stages.get("texture").load` rebuilds the model from it).
  checkpoints/<step>/  Orbax: params (generator + discriminator), opt_state, step, rng + the input
                       position (the last `max_checkpoints_to_keep` and the best by eval PSNR).
  metrics.jsonl, events.out.tfevents.*   train and eval scalars.
  samples/step_<N>.png rows of neutral | target landmarks | generated | ground truth | flow.
Resume, SIGTERM and the NaN stop are `train_lib.train_loop`'s.
Warm start: `config.init_from` (another run's latest params or an exported generator `.npz`, fresh
optimizer); with `init_from_partial` only the params whose path and shape fit are taken
(`checkpoints.merge_params`), so a changed layer starts fresh.

Inference: `stages.get("texture").load(workdir_or_npz)` -> (model, generator params, config);
`stages.get("texture").export_run` writes the generator params as a plain `.npz` (+ `.json` config).
"""

import logging
import pathlib
from typing import Optional, Union

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_pipelines import input_pipeline  # Import first: keeps TensorFlow off the GPUs.
from emotalk_jax import checkpoints
from emotalk_jax.evaluate import image_metrics
from emotalk_jax.media import video_io
from emotalk_jax.models import landmark_maps
from emotalk_jax.models import texture_losses
from emotalk_jax.models import texture_model
from emotalk_jax.models import vgg as vgg_lib
from emotalk_jax import stages
from emotalk_jax.train import landmark as train_landmark
from emotalk_jax.train import loop as train_lib

STAGE = stages.get("texture")


# Model --------------------------------------------------------------------------------------------

def init_params(config, rng) -> dict:
  """{'generator': TextureNet params, 'discriminator': Discriminator params} at
  `config.image_size`."""
  g_rng, d_rng = jax.random.split(rng)
  return {
      "generator":
          texture_model.init_params(texture_model.create_model(config), g_rng, config.image_size),
      "discriminator":
          texture_model.init_params(texture_model.create_discriminator(config), d_rng,
                                    config.image_size)
  }


def make_optimizer(config):
  """(tx, generator lr schedule): `train_lib.make_optimizer` per network, the discriminator's at
  `config.disc_learning_rate`."""
  g_tx, schedule = train_lib.make_optimizer(config)
  d_config = ml_collections.ConfigDict(config.to_dict())
  d_config.learning_rate = config.disc_learning_rate
  d_tx, _ = train_lib.make_optimizer(d_config)
  tx = optax.multi_transform({
      "generator": g_tx,
      "discriminator": d_tx
  }, lambda params: {k: k for k in params})
  return tx, schedule


def load_vgg(config) -> dict:
  """The frozen VGG19 weights when the perceptual term is on, else {} (see
  `emotalk_jax/models/vgg.py`)."""
  if config.perceptual_weight > 0 and config.vgg_weights:
    return vgg_lib.load_weights(config.vgg_weights, tuple(config.vgg_layers))
  if config.perceptual_weight > 0:
    logging.warning("perceptual_weight=%s but no vgg_weights file: the perceptual term is off",
                    config.perceptual_weight)
  return {}


# Batches ------------------------------------------------------------------------------------------

def make_pairs(batch, size: int, rng=None, source_frame_prob: float = 0.0) -> dict:
  """An input-pipeline batch -> N = B * K (neutral, target) pairs at `size`.

  The source of an example's K targets is its identity reference (`neutral_frame`), or, with
  probability `source_frame_prob` (drawn per example with `rng`), the first frame of its own window:
  the evaluation's "drive a clip from its first frame" case, with the small motions of nearby
  frames.

  Returns {'neutral' [N, s, s, 3] in [-1, 1], 'neutral_landmarks' [N, 68, 2], 'target' [N, s, s, 3],
  'target_landmarks' [N, 68, 2], 'emotion' [N, 9]}.
  """
  frames = batch["frames"]
  b, k = frames.shape[:2]
  neutral, neutral_landmarks = batch["neutral_frame"], batch["neutral_landmarks"]
  if source_frame_prob > 0:
    first = jax.random.bernoulli(rng, source_frame_prob, (b,))
    neutral = jnp.where(first[:, None, None, None], frames[:, 0], neutral)
    neutral_landmarks = jnp.where(first[:, None, None], batch["landmarks"][:, 0], neutral_landmarks)
  def per_frame(x):  # [B, ...] -> [B * K, ...]: the clip's reference for each of its K frames.
    return jnp.repeat(x, k, axis=0)
  return {
      "neutral":
          texture_model.resize_images(texture_model.to_float_image(per_frame(neutral)), size),
      "neutral_landmarks":
          per_frame(neutral_landmarks).astype(jnp.float32),
      "target":
          texture_model.resize_images(
              texture_model.to_float_image(frames.reshape((b * k,) + frames.shape[2:])), size),
      "target_landmarks":
          batch["landmarks"].reshape(b * k, -1, 2).astype(jnp.float32),
      "emotion":
          per_frame(batch["emotion"]).astype(jnp.float32),
  }


def generate(model, params, pairs) -> dict:
  return model.apply({"params": params}, pairs["neutral"], pairs["neutral_landmarks"],
                     pairs["target_landmarks"], pairs["emotion"])


# Losses -------------------------------------------------------------------------------------------

def generator_reconstruction_losses(out, pairs, config, vgg) -> dict:
  """The generator's non-adversarial terms {'l1', 'flow_smoothness', 'flow_residual', 'occlusion',
  ['landmark_l1'], ['mouth_l1'], ['rgb_l1'], ['correction'] (each only when weighted),
  ['perceptual']} (unweighted)."""
  terms = {"l1": texture_losses.l1(out["image"], pairs["target"])}
  if config.get("landmark_l1_weight", 0.0) > 0:
    terms["landmark_l1"] = texture_losses.landmark_l1(out["image"], pairs["target"],
                                                      pairs["target_landmarks"],
                                                      config.landmark_l1_sigma_px)
  if config.get("mouth_l1_weight", 0.0) > 0:
    terms["mouth_l1"] = texture_losses.mouth_l1(out["image"], pairs["target"],
                                                pairs["target_landmarks"])
  if config.get("rgb_l1_weight", 0.0) > 0:
    terms["rgb_l1"] = texture_losses.l1(out["rgb"], pairs["target"])
  if config.get("correction_weight", 0.0) > 0:
    # L1 of what the texture branch paints over the warped neutral image: below the L1 weight, paint
    # that
    # only splits the difference (a blurred silhouette where the warp is unsure) no longer pays.
    terms["correction"] = texture_losses.l1(out["image"], jax.lax.stop_gradient(out["warped"]))
  # Both flow terms see only what the network adds to the spline: the spline is the geometry the
  # landmarks
  # ask for, and smoothing it (it bends sharply at the lips) would pull the features off their
  # landmarks.
  residuals = out["residual_flows"]
  smooth, length = 0.0, 0.0
  for flow in residuals:
    smooth += texture_losses.flow_smoothness(
        flow, texture_model.resize_images(pairs["neutral"], flow.shape[1]))
    # Length in pixels of that scale (+1e-12 under the root: the residual heads start at exactly
    # zero,
    # where the plain norm's gradient is NaN).
    pixels = flow.astype(jnp.float32) * (flow.shape[1] / 2.0)
    length += jnp.mean(jnp.sqrt(jnp.sum(jnp.square(pixels), -1) + 1e-12))
  terms["flow_smoothness"] = smooth / len(residuals)
  # The share of the frame the decoder paints instead of the warped neutral image.
  terms["occlusion"] = jnp.mean(1.0 - out["occlusion"].astype(jnp.float32))
  terms["flow_residual"] = length / len(residuals)
  if vgg:
    terms["perceptual"] = vgg_lib.perceptual_loss(vgg,
                                                  out["image"],
                                                  pairs["target"],
                                                  tuple(config.vgg_layers),
                                                  tuple(config.vgg_layer_weights),
                                                  dtype=texture_model.compute_dtype(config))
  return terms


def loss_weights(config, with_vgg: bool) -> dict:
  """{term: weight} of the generator's loss; a term weighted 0 is off (perceptual is off without
  VGG)."""
  return {
      "l1": config.l1_weight,
      "landmark_l1": config.get("landmark_l1_weight", 0.0),
      "mouth_l1": config.get("mouth_l1_weight", 0.0),
      "rgb_l1": config.get("rgb_l1_weight", 0.0),
      "correction": config.get("correction_weight", 0.0),
      "flow_smoothness": config.flow_smoothness_weight,
      "flow_residual": config.get("flow_residual_weight", 0.0),
      "occlusion": config.get("occlusion_weight", 0.0),
      "perceptual": config.perceptual_weight if with_vgg else 0.0,
      "adversarial": config.adversarial_weight,
      "feature_matching": config.feature_matching_weight
  }


def make_loss_fn(model, disc, config):
  """loss_fn(params, batch, rng, vgg) -> (loss, metrics) for
  `train_lib.make_train_step(with_extra=True)`."""
  adversarial = config.adversarial_weight > 0 or config.feature_matching_weight > 0

  def loss_fn(params, batch, rng, vgg):
    pairs = make_pairs(batch, config.image_size, rng, config.get("source_frame_prob", 0.0))
    out = generate(model, params["generator"], pairs)
    terms = generator_reconstruction_losses(out, pairs, config, vgg)
    d_loss = jnp.zeros((), jnp.float32)
    if adversarial:
      d_params, lm = params["discriminator"], pairs["target_landmarks"]
      n = pairs["target"].shape[0]
      # The discriminator's own pass: real and (fixed) generated frames in one batch.
      both = disc.apply({"params": d_params},
                        jnp.concatenate([pairs["target"],
                                         jax.lax.stop_gradient(out["image"])]),
                        jnp.concatenate([lm, lm]))
      real = [([f[:n] for f in feats], logits[:n]) for feats, logits in both]
      fake_d = [([f[n:] for f in feats], logits[n:]) for feats, logits in both]
      d_loss = texture_losses.discriminator_loss(real, fake_d, config.gan_loss)
      # The generator's pass through a fixed discriminator.
      fake_g = disc.apply({"params": jax.lax.stop_gradient(d_params)}, out["image"], lm)
      terms["adversarial"] = texture_losses.generator_adversarial_loss(fake_g, config.gan_loss)
      terms["feature_matching"] = texture_losses.feature_matching_loss(real, fake_g)
    g_loss = sum(weight * terms[name]
                 for name, weight in loss_weights(config, bool(vgg)).items()
                 if weight > 0)
    metrics = dict(terms, generator_loss=g_loss, discriminator_loss=d_loss)
    return g_loss + d_loss, metrics

  return loss_fn


def active_terms(config, vgg) -> list:
  return [
      f"{name} x{weight:g}" for name, weight in loss_weights(config, bool(vgg)).items()
      if weight > 0
  ]


# Evaluation ---------------------------------------------------------------------------------------

def make_eval_step(model, mesh, size: int):
  """Jitted eval_step(generator params, batch) -> dict of [N, s, s, C] arrays: 'image', 'target',
  'neutral',
  'flow', 'target_map' (the target landmark edge map)."""

  def eval_step(params, batch):
    pairs = make_pairs(batch, size)
    out = generate(model, params, pairs)
    return {
        "image": out["image"],
        "target": pairs["target"],
        "neutral": pairs["neutral"],
        "flow": out["flow"],
        "target_map": texture_model.landmark_map(pairs["target_landmarks"], size)
    }

  repl, data = train_lib.replicated_sharding(mesh), train_lib.data_sharding(mesh)
  return jax.jit(eval_step, in_shardings=(repl, data), out_shardings=data)


def flow_to_rgb(flow, max_magnitude: Optional[float] = None) -> np.ndarray:
  """Flow [..., H, W, 2] -> uint8 RGB on the usual colour wheel (hue = direction, brightness =
  magnitude
  relative to `max_magnitude`, default the largest in the array)."""
  flow = np.asarray(flow, np.float32)
  magnitude = np.linalg.norm(flow, axis=-1)
  top = float(magnitude.max()) if max_magnitude is None else max_magnitude
  angle = (np.degrees(np.arctan2(flow[..., 1], flow[..., 0])) % 360.0) / 2.0  # OpenCV hue: 0..180.
  hsv = np.stack(
      [angle, np.full_like(angle, 255.0), 255.0 * np.clip(magnitude / max(top, 1e-6), 0, 1)], -1)
  flat = hsv.reshape(-1, 1, 3).astype(np.uint8)
  return cv2.cvtColor(flat, cv2.COLOR_HSV2RGB).reshape(hsv.shape)


def sample_grid(outputs, num_rows: int = 4) -> np.ndarray:
  """Rows of neutral | target landmarks | generated | ground truth | flow, as one uint8 image."""
  rows = []
  for i in range(min(num_rows, outputs["image"].shape[0])):
    rows.append(
        np.concatenate([
            texture_model.to_uint8_image(outputs["neutral"][i]),
            landmark_maps.to_rgb(outputs["target_map"][i]),
            texture_model.to_uint8_image(outputs["image"][i]),
            texture_model.to_uint8_image(outputs["target"][i]),
            flow_to_rgb(outputs["flow"][i])
        ],
                       axis=1))
  return np.concatenate(rows, axis=0)


def evaluate(eval_step, params, config, builder, mesh, *, grid_path=None) -> dict:
  """Mean PSNR / SSIM / L1 of generated vs true frames over `config.num_eval_batches` test batches
  (fixed windows, driven from each clip's identity reference); writes a sample grid of the first
  batch."""
  it = input_pipeline.test_windows(builder, config, mesh)
  scores = {}
  for i in range(config.num_eval_batches):
    outputs = {k: train_lib.to_host(v) for k, v in eval_step(params, next(it)).items()}
    for k, v in image_metrics.image_scores(texture_model.to_uint8_image(outputs["image"]),
                                           texture_model.to_uint8_image(outputs["target"])).items():
      scores.setdefault(k, []).append(v)
    if i == 0 and grid_path is not None and jax.process_index() == 0:
      video_io.write_image(grid_path, sample_grid(outputs, config.num_grid_rows))
  return {k: float(np.mean(np.concatenate(v))) for k, v in scores.items()}


# Training -----------------------------------------------------------------------------------------

def warm_start_params(source, fresh) -> dict:
  """The params `config.init_from` names: a run directory's latest checkpoint, or an exported
  generator `.npz` (`emotalk export texture`, e.g. the shipped sample checkpoint), whose run's
  discriminator is then `fresh`'s.

  Raises:
    FileNotFoundError: no such file, or no checkpoint in the directory.
  """
  path = pathlib.Path(source)
  if path.suffix == ".npz":
    if not path.is_file():
      raise FileNotFoundError(f"init_from: no such params file: {path}")
    return {
        "generator": checkpoints.load_params_npz(path),
        "discriminator": jax.device_get(fresh["discriminator"])
    }
  init = checkpoints.CheckpointManager(path / "checkpoints")
  try:
    return init.restore_params()
  finally:
    init.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
  """Trains the texture GAN, evaluating and checkpointing periodically; resumes from `workdir`.

  Returns the final metrics: {'step', 'preempted', 'train/<m>', 'eval/psnr', 'eval/ssim',
    'eval/l1'}.

  Raises:
    FloatingPointError: the loss or gradient norm became NaN/Inf (message: the step and the last
      checkpoint to resume from).
  """
  workdir = train_lib.start_run(config, workdir)
  mesh = input_pipeline.make_mesh()
  builder = train_landmark.get_builder(config)
  train_iter = input_pipeline.InputIterator(builder,
                                            config.train_split,
                                            batch_size=config.batch_size,
                                            window=config.window,
                                            seed=config.seed,
                                            mesh=mesh,
                                            shuffle_buffer=config.shuffle_buffer)
  model, disc = texture_model.create_model(config), texture_model.create_discriminator(config)
  vgg = load_vgg(config)
  logging.info("training the texture network at %d px on %s with %d device(s); loss terms: %s",
               config.image_size, builder.info.full_name, jax.device_count(),
               ", ".join(active_terms(config, vgg)))
  tx, schedule = make_optimizer(config)
  init_rng, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  state = train_lib.TrainState.create(init_params(config, init_rng), tx, train_rng)
  ckpt = checkpoints.CheckpointManager(workdir / "checkpoints",
                                       max_to_keep=config.max_checkpoints_to_keep,
                                       best_metric=STAGE.best_metric,
                                       best_mode=STAGE.best_mode)
  if ckpt.latest_step() is not None:
    state, data_state = ckpt.restore(state)
    train_iter.set_state(data_state)
    logging.info("resumed from checkpoint step %d", int(state.step))
  elif config.get("init_from"):  # Warm start: another run's params, a fresh optimizer and step 0.
    params = warm_start_params(config.init_from, state.params)
    if config.get("init_from_partial"):
      params, kept, dropped = checkpoints.merge_params(params, state.params)
      logging.info("init_from_partial: fresh %s; dropped %s", kept or "none", dropped or "none")
    else:
      checkpoints.check_params_match(params, state.params,
                                     f"init_from params of {config.init_from}")
    state = train_lib.TrainState.create(jax.tree.map(jnp.asarray, params), tx, train_rng)
    logging.info("initialised from %s", config.init_from)
  state = train_lib.replicate(state, mesh)
  train_step = train_lib.make_train_step(make_loss_fn(model, disc, config),
                                         tx,
                                         mesh,
                                         schedule,
                                         with_extra=True)
  eval_step = make_eval_step(model, mesh, config.image_size)

  def evaluate_fn(state, step):
    grid = workdir / "samples" / f"step_{step:06d}.png" if config.num_grid_rows else None
    return evaluate(eval_step, state.params["generator"], config, builder, mesh, grid_path=grid)

  return train_lib.train_loop(config,
                              workdir,
                              state=state,
                              train_step=train_step,
                              train_iter=train_iter,
                              ckpt=ckpt,
                              evaluate_fn=evaluate_fn,
                              step_args=(train_lib.replicate(vgg, mesh),))

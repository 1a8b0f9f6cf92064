"""`emotalk bench landmark|texture`: training steps/s and inference frames/s of the two networks."""

import os
import platform
import statistics
import time


def _texture_config(size: int):
  """The training config benchmarked at `size`: configs/texture_sample.py (128) or
  configs/texture.py (256),
  with 8 (neutral, target) pairs per step (4 windows of 2 frames)."""
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module("configs.texture_sample" if size ==
                                   128 else "configs.texture").get_config()
  config.batch_size, config.window = 4, 2
  return config


def _synthetic_texture_batch(config, rng) -> dict:
  """A batch shaped like the input pipeline's: random 256 frames, template landmarks with jitter."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from emotalk_jax.media import face  # pylint: disable=g-import-not-at-top
  from emotalk_jax.media import landmarks  # pylint: disable=g-import-not-at-top
  b, k = config.batch_size, config.window
  template = landmarks.normalize(face.template(256), 256)
  emotion = np.zeros((b, 9), np.float32)
  emotion[:, 4] = emotion[:, 8] = 1.0
  return {
      "frames": rng.integers(0, 256, (b, k, 256, 256, 3), dtype=np.uint8),
      "landmarks": (template + rng.normal(0, 0.01, (b, k, 68, 2))).astype(np.float32),
      "neutral_frame": rng.integers(0, 256, (b, 256, 256, 3), dtype=np.uint8),
      "neutral_landmarks": np.broadcast_to(template, (b, 68, 2)).astype(np.float32),
      "emotion": emotion
  }


def _steps_per_second(fn, args_fn, num_steps: int, rounds: int = 1) -> float:
  """Calls of `fn` per second after one untimed call (the compilation): the median over `rounds`
  rounds of `num_steps` calls (one round can meet a busy moment of a shared machine)."""
  jax_block(fn(*args_fn()))
  rates = []
  for _ in range(rounds):
    start = time.perf_counter()
    for _ in range(num_steps):
      out = fn(*args_fn())
    jax_block(out)
    rates.append(num_steps / (time.perf_counter() - start))
  return statistics.median(rates)


def jax_block(tree) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(tree)


def landmark_benchmark(train_steps: int = 20, clip_seconds: float = 60.0, infer_repeats: int = 3,
                       config_name: str = "landmark_av") -> dict:
  """Stage 1 speed with a config (default the shipped checkpoint's, `configs/landmark_av.py`:
  Whisper features in; `landmark_sample`: log-mel), on a synthetic batch of its shape: training
  steps/s and examples/s (windows of `config.window` frames), and inference frames/s of the landmark
  network alone on a `clip_seconds` clip at 25 fps, in one call and the way `emotalk generate`
  streams it (`generate.predict_landmarks`: chunks of 250 frames with 16 frames of context). The
  Whisper
  encoder's own cost is `emotalk bench speech`."""
  import importlib  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  from emotalk_jax.generate import pipeline as generate  # pylint: disable=g-import-not-at-top
  from emotalk_jax.models import face_graph  # pylint: disable=g-import-not-at-top
  from emotalk_jax.models import landmark_model  # pylint: disable=g-import-not-at-top
  from emotalk_jax.models import whisper_weights  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import landmark as train_landmark  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import loop as train_lib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{config_name}").get_config()
  rng = np.random.default_rng(0)
  mesh = input_pipeline.make_mesh()
  model = landmark_model.create_model(config)
  tx, schedule = train_lib.make_optimizer(config)
  params = landmark_model.init_params(model, jax.random.PRNGKey(0), num_frames=config.window)
  holder = {
      "state":
          train_lib.replicate(train_lib.TrainState.create(params, tx, jax.random.PRNGKey(1)), mesh)
  }
  step = train_lib.make_train_step(train_landmark.make_loss_fn(model, config), tx, mesh, schedule)
  b, k = config.batch_size, config.window
  template = face_graph.schematic_face()
  emotion = np.zeros((b, landmark_model.EMOTION_VECTOR_SIZE), np.float32)
  emotion[:, 4] = emotion[:, -1] = 1.0
  batch = train_lib.shard_batch(
      {
          "mel":
              rng.normal(-4, 3, (b, k, landmark_model.MEL_WINDOW, landmark_model.N_MELS)).astype(
                  np.float32),
          "speech":
              rng.normal(0, 1, (b, k, landmark_model.SPEECH_FEATURES)).astype(np.float32),
          "emotion":
              emotion,
          "has_audio":
              np.ones(b, bool),
          "landmarks": (template + rng.normal(0, 0.01, (b, k, 68, 2))).astype(np.float32),
          "neutral_landmarks":
              np.broadcast_to(template, (b, 68, 2)).astype(np.float32)
      }, mesh)

  def train_once():
    holder["state"], metrics = step(holder["state"], batch)
    return metrics

  train_sps = _steps_per_second(train_once, tuple, train_steps)
  frames = int(round(clip_seconds * generate.FPS))
  params = holder["state"].params
  mel, emo, neutral = landmark_model.dummy_inputs(1, frames)
  features = rng.normal(0, 1, (frames, landmark_model.SPEECH_FEATURES)).astype(np.float32)
  inputs = {"mel": mel, "speech": features[None], "emotion": emo, "neutral_landmarks": neutral}
  apply = jax.jit(lambda p, x: landmark_model.apply(model, p, x)["landmarks"])
  one_call = frames * _steps_per_second(lambda: apply(params, inputs), tuple, infer_repeats)
  models = generate.Models(model, jax.device_get(params), config, None, None, None,
                           None if model.speech_input == "mel" else whisper_weights.load_encoder())
  log_mel = rng.normal(-4, 3, (int(clip_seconds * 100), landmark_model.N_MELS)).astype(np.float32)
  track = np.repeat(emotion[:1], frames, axis=0)
  streamed = frames * _steps_per_second(
      lambda: generate.predict_landmarks(models, log_mel, track, template, speech=features), tuple,
      infer_repeats)
  return {
      "benchmark": "landmark",
      "config": f"configs/{config_name}.py",
      "speech_input": model.speech_input,
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
      "device": str(jax.devices()[0].platform),
      "num_devices": jax.device_count(),
      "batch_size": b,
      "window": k,
      "train_steps_per_s": round(train_sps, 2),
      "train_examples_per_s": round(train_sps * b, 1),
      "train_frames_per_s": round(train_sps * b * k, 1),
      "clip_seconds": clip_seconds,
      "clip_frames": frames,
      "inference_fps_one_call": round(one_call, 1),
      "inference_fps_streamed": round(streamed, 1),
      "params": int(sum(x.size for x in jax.tree.leaves(params)))
  }


def texture_benchmark(sizes=(128, 256),
                      batch_sizes=(1, 8, 32),
                      train_steps: int = 5,
                      infer_rounds: int = 3,
                      infer_frames: int = 32) -> dict:
  """Stage 2 speed: GAN training steps/s (generator + discriminator, L1 + adversarial + feature
  matching + flow smoothness; no VGG) and generator inference frames/s per batch size, at each
  size: the median of `infer_rounds` rounds of at least `infer_frames` frames each."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  from emotalk_jax import cache  # pylint: disable=g-import-not-at-top
  from emotalk_jax.models import texture_model  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import loop as train_lib  # pylint: disable=g-import-not-at-top
  from emotalk_jax.train import texture as train_texture  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  mesh = input_pipeline.make_mesh()
  results = []
  for size in sizes:
    config = _texture_config(size)
    model, disc = texture_model.create_model(config), texture_model.create_discriminator(config)
    tx, schedule = train_texture.make_optimizer(config)
    params = train_texture.init_params(config, jax.random.PRNGKey(0))
    state = train_lib.replicate(train_lib.TrainState.create(params, tx, jax.random.PRNGKey(1)),
                                mesh)
    step = train_lib.make_train_step(train_texture.make_loss_fn(model, disc, config),
                                     tx,
                                     mesh,
                                     schedule,
                                     with_extra=True)
    batch = train_lib.shard_batch(_synthetic_texture_batch(config, rng), mesh)
    holder = {"state": state}

    def train_once(batch=batch, step=step):
      holder["state"], metrics = step(holder["state"], batch, {})
      return metrics

    train_sps = _steps_per_second(train_once, tuple, train_steps)
    fps = {}
    for b in batch_sizes:
      inputs = texture_model.dummy_inputs(b, size)
      g = holder["state"].params["generator"]
      # Compiled as generation compiles it (its CPU options included).
      apply = cache.compiled(f"bench texture {model!r}",
                             lambda g, *x, model=model: model.apply({"params": g}, *x)["image"],
                             g, *inputs, cpu_options=cache.CONV_NET_CPU_OPTIONS)
      fps[str(b)] = round(
          b * _steps_per_second(lambda g=g, inputs=inputs, apply=apply: apply(g, *inputs),
                                tuple, -(-infer_frames // b), infer_rounds), 1)
    results.append({
        "size": size,
        "width": config.model.width,
        "pairs_per_step": config.batch_size * config.window,
        "train_steps_per_s": round(train_sps, 2),
        "inference_fps_by_batch": fps,
        "generator_params": int(sum(x.size for x in jax.tree.leaves(params["generator"])))
    })
  return {
      "benchmark": "texture",
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
      "device": str(jax.devices()[0].platform),
      "num_devices": jax.device_count(),
      "results": results
  }

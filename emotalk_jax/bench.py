"""Benchmarks that print JSON. Timings are wall-clock on the machine that runs them; tests never assert them."""

import os
import pathlib
import platform
import tempfile
import time

import cv2

from emotalk_jax import audio
from emotalk_jax import samples
from emotalk_jax import tracking
from emotalk_jax import video_io

SHARED_DATA = pathlib.Path(os.environ.get("EMOTALK_SHARED_DATA", pathlib.Path.cwd().parent / "shared" / "data"))
# Real clips of the two sizes the issue names, when ../shared/data is present.
SHARED_CLIPS = ("video/mead_dreamtalk/M030_front_neutral_level1_001.mp4",  # 256x256
                "video/hdtf_sadtalker/WDA_BobMenendez_000.mp4")  # 512x512


def _default_clips(tmp: pathlib.Path) -> list[pathlib.Path]:
  """The shared 256 and 512 clips, else the bundled GRID clip centre-cropped and resized to both sizes."""
  if all((SHARED_DATA / c).exists() for c in SHARED_CLIPS):
    return [SHARED_DATA / c for c in SHARED_CLIPS]
  video = video_io.read_video(samples.GRID_CLIP)
  h, w = video.frames.shape[1:3]
  x0 = (w - h) // 2
  square = video.frames[:, :, x0:x0 + h]
  out = []
  for size in (256, 512):
    path = tmp / f"grid_{size}.mp4"
    video_io.write_video(path, (cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in square),
                         fps=video.fps, audio=video.audio)
    out.append(path)
  return out


def _timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def _bench_clip(path: pathlib.Path, num_frames: int, size: int) -> dict:
  video, t_decode = _timed(lambda: video_io.read_video(path, max_frames=num_frames, with_audio=False))
  frames = video.frames
  n = len(frames)
  tracking.track_landmarks(frames[:2], source=str(path))  # loads the dlib models outside the timings
  track, t_track = _timed(lambda: tracking.track_landmarks(frames, source=str(path)))
  every, t_every = _timed(lambda: tracking.track_landmarks(frames, source=str(path), detect_every=1))
  _, t_align = _timed(lambda: tracking.align_video(frames, source=str(path), size=size, track=track))
  wave = audio.decode_audio(path)
  mel_fps = None
  if wave is not None:
    audio.log_mel(wave[:audio.SAMPLE_RATE])  # librosa's first call pays for lazy imports
    _, t_mel = _timed(lambda: audio.mel_windows(audio.log_mel(wave), n))
    mel_fps = round(n / t_mel, 1)
  total = t_decode + t_track + t_align
  return {
      "clip": path.name, "resolution": f"{frames.shape[2]}x{frames.shape[1]}", "frames": n, "crop_size": size,
      "fps_total": round(n / total, 1),
      "fps_decode": round(n / t_decode, 1),
      "fps_detect_landmarks_tracking": round(n / t_track, 1),
      "detector_calls_tracking": track.num_detections,
      "fps_detect_landmarks_every_frame": round(n / t_every, 1),
      "fps_align_crop": round(n / t_align, 1),
      "fps_total_detect_every_frame": round(n / (t_decode + t_every + t_align), 1),
      "fps_log_mel": mel_fps,
      "frames_filled": track.num_filled,
  }


def preprocess_benchmark(clips=None, num_frames: int = 100, size: int = 256) -> dict:
  """Preprocessing throughput (decode + detect + landmarks + align/crop) in frames/s per clip."""
  with tempfile.TemporaryDirectory() as tmp:
    paths = [pathlib.Path(c) for c in clips] if clips else _default_clips(pathlib.Path(tmp))
    results = [_bench_clip(p, num_frames, size) for p in paths]
  return {"benchmark": "preprocess", "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
          "opencv_threads": cv2.getNumThreads(), "clips": results}


def _texture_config(size: int):
  """The training config benchmarked at `size`: configs/texture_sample.py (128) or configs/texture.py (256),
  with 8 (neutral, target) pairs per step (4 windows of 2 frames)."""
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module("configs.texture_sample" if size == 128 else "configs.texture").get_config()
  config.batch_size, config.window = 4, 2
  return config


def _synthetic_texture_batch(config, rng) -> dict:
  """A batch shaped like the input pipeline's: random 256 frames, template landmarks with jitter."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from emotalk_jax import face  # pylint: disable=g-import-not-at-top
  from emotalk_jax import landmarks  # pylint: disable=g-import-not-at-top
  b, k = config.batch_size, config.window
  template = landmarks.normalize(face.template(256), 256)
  emotion = np.zeros((b, 9), np.float32)
  emotion[:, 4] = emotion[:, 8] = 1.0
  return {"frames": rng.integers(0, 256, (b, k, 256, 256, 3), dtype=np.uint8),
          "landmarks": (template + rng.normal(0, 0.01, (b, k, 68, 2))).astype(np.float32),
          "neutral_frame": rng.integers(0, 256, (b, 256, 256, 3), dtype=np.uint8),
          "neutral_landmarks": np.broadcast_to(template, (b, 68, 2)).astype(np.float32), "emotion": emotion}


def _steps_per_second(fn, args_fn, num_steps: int) -> float:
  out = fn(*args_fn())  # Compile + one step.
  jax_block(out)
  start = time.perf_counter()
  for _ in range(num_steps):
    out = fn(*args_fn())
  jax_block(out)
  return num_steps / (time.perf_counter() - start)


def jax_block(tree) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(tree)


def landmark_benchmark(train_steps: int = 20, clip_seconds: float = 60.0, infer_repeats: int = 3) -> dict:
  """Stage 1 speed with the shipped sample config (`configs/landmark_sample.py`, a synthetic batch of its
  shape): training steps/s and examples/s (windows of `config.window` frames), and inference frames/s of the
  landmark network alone on a `clip_seconds` clip at 25 fps, in one call and the way `emotalk generate`
  streams it (`generate.predict_landmarks`: chunks of 250 frames with 16 frames of context)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from configs import landmark_sample  # pylint: disable=g-import-not-at-top
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  from emotalk_jax import face_graph  # pylint: disable=g-import-not-at-top
  from emotalk_jax import generate  # pylint: disable=g-import-not-at-top
  from emotalk_jax import landmark_model  # pylint: disable=g-import-not-at-top
  from emotalk_jax import train_landmark  # pylint: disable=g-import-not-at-top
  from emotalk_jax import train_lib  # pylint: disable=g-import-not-at-top
  config = landmark_sample.get_config()
  rng = np.random.default_rng(0)
  mesh = input_pipeline.make_mesh()
  model = train_landmark.create_model(config)
  tx, schedule = train_lib.make_optimizer(config)
  params = train_landmark.init_params(model, config, jax.random.PRNGKey(0))
  holder = {"state": train_lib.replicate(train_lib.TrainState.create(params, tx, jax.random.PRNGKey(1)), mesh)}
  step = train_lib.make_train_step(train_landmark.make_loss_fn(model, config), tx, mesh, schedule)
  b, k = config.batch_size, config.window
  template = face_graph.schematic_face()
  emotion = np.zeros((b, landmark_model.EMOTION_VECTOR_SIZE), np.float32)
  emotion[:, 4] = emotion[:, -1] = 1.0
  batch = train_lib.shard_batch({
      "mel": rng.normal(-4, 3, (b, k, landmark_model.MEL_WINDOW, landmark_model.N_MELS)).astype(np.float32),
      "emotion": emotion, "has_audio": np.ones(b, bool),
      "landmarks": (template + rng.normal(0, 0.01, (b, k, 68, 2))).astype(np.float32),
      "neutral_landmarks": np.broadcast_to(template, (b, 68, 2)).astype(np.float32)}, mesh)

  def train_once():
    holder["state"], metrics = step(holder["state"], batch)
    return metrics

  train_sps = _steps_per_second(train_once, tuple, train_steps)
  frames = int(round(clip_seconds * generate.FPS))
  params = holder["state"].params
  mel, emo, neutral = landmark_model.dummy_inputs(1, frames)
  apply = jax.jit(lambda p, m: model.apply({"params": p}, m, emo, neutral)["landmarks"])
  one_call = frames * _steps_per_second(lambda: apply(params, mel), tuple, infer_repeats)
  models = generate.Models(model, jax.device_get(params), config, None, None, None)
  speech = rng.normal(-4, 3, (int(clip_seconds * 100), landmark_model.N_MELS)).astype(np.float32)
  track = np.repeat(emotion[:1], frames, axis=0)
  streamed = frames * _steps_per_second(
      lambda: generate.predict_landmarks(models, speech, track, template), tuple, infer_repeats)
  return {"benchmark": "landmark", "config": "configs/landmark_sample.py",
          "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "device": str(jax.devices()[0].platform),
          "num_devices": jax.device_count(), "batch_size": b, "window": k,
          "train_steps_per_s": round(train_sps, 2), "train_examples_per_s": round(train_sps * b, 1),
          "train_frames_per_s": round(train_sps * b * k, 1), "clip_seconds": clip_seconds, "clip_frames": frames,
          "inference_fps_one_call": round(one_call, 1), "inference_fps_streamed": round(streamed, 1),
          "params": int(sum(x.size for x in jax.tree.leaves(params)))}


def texture_benchmark(sizes=(128, 256), batch_sizes=(1, 8, 32), train_steps: int = 5, infer_repeats: int = 3) -> dict:
  """Stage 2 speed: GAN training steps/s (generator + discriminator, L1 + adversarial + feature matching +
  flow smoothness; no VGG) and generator inference frames/s per batch size, at each size."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  from emotalk_jax import texture_model  # pylint: disable=g-import-not-at-top
  from emotalk_jax import train_lib  # pylint: disable=g-import-not-at-top
  from emotalk_jax import train_texture  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  mesh = input_pipeline.make_mesh()
  results = []
  for size in sizes:
    config = _texture_config(size)
    model, disc = train_texture.create_model(config), train_texture.create_discriminator(config)
    tx, schedule = train_texture.make_optimizer(config)
    params = train_texture.init_params(config, jax.random.PRNGKey(0))
    state = train_lib.replicate(train_lib.TrainState.create(params, tx, jax.random.PRNGKey(1)), mesh)
    step = train_lib.make_train_step(train_texture.make_loss_fn(model, disc, config), tx, mesh, schedule,
                                     with_extra=True)
    batch = train_lib.shard_batch(_synthetic_texture_batch(config, rng), mesh)
    holder = {"state": state}

    def train_once(batch=batch, step=step):
      holder["state"], metrics = step(holder["state"], batch, {})
      return metrics

    train_sps = _steps_per_second(train_once, tuple, train_steps)
    apply = jax.jit(model.apply)
    fps = {}
    for b in batch_sizes:
      inputs = texture_model.dummy_inputs(b, size)
      g = holder["state"].params["generator"]
      fps[str(b)] = round(b * _steps_per_second(lambda g=g, inputs=inputs: apply({"params": g}, *inputs)["image"],
                                                tuple, infer_repeats), 1)
    results.append({"size": size, "width": config.model.width, "pairs_per_step": config.batch_size * config.window,
                    "train_steps_per_s": round(train_sps, 2), "inference_fps_by_batch": fps,
                    "generator_params": int(sum(x.size for x in jax.tree.leaves(params["generator"])))})
  return {"benchmark": "texture", "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
          "device": str(jax.devices()[0].platform), "num_devices": jax.device_count(), "results": results}

"""`emotalk bench preprocess`: preprocessing throughput (decode, face tracking, landmarks, crop,
log-mel) in
frames/s; also where the benchmarks find `../shared/data`."""

import os
import pathlib
import platform
import tempfile
import time

import cv2

from emotalk_jax import bundled
from emotalk_jax.media import audio
from emotalk_jax.media import tracking
from emotalk_jax.media import video_io

SHARED_DATA = bundled.shared_data_root()
# Real clips of the two sizes the issue names, when ../shared/data is present.
SHARED_CLIPS = ("video/mead_dreamtalk/M030_front_neutral_level1_001.mp4",  # 256x256
                "video/hdtf_sadtalker/WDA_BobMenendez_000.mp4")  # 512x512


def _default_clips(tmp: pathlib.Path) -> list[pathlib.Path]:
  """The shared 256 and 512 clips, else the bundled GRID clip centre-cropped and resized to both
  sizes."""
  if all((SHARED_DATA / c).exists() for c in SHARED_CLIPS):
    return [SHARED_DATA / c for c in SHARED_CLIPS]
  video = video_io.read_video(bundled.GRID_CLIP)
  h, w = video.frames.shape[1:3]
  x0 = (w - h) // 2
  square = video.frames[:, :, x0:x0 + h]
  out = []
  for size in (256, 512):
    path = tmp / f"grid_{size}.mp4"
    video_io.write_video(
        path, (cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in square),
        fps=video.fps,
        audio=video.audio)
    out.append(path)
  return out


def _timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def _bench_clip(path: pathlib.Path, num_frames: int, size: int) -> dict:
  video, t_decode = _timed(
      lambda: video_io.read_video(path, max_frames=num_frames, with_audio=False))
  frames = video.frames
  n = len(frames)
  # loads the dlib models outside the timings
  tracking.track_landmarks(frames[:2], source=str(path))
  track, t_track = _timed(lambda: tracking.track_landmarks(frames, source=str(path)))
  every, t_every = _timed(
      lambda: tracking.track_landmarks(frames, source=str(path), detect_every=1))
  _, t_align = _timed(
      lambda: tracking.align_video(frames, source=str(path), size=size, track=track))
  wave = audio.decode_audio(path)
  mel_fps = None
  if wave is not None:
    audio.log_mel(wave[:audio.SAMPLE_RATE])  # librosa's first call pays for lazy imports
    _, t_mel = _timed(lambda: audio.mel_windows(audio.log_mel(wave), n))
    mel_fps = round(n / t_mel, 1)
  total = t_decode + t_track + t_align
  return {
      "clip": path.name,
      "resolution": f"{frames.shape[2]}x{frames.shape[1]}",
      "frames": n,
      "crop_size": size,
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

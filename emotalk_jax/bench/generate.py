"""Generation benchmark (`emotalk bench generate`): what a user waits for, end to end.

Every run is a fresh process timed from its first line, so importing, loading the networks,
compiling (or reading the compilation cache), finding the face, the speech encoder, both stages,
the full-resolution paste-back and the H.264 / AAC encoding all count, as a user sees them. Per
run: seconds to the first rendered frame, frames/s end to end, CPU seconds (user + system, all
threads: on a machine whose speed drifts, a steadier figure of the work done than the wall time),
peak RSS and the seconds by stage (rendering, pasting and encoding overlap, so those add up to more
than the wall time).

* `first_frame`: 10 s of speech at the smallest size, with an empty compilation cache (cold, a
  first run on a new machine) and again with the cache that run filled (warm, every later run).
* `speed`: each size and length of speech, warm (a 2 s run per size fills the cache first).
* `memory`: peak RSS against the length of speech at the smallest size (from `speed`; the median
  over `repeats` runs), and each run's glibc heap at its end (`background.heap_mb`: in use, free
  inside the heap, mapped; None elsewhere).

The photo is the bundled 512x512 astronaut, pasted back at its own resolution, its face searched
in a process of its own from the first line on, as `emotalk generate` does (that process's peak
RSS is reported beside the generating process's); the speech is the bundled CMU ARCTIC sentence
repeated, written to a wav file before the run starts. The networks are the shipped checkpoints: at their size (128), and at other sizes the
same params run at that size (the texture network is convolutional; it was trained at 128, so this
measures the speed a network of the shipped width would have at that size, not its quality). The
cache folder (compiled code, traced programs) is a temporary folder of the benchmark's own (the
user's is left alone). It runs unchanged on a GPU or TPU (install the `cuda` or `tpu` extra) and
reports the device it ran on.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
import soundfile

from emotalk_jax import bundled
from emotalk_jax.media import audio

_CHILD = r"""
import time
start = time.perf_counter()  # Before any import: start-up counts.
import json, pathlib, resource, sys
from emotalk_jax import bundled
from emotalk_jax.cli import main as cli
# As `emotalk generate` does: dlib searches the photo in a process of its own from the start.
search = cli.start_generating(bundled.ASTRONAUT_PHOTO, 0)
from emotalk_jax import checkpoints
from emotalk_jax import stages
from emotalk_jax.generate import pipeline as generate

size, batch, wav, work = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                          pathlib.Path(sys.argv[4]))
ckpt = bundled.CHECKPOINTS_DIR
if checkpoints.load_config(ckpt / "texture.npz").image_size != size:
  ckpt = work / f"shipped_at_{size}"
  if not (ckpt / "texture.npz").exists():
    _, params, config = stages.get("texture").load(bundled.CHECKPOINTS_DIR / "texture.npz")
    config.image_size = size
    ckpt.mkdir(exist_ok=True)
    for name in ("landmark.npz", "landmark.json"):
      (ckpt / name).write_bytes((bundled.CHECKPOINTS_DIR / name).read_bytes())
    checkpoints.export(params, config, ckpt / "texture.npz")
called = time.perf_counter()
summary = generate.generate(bundled.ASTRONAUT_PHOTO, wav, "happy:0.8", work / "out.mp4",
                            checkpoint=ckpt, render_batch=batch, progress=False,
                            face_search=search)
done = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
from emotalk_jax.generate import background
import jax
device = jax.devices()[0]
print("RESULT " + json.dumps({
    "size": size, "speech_seconds": summary["seconds"], "frames": summary["frames"],
    "render_batch": batch,
    "first_frame_seconds": round(called - start + summary["first_frame_seconds"], 2),
    "wall_seconds": round(done - start, 2),
    "fps": round(summary["frames"] / (done - start), 2),
    "startup_seconds": round(called - start, 2),
    "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
    "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    "face_search_peak_rss_mb": round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    "heap_mb_at_end": background.heap_mb(),
    "seconds_by_stage": summary["seconds_by_stage"],
    "device": f"{device.platform}: {device.device_kind}"}))
"""

PRIMING_SECONDS = 2.0


def _run(size: int, seconds: float, batch: int, work: str, cache_dir: str) -> dict:
  """One generation in a fresh process (see the module docstring)."""
  # Written here, not in the timed process: a user's process gets a file, not the waveform.
  wav = os.path.join(work, f"speech_{seconds:g}.wav")
  if not os.path.exists(wav):
    wave = audio.load_audio(bundled.ARCTIC_SPEECH)
    soundfile.write(wav, np.resize(wave, int(seconds * audio.SAMPLE_RATE)), audio.SAMPLE_RATE)
  env = dict(os.environ, EMOTALK_CACHE_DIR=cache_dir)
  proc = subprocess.run([sys.executable, "-c", _CHILD, str(size), str(batch), wav, work],
                        capture_output=True, text=True, check=False, env=env)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode or not lines:
    raise RuntimeError(f"benchmark run failed (size {size}, {seconds} s):\n{proc.stderr[-3000:]}")
  return json.loads(lines[-1][len("RESULT "):])


def generate_benchmark(sizes=(128, 256), lengths=(10.0, 60.0, 300.0), batch: int = 8,
                       lengths_by_size=None, repeats: int = 1, progress: bool = True) -> dict:
  """Runs the benchmark (module docstring) and returns its figures.

  Args:
    sizes: network crop sizes S.
    lengths: seconds of speech per run.
    batch: frames per stage-2 call (`generate(render_batch=)`; more for throughput on an
      accelerator).
    lengths_by_size: {size: lengths} overriding `lengths` for some sizes (e.g. fewer at 256 on a
      CPU).
    repeats: runs per size and length (the warm 10 s run is the first at the smallest size); each
      reports its run of median fps, and the median peak memory, with every run's figures beside
      them (peak memory varies from run to run with how glibc's heap fragments).
    progress: a line on stderr per run.
  """
  lengths_by_size = lengths_by_size or {}

  def log(text):
    if progress:
      print(f"bench generate: {text}", file=sys.stderr, flush=True)

  with tempfile.TemporaryDirectory() as work:
    cache = os.path.join(work, "xla_cache")
    smallest = min(sizes)
    log(f"{smallest} px, 10 s of speech, empty compilation cache")
    cold = _run(smallest, 10.0, batch, work, cache)
    log(f"{smallest} px, 10 s of speech, warm cache")
    warm = _run(smallest, 10.0, batch, work, cache)
    speed = {}
    for size in sizes:
      if size != smallest:
        log(f"{size} px: filling the compilation cache ({PRIMING_SECONDS:g} s of speech)")
        _run(size, PRIMING_SECONDS, batch, work, cache)
      runs = {}
      for seconds in lengths_by_size.get(size, lengths):
        done = [warm] if size == smallest and seconds == 10.0 else []
        for k in range(len(done), repeats):
          log(f"{size} px, {seconds:g} s of speech" + (f", run {k + 1}" if repeats > 1 else ""))
          done.append(_run(size, seconds, batch, work, cache))
        runs[f"{seconds:g}s"] = done
      speed[str(size)] = runs
  by_length = speed[str(smallest)]
  return {
      "render_batch": batch,
      "repeats": repeats,
      "first_frame": {"cold_cache": _brief(cold), "warm_cache": _brief(warm)},
      "speed": {size: {length: _median_run(done) for length, done in runs.items()}
                for size, runs in speed.items()},
      "memory": {length: {"peak_rss_mb": float(np.median([r["peak_rss_mb"] for r in done])),
                          "peak_rss_mb_runs": [r["peak_rss_mb"] for r in done],
                          "heap_mb_at_end_runs": [r["heap_mb_at_end"] for r in done],
                          "frames": done[0]["frames"],
                          "face_search_peak_rss_mb": max(r["face_search_peak_rss_mb"]
                                                         for r in done)}
                 for length, done in by_length.items()},
      "machine": {"device": warm["device"], "cpus": len(os.sched_getaffinity(0)),
                  "processor": platform.processor() or platform.machine()},
  }


def _median_run(runs: list) -> dict:
  """The run of median fps (the lower middle one of an even count), with every run's fps."""
  run = sorted(runs, key=lambda r: r["fps"])[(len(runs) - 1) // 2]
  return _brief(run) | {"seconds_by_stage": run["seconds_by_stage"],
                        "fps_runs": [r["fps"] for r in runs]}


def _brief(run: dict) -> dict:
  keys = ("frames", "first_frame_seconds", "startup_seconds", "wall_seconds", "cpu_seconds", "fps",
          "peak_rss_mb", "face_search_peak_rss_mb")
  return {k: run[k] for k in keys}


if __name__ == "__main__":
  print(json.dumps(generate_benchmark(), indent=2))

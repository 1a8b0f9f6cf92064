"""Generation benchmark (`emotalk bench generate`): end-to-end frames/s at 128 and 256, with and
without the one-shot fine-tune, where the time goes, and peak memory against the length of the
speech.

Each measurement runs in a fresh subprocess, so its peak RSS (`ru_maxrss`) is its own and
compilation is counted as a user would see it. Speech of any length is the bundled CMU ARCTIC
sentence repeated. The networks are the shipped sample checkpoints at their size (128) and, for
other sizes, untrained networks of the `configs/texture.py` architecture at that size: the speed of
a network does not depend on its weights.
"""

import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, pathlib, resource, sys, time
import jax, numpy as np, soundfile
from emotalk_jax import bundled
from emotalk_jax import checkpoints
from emotalk_jax.generate import pipeline as generate
from emotalk_jax.media import audio

size, seconds, finetune_steps = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
crop_only, work = sys.argv[4] == "1", pathlib.Path(sys.argv[5])
speech = audio.load_audio(bundled.ARCTIC_SPEECH)
wave = np.resize(speech, int(seconds * audio.SAMPLE_RATE))
wav = work / f"speech_{seconds:g}.wav"
soundfile.write(wav, wave, audio.SAMPLE_RATE)
ckpt = bundled.CHECKPOINTS_DIR
if checkpoints.load_config(ckpt / "texture.npz").image_size != size:
  from configs import texture
  from emotalk_jax.models import texture_model
  config = texture.get_config(); config.image_size = size
  ckpt = work / f"untrained_{size}"
  ckpt.mkdir(exist_ok=True)
  (ckpt / "landmark.npz").write_bytes((bundled.CHECKPOINTS_DIR / "landmark.npz").read_bytes())
  (ckpt / "landmark.json").write_bytes((bundled.CHECKPOINTS_DIR / "landmark.json").read_bytes())
  params = texture_model.init_params(texture_model.create_model(config), jax.random.PRNGKey(0),
                                     size)
  checkpoints.export(params, config, ckpt / "texture.npz")
t = time.perf_counter()
summary = generate.generate(bundled.ASTRONAUT_PHOTO, wav, "happy:0.8", work / "out.mp4",
                            checkpoint=ckpt, finetune_steps=finetune_steps, crop_only=crop_only,
                            progress=False)
summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print("RESULT " + json.dumps(summary))
"""


def _run(size: int, seconds: float, finetune_steps: int = 0, crop_only: bool = False) -> dict:
  with tempfile.TemporaryDirectory() as work:
    proc = subprocess.run([
        sys.executable, "-c", _CHILD,
        str(size),
        str(seconds),
        str(finetune_steps), "1" if crop_only else "0", work
    ],
                          capture_output=True,
                          text=True,
                          check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode or not lines:
    raise RuntimeError(f"benchmark run failed (size {size}, {seconds} s):\n{proc.stderr[-3000:]}")
  result = json.loads(lines[-1][len("RESULT "):])
  result.pop("output", None)
  return result


def generate_benchmark(sizes=(128, 256), seconds: float = 10.0, lengths=(10.0, 60.0, 300.0),
                       finetune_steps: int = 100) -> dict:
  """{'speed': per size {end-to-end fps (whole photo and crop only), with fine-tuning, seconds by
  stage},
  'memory': per speech length {peak RSS MB, fps}} on this machine (see the module docstring)."""
  speed = {}
  for size in sizes:
    full = _run(size, seconds)
    crop = _run(size, seconds, crop_only=True)
    tuned = _run(size, seconds, finetune_steps=finetune_steps)
    speed[str(size)] = {"frames": full["frames"], "fps": full["fps"], "fps_crop_only": crop["fps"],
                        "fps_with_finetune": tuned["fps"], "finetune_steps": finetune_steps,
                        "finetune_seconds": tuned["seconds_by_stage"].get("finetune"),
                        "seconds_by_stage": full["seconds_by_stage"]}
  memory = {}
  for length in lengths:
    run = _run(min(sizes), length)
    memory[f"{length:g}s"] = {
        "frames": run["frames"],
        "peak_rss_mb": run["peak_rss_mb"],
        "fps": run["fps"],
        "wall_seconds": run["wall_seconds"]
    }
  return {"speech_seconds": seconds, "speed": speed, "memory": memory,
          "machine": {"cpus": _cpu_count(), "device": _device()}}


def _cpu_count() -> int:
  return len(os.sched_getaffinity(0))


def _device() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  return str(jax.devices()[0].platform)


if __name__ == "__main__":
  print(json.dumps(generate_benchmark(), indent=2))

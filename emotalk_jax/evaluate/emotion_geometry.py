"""Emotion geometry: how far each part of a face moves with an emotion, measured on real clips.

A clip's shape is the per-coordinate median of its frames, each first moved by the similarity that
best fits its nose and eyes (`ALIGN_NODES`) onto a reference shape: head position, roll and distance
from the camera are not emotion, and those points move least with expressions. The median, not the
mean, so the speech's open-close gives the mouth's resting shape rather than a half-open mouth. An
emotion's displacement for one speaker is their emotional clip shape minus their neutral one, both
aligned to the same reference. Units: the [-1, 1] crop coordinates of the landmark model; `PX_256`
converts to pixels of a 256 crop.

Stage 1's emotion basis (`LandmarkNet.emotion_basis`) is `estimate_basis` of the training speakers'
displacements: per class, the mean over speakers of displacement / intensity, so intensity 1 is
MEAD's level 3.
"""

import collections
import dataclasses
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from emotalk_jax import emotions
from emotalk_jax.media import face
from emotalk_jax.media import landmarks as landmarks_lib

PX_256 = 128.0  # [-1, 1] crop units -> pixels of a 256 crop.
# Nose bridge, nostrils and eyes (iBUG 68): the similarity fit uses these.
ALIGN_NODES = np.arange(27, 48)
# Brows, eyes, nose and mouth: what the comparison of two displacements reads. The jaw outline is
# left out there because in a 2-D face it mostly carries head pitch and yaw (a bowed head squashes
# it), which differ between clips whatever the emotion.
EXPRESSION_NODES = np.arange(17, 68)
GROUPS = collections.OrderedDict([
    ("brows", np.arange(17, 27)),
    ("eyes", np.arange(36, 48)),
    ("mouth_corners", np.array([48, 54])),
    ("lips", np.r_[49:54, 55:68]),
    ("jaw", np.arange(0, 17)),
])
CHIN = 8
NEUTRAL = emotions.EMOTIONS.index("neutral")


@dataclasses.dataclass(frozen=True)
class Clip:
  """One labelled clip's landmarks.

  Attributes:
    speaker: speaker id (displacements are within a speaker).
    emotion: class name in `emotions.EMOTIONS`.
    intensity: in [0, 1] (MEAD level 3 = 1).
    landmarks: [T, 68, 2] in crop coordinates.
  """
  speaker: str
  emotion: str
  intensity: float
  landmarks: np.ndarray


@dataclasses.dataclass(frozen=True)
class Displacement:
  """One speaker's mean displacement for one emotion: `vector` [68, 2] (crop units), at
  `intensity`, from `num_clips` clips."""
  speaker: str
  emotion: str
  intensity: float
  vector: np.ndarray
  num_clips: int


def similarity_align(shape, reference, nodes=ALIGN_NODES) -> np.ndarray:
  """[68, 2] `shape` moved by the least-squares similarity (scale, rotation, translation) that best
  maps its `nodes` onto those of `reference` [68, 2]."""
  shape = np.asarray(shape, np.float64)
  reference = np.asarray(reference, np.float64)
  src, dst = shape[nodes], reference[nodes]
  src_mean, dst_mean = src.mean(0), dst.mean(0)
  # As complex numbers a similarity is z -> a z + b; least squares gives a in closed form.
  z_src = (src - src_mean) @ np.array([1.0, 1j])
  z_dst = (dst - dst_mean) @ np.array([1.0, 1j])
  a = np.vdot(z_src, z_dst) / np.vdot(z_src, z_src)
  moved = a * ((shape - src_mean) @ np.array([1.0, 1j]))
  return np.stack([moved.real, moved.imag], -1) + dst_mean


def clip_shape(landmarks, reference=None) -> np.ndarray:
  """[T, 68, 2] -> [68, 2]: the per-coordinate median over frames, each aligned to `reference`
  [68, 2] first (default: the unaligned median of the frames themselves)."""
  frames = np.asarray(landmarks, np.float64)
  reference = np.median(frames, axis=0) if reference is None else reference
  return np.median([similarity_align(f, reference) for f in frames], axis=0)


def displacements(clips: Iterable[Clip]) -> list[Displacement]:
  """Per speaker and emotion: the aligned mean clip shape minus the speaker's neutral shape.

  Speakers without a neutral clip are skipped (there is nothing to measure from); so are neutral
  clips themselves. A speaker's neutral shape is the mean of their neutral clips' shapes.
  """
  by_speaker = collections.defaultdict(list)
  for clip in clips:
    by_speaker[clip.speaker].append(clip)
  out = []
  for speaker, own in sorted(by_speaker.items()):
    neutral = [c.landmarks for c in own if c.emotion == "neutral"]
    if not neutral:
      continue
    # Both sides aligned to the same shape the same way, so the alignment's own error cancels.
    reference = np.mean([clip_shape(n) for n in neutral], axis=0)
    neutral_shape = np.mean([clip_shape(n, reference) for n in neutral], axis=0)
    by_emotion = collections.defaultdict(list)
    for c in own:
      if c.emotion != "neutral":
        by_emotion[c.emotion].append(c)
    for emotion, group in sorted(by_emotion.items()):
      shapes = [clip_shape(c.landmarks, reference) for c in group]
      out.append(Displacement(speaker, emotion, float(np.mean([c.intensity for c in group])),
                              (np.mean(shapes, axis=0) - neutral_shape).astype(np.float32),
                              len(group)))
  return out


def group_magnitudes(vector) -> dict:
  """[68, 2] displacement (crop units) -> {group: mean landmark distance in px of a 256 crop}."""
  distance = np.linalg.norm(np.asarray(vector, np.float64), axis=-1) * PX_256
  return {name: float(distance[nodes].mean()) for name, nodes in GROUPS.items()}


def estimate_basis(measured: Sequence[Displacement], symmetric: bool = True) -> np.ndarray:
  """The per-class displacement at intensity 1: for each class the direction of the mean over
  speakers of displacement / intensity, as long as the speakers measured at the class's strongest
  intensity move their faces (over `EXPRESSION_NODES`), its jaw outline reduced to the chin's drop
  (`hinged_jaw`).

  Intensity 1 is the data's strongest level (MEAD's level 3). Clips of an unspecified level count
  as 2/3 (`emotions.UNSPECIFIED_INTENSITY`), a guess, so they give direction, not size: divided by
  it, CREMA-D's weak angry halved the basis's (docs/results.md#stage-1-the-emotion-basis).

  Args:
    measured: `displacements` of the training speakers.
    symmetric: average each class with its left-right mirror image (training mirrors faces, and a
      one-sided basis would then be right only half the time).

  Returns:
    [8, 68, 2] float32 in `emotions.EMOTIONS` order; neutral, and classes no speaker shows, are 0.
  """
  basis = np.zeros((emotions.NUM_EMOTIONS, 68, 2), np.float64)
  size = np.zeros(emotions.NUM_EMOTIONS)
  for index, name in enumerate(emotions.EMOTIONS):
    rows = [d for d in measured if d.emotion == name and d.intensity > 0]
    if rows and index != NEUTRAL:
      basis[index] = np.mean([d.vector / d.intensity for d in rows], axis=0)
      strongest = max(d.intensity for d in rows)
      size[index] = np.mean([expression_length(d.vector / d.intensity) for d in rows
                             if d.intensity == strongest])
  if symmetric:
    # Mirroring a displacement: renumber the points and negate x (the crop is centred on x = 0).
    basis = 0.5 * (basis + landmarks_lib.mirror(basis))
  basis = hinged_jaw(basis)
  for index in np.flatnonzero(size):
    basis[index] *= size[index] / max(expression_length(basis[index]), 1e-12)
  return basis.astype(np.float32)


def expression_length(displacement) -> float:
  """The length of a [68, 2] displacement over `EXPRESSION_NODES`, as `compare` measures it."""
  return float(np.linalg.norm(np.asarray(displacement, np.float64)[EXPRESSION_NODES]))


def hinged_jaw(displacement) -> np.ndarray:
  """[..., 68, 2] displacements with the jaw outline (points 0-16) replaced by the chin's vertical
  move, passed on along the jaw as a jaw hinged at the outline's ends (0 at points 0 and 16, the
  whole of it at the chin, in between by height in the template).

  The measured outline mostly carries head pitch and yaw (see `EXPRESSION_NODES`): in a basis it
  widened the rendered face for contempt, disgust and sadness
  (docs/results.md#stage-1-the-emotion-basis). The chin's drop is kept: surprise and a broad smile
  open the jaw.
  """
  out = np.array(displacement, np.float64)
  jaw = face.template()[:17, 1].astype(np.float64)
  ends = 0.5 * (jaw[0] + jaw[16])
  share = np.clip((jaw - ends) / (jaw[CHIN] - ends), 0.0, 1.0)  # [17]
  out[..., :17, 0] = 0.0
  out[..., :17, 1] = share * out[..., CHIN:CHIN + 1, 1]
  return out


def compare(predicted, real, nodes=EXPRESSION_NODES) -> dict:
  """Cosine and magnitude ratio |predicted| / |real| of two [68, 2] displacements over `nodes`."""
  p = np.asarray(predicted, np.float64)[nodes].ravel()
  r = np.asarray(real, np.float64)[nodes].ravel()
  norm_p, norm_r = np.linalg.norm(p), np.linalg.norm(r)
  cosine = float(p @ r / (norm_p * norm_r)) if norm_p > 0 and norm_r > 0 else 0.0
  return {"cosine": cosine, "magnitude_ratio": float(norm_p / norm_r) if norm_r > 0 else 0.0}


def table(measured: Sequence[Displacement]) -> list[dict]:
  """Rows {speaker, emotion, intensity, num_clips, <group> px..., all px} for the docs' table."""
  rows = []
  for d in measured:
    distance = np.linalg.norm(d.vector.astype(np.float64), axis=-1) * PX_256
    rows.append({"speaker": d.speaker, "emotion": d.emotion, "intensity": round(d.intensity, 3),
                 "num_clips": d.num_clips, **{k: round(v, 2) for k, v in
                                              group_magnitudes(d.vector).items()},
                 "all": round(float(distance.mean()), 2)})
  return rows


def predicted_displacement(landmarks_by_emotion: Mapping[str, np.ndarray],
                           neutral_key: str = "neutral") -> dict:
  """Predicted sequences [T, 68, 2] per emotion text (same speech and face) -> {text: [68, 2]}:
  each sequence's aligned shape minus that of `neutral_key`, measured as for real clips."""
  reference = clip_shape(landmarks_by_emotion[neutral_key])
  neutral_shape = clip_shape(landmarks_by_emotion[neutral_key], reference)
  return {k: (clip_shape(v, reference) - neutral_shape).astype(np.float32)
          for k, v in landmarks_by_emotion.items() if k != neutral_key}


def score(real: Sequence[Displacement], predicted: Mapping[str, np.ndarray],
          half: Optional[Mapping[str, np.ndarray]] = None) -> dict:
  """The emotion-geometry targets for one held-out speaker.

  Args:
    real: that speaker's `displacements`.
    predicted: {class name: predicted [68, 2] at intensity 1}.
    half: {class name: predicted [68, 2] at intensity 0.5} (optional).

  Returns:
    {'per_emotion': {name: {cosine, magnitude_ratio, real_px, predicted_px[, half_ratio]}},
     'num_cosine_ok' (cosine >= 0.6), 'num_magnitude_ok' (ratio in [0.7, 1.3]), 'num_both_ok'}.
  """
  per = {}
  for d in real:
    if d.emotion not in predicted:
      continue
    row = compare(predicted[d.emotion], d.vector / d.intensity)
    row["real_px"] = group_magnitudes(d.vector / d.intensity)
    row["predicted_px"] = group_magnitudes(predicted[d.emotion])
    if half is not None and d.emotion in half:
      nodes = EXPRESSION_NODES
      full = np.linalg.norm(predicted[d.emotion][nodes])
      row["half_ratio"] = float(np.linalg.norm(half[d.emotion][nodes]) / full) if full else 0.0
    per[d.emotion] = row
  cos_ok = [k for k, v in per.items() if v["cosine"] >= 0.6]
  mag_ok = [k for k, v in per.items() if 0.7 <= v["magnitude_ratio"] <= 1.3]
  return {"per_emotion": per, "num_cosine_ok": len(cos_ok), "num_magnitude_ok": len(mag_ok),
          "num_both_ok": len(set(cos_ok) & set(mag_ok)), "num_emotions": len(per)}

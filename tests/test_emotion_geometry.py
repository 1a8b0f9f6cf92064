"""Tests for the emotion-geometry measurement (evaluate/emotion_geometry.py) on real landmarks."""

import numpy as np
import pytest

from emotalk_jax import emotions
from emotalk_jax.evaluate import emotion_geometry as eg
from emotalk_jax.media import landmarks as landmarks_lib

CORNERS = [48, 54]


def _similarity(shape, scale, angle, shift):
  c, s = np.cos(angle), np.sin(angle)
  return scale * shape @ np.array([[c, s], [-s, c]]) + np.asarray(shift)


def _smile(num_frames, amount=0.04):
  """[68, 2]: the mouth corners up and out by `amount` (crop units), nothing else."""
  d = np.zeros((68, 2))
  d[48], d[54] = (-amount, -amount), (amount, -amount)
  return d


def test_similarity_align_undoes_a_head_move(grid_clip):
  face = grid_clip.landmarks[0].astype(np.float64)
  moved = _similarity(face, 1.1, 0.2, (0.05, -0.03))
  np.testing.assert_allclose(eg.similarity_align(moved, face), face, atol=1e-9)


def test_displacements_recover_an_expression_under_head_motion(grid_clip):
  """A real speaking clip as the neutral one; the 'happy' clip is the same frames with the corners
  moved and the head turned and scaled: the measured displacement is the corners' move alone."""
  neutral = grid_clip.landmarks.astype(np.float64)
  smile = _smile(len(neutral))
  happy = np.stack([_similarity(f + smile, 0.9, -0.1, (0.02, 0.04)) for f in neutral])
  clips = [eg.Clip("s1", "neutral", 1 / 3, neutral), eg.Clip("s1", "happy", 1.0, happy),
           eg.Clip("s2", "happy", 1.0, happy)]  # No neutral clip: nothing to measure s2 from.
  (d,) = eg.displacements(clips)
  assert (d.speaker, d.emotion, d.num_clips) == ("s1", "happy", 1)
  # Exact off the corners; on them, in the neutral face's scale, which differs from a frame's by the
  # few per cent the speaking head moves.
  others = np.setdiff1d(np.arange(68), CORNERS)
  np.testing.assert_allclose(d.vector[others], 0.0, atol=1e-6)
  np.testing.assert_allclose(d.vector[CORNERS], smile[CORNERS], rtol=0.05)
  groups = eg.group_magnitudes(d.vector)
  assert groups["mouth_corners"] == pytest.approx(np.hypot(0.04, 0.04) * 128, rel=0.05)
  assert groups["brows"] < 1e-3 and groups["jaw"] < 1e-3


def test_basis_is_symmetric_as_large_as_the_strongest_level_and_zero_for_neutral(grid_clip):
  """Each class points where the speakers' displacements per unit intensity do on average, and is
  as long as those of the speakers measured at the strongest intensity: a level of 2/3 may be a
  guess (an unspecified level), so it gives direction, not size."""
  smile = _smile(1)
  lopsided = np.zeros((68, 2))
  lopsided[54] = (0.03, -0.03)  # One corner only: contempt-like.
  raised = np.zeros((68, 2))
  raised[17:27, 1] = -0.02  # Brows up.
  measured = [eg.Displacement("a", "happy", 1.0, smile, 1),
              eg.Displacement("b", "happy", 2 / 3, 2 / 3 * 0.5 * smile, 1),
              eg.Displacement("a", "surprised", 1.0, smile, 1),
              eg.Displacement("b", "surprised", 2 / 3, 2 / 3 * 3.0 * raised, 1),
              eg.Displacement("a", "contempt", 1.0, lopsided, 1)]
  basis = eg.estimate_basis(measured)
  index = {name: emotions.EMOTIONS.index(name) for name in ("happy", "surprised", "contempt")}
  # b's weak smile at an uncertain level does not shrink a's.
  np.testing.assert_allclose(basis[index["happy"]], smile, atol=1e-7)
  # b's brows turn the direction half way; the length stays a's.
  direction = 0.5 * (smile + 3.0 * raised)
  np.testing.assert_allclose(
      basis[index["surprised"]],
      direction * np.linalg.norm(smile[17:]) / np.linalg.norm(direction[17:]), atol=1e-7)
  # A one-sided displacement is spread over both sides, as long as the measured one.
  symmetric = 0.5 * (lopsided + landmarks_lib.mirror(lopsided))
  np.testing.assert_allclose(basis[index["contempt"]], np.sqrt(2) * symmetric, atol=1e-7)
  assert basis[index["contempt"]][48, 0] == -basis[index["contempt"]][54, 0] < 0
  others = [i for i in range(8) if i not in index.values()]
  assert not basis[others].any()
  one_sided = eg.estimate_basis(measured, symmetric=False)
  np.testing.assert_allclose(one_sided[index["contempt"]], lopsided, atol=1e-7)


def test_basis_jaw_keeps_the_chin_drop_not_the_outline_widening():
  """A measured jaw outline that widens by 0.03 on each side (a turned or bowed head) with the chin
  down 0.04: the basis keeps the drop, fading to 0 at the outline's ends, and no sideways move."""
  moved = _smile(1)
  moved[:8, 0], moved[9:17, 0] = -0.03, 0.03
  moved[:17, 1] += 0.02  # The whole outline lower...
  moved[8] = (0.0, 0.04)  # ...and the chin lower still.
  basis = eg.estimate_basis([eg.Displacement("a", "surprised", 1.0, moved, 1)])
  jaw = basis[emotions.EMOTIONS.index("surprised"), :17]
  assert not jaw[:, 0].any()
  assert jaw[8, 1] == pytest.approx(0.04) and jaw[0, 1] == jaw[16, 1] == 0.0
  assert np.all(np.diff(jaw[:9, 1]) >= 0) and np.all(np.diff(jaw[8:, 1]) <= 0)
  np.testing.assert_allclose(jaw[:, 1], jaw[::-1, 1], atol=0.004)  # As symmetric as the template.
  # The expression nodes are the measured ones.
  np.testing.assert_allclose(basis[emotions.EMOTIONS.index("surprised"), 17:], moved[17:],
                             atol=1e-7)


def test_compare_reads_direction_and_size_on_the_expression_nodes():
  smile = _smile(1)
  assert eg.compare(smile, smile) == {"cosine": pytest.approx(1.0), "magnitude_ratio": 1.0}
  assert eg.compare(-0.5 * smile, smile)["cosine"] == pytest.approx(-1.0)
  jaw_only = np.zeros((68, 2))
  jaw_only[8] = (0.0, 0.1)
  assert eg.compare(smile + jaw_only, smile) == {"cosine": pytest.approx(1.0),
                                                 "magnitude_ratio": pytest.approx(1.0)}


def test_score_counts_targets_and_half_intensity():
  smile = _smile(1)
  real = [eg.Displacement("w", "happy", 1.0, smile, 1),
          eg.Displacement("w", "sad", 1.0, -smile, 1)]
  out = eg.score(real, {"happy": 1.2 * smile, "sad": smile}, {"happy": 0.6 * smile, "sad": smile})
  assert out["per_emotion"]["happy"]["half_ratio"] == pytest.approx(0.5)
  assert (out["num_cosine_ok"], out["num_magnitude_ok"], out["num_both_ok"]) == (1, 2, 1)


@pytest.mark.slow  # Tracks two real MEAD clips with dlib.
def test_real_mead_smile_lifts_and_widens_the_mouth_corners(shared_data):
  from emotalk_jax.media import preprocess  # pylint: disable=g-import-not-at-top
  folder = shared_data / "video" / "mead_dreamtalk"
  clips = [eg.Clip("M030", e, 1.0, preprocess.preprocess_video(
      folder / f"M030_front_{e}_level{l}_001.mp4", size=128).landmarks)
           for e, l in (("neutral", 1), ("happy", 3))]
  (d,) = eg.displacements(clips)
  px = d.vector * eg.PX_256
  # Image y points down: a smile moves the corners up (-y) and apart.
  assert px[48, 0] < -3 and px[54, 0] > 3
  assert px[48, 1] < -2 and px[54, 1] < -2
  assert eg.group_magnitudes(d.vector)["mouth_corners"] > 6

"""Emotion vocabulary, user-text parsing and dataset label mappings (no JAX needed)."""

import collections
import csv

import numpy as np
import pytest

from emotalk_jax import emotions as em
from emotalk_jax.errors import InputError


# ----------------------------------------------------------------------------------------------
# Vocabulary and Emotion.


def test_vocabulary():
  assert em.EMOTIONS == ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad",
                         "surprised")
  assert em.NUM_EMOTIONS == 8
  assert em.UNSPECIFIED_INTENSITY == pytest.approx(2 / 3)
  assert [em.mead_level_to_intensity(l) for l in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1])
  assert em.mead_level_to_intensity(3) == 1.0
  assert em.mead_level_to_intensity("level_2") == em.mead_level_to_intensity("level2") == 2 / 3


@pytest.mark.parametrize("bad", [0, 4, "level_4", "high", None, 2.5])
def test_bad_mead_level(bad):
  with pytest.raises(InputError, match="MEAD level must be 1, 2 or 3"):
    em.mead_level_to_intensity(bad)


def test_vector_layout():
  v = em.Emotion.of("sad", 0.25).vector()
  assert v.shape == (9,) and v.dtype == np.float32
  np.testing.assert_array_equal(v, [0, 0, 0, 0, 0, 0, 1, 0, 0.25])
  v = em.parse_emotion("happy:0.6+surprised:0.4").vector()
  np.testing.assert_allclose(v, [0, 0, 0, 0, 0.6, 0, 0, 0.4, 1.0], atol=1e-7)


def test_emotion_of_and_dominant():
  e = em.Emotion.of("Happiness")
  assert e.weights[4] == 1.0 and e.intensity == 1.0 and e.dominant == "happy"
  assert em.parse_emotion("happy:0.3+surprised:0.5").dominant == "surprised"
  # A tie goes to the earlier class in EMOTIONS order.
  assert em.parse_emotion("sad:0.5+angry:0.5").dominant == "angry"
  assert em.emotion_index("fearful") == 3


@pytest.mark.parametrize("weights,intensity,problem", [
    ((1.0,) * 7, 1.0, "8 entries"),
    ((1.0, 0, 0, 0, 0, 0, 0, 0, 0), 1.0, "8 entries"),
    ((1.1, -0.1, 0, 0, 0, 0, 0, 0), 1.0, "non-negative"),
    ((0.5, 0, 0, 0, 0, 0, 0, 0), 1.0, "sum to 0.5"),
    ((float("nan"), 0, 0, 0, 0, 0, 0, 0), 1.0, "finite"),
    ((1.0, 0, 0, 0, 0, 0, 0, 0), 1.5, r"outside \[0, 1\]"),
    ((1.0, 0, 0, 0, 0, 0, 0, 0), -0.1, r"outside \[0, 1\]"),
])
def test_emotion_validation(weights, intensity, problem):
  with pytest.raises(InputError, match=problem):
    em.Emotion(weights, intensity)


def test_emotion_accepts_arrays_and_rescales_small_misses():
  e = em.Emotion(np.array([0.5, 0.49995, 0, 0, 0, 0, 0, 0]), np.float32(0.5))
  assert isinstance(e.weights, tuple) and all(type(w) is float for w in e.weights)
  assert sum(e.weights) == pytest.approx(1.0, abs=1e-12)
  assert type(e.intensity) is float
  # Construction is idempotent, so equal emotions hash equally.
  assert em.Emotion(e.weights, e.intensity) == e
  assert hash(em.Emotion(e.weights, e.intensity)) == hash(e)


def test_emotion_is_frozen():
  with pytest.raises(AttributeError):
    em.Emotion.of("happy").intensity = 0.5


# ----------------------------------------------------------------------------------------------
# parse_emotion.


@pytest.mark.parametrize("text,name,intensity", [
    ("happy", "happy", 1.0),
    ("  HAPPY ", "happy", 1.0),
    ("happy:0.7", "happy", 0.7),
    ("Happy : 0.7", "happy", 0.7),
    ("sad:.5", "sad", 0.5),
    ("fear:0", "fear", 0.0),
    ("surprised:1", "surprised", 1.0),
    ("anger", "angry", 1.0),
    ("disgust:0.2", "disgusted", 0.2),
    ("afraid", "fear", 1.0),
    ("fearful", "fear", 1.0),
    ("surprise", "surprised", 1.0),
    ("sadness", "sad", 1.0),
    ("contemptuous", "contempt", 1.0),
    ("ANG", "angry", 1.0),
    ("DIS", "disgusted", 1.0),
    ("FEA", "fear", 1.0),
    ("HAP:0.4", "happy", 0.4),
    ("NEU", "neutral", 1.0),
    ("SAD", "sad", 1.0),
    ("happy@0.3", "happy", 0.3),
])
def test_parse_single_class(text, name, intensity):
  assert em.parse_emotion(text) == em.Emotion.of(name, intensity)


def test_parse_mixture_amounts():
  e = em.parse_emotion("happy:0.6+surprised:0.4")
  assert e.intensity == 1.0
  assert e.weights == (0, 0, 0, 0, 0.6, 0, 0, 0.4)
  # The sum of the amounts is the intensity; float noise (0.42 + 0.28) is rounded away.
  e = em.parse_emotion(" happy : 0.42 + Surprise:0.28 ")
  assert e.intensity == 0.7
  assert e.weights == (0, 0, 0, 0, 0.6, 0, 0, 0.4)
  # A zero amount just contributes nothing.
  assert em.parse_emotion("happy:0.7+sad:0") == em.parse_emotion("happy:0.7")


def test_parse_relative_weights_with_intensity():
  e = em.parse_emotion("happy:3+surprised:1@0.8")
  assert e.weights == (0, 0, 0, 0, 0.75, 0, 0, 0.25) and e.intensity == 0.8
  assert em.parse_emotion("happy+sad @ 0.5").weights == (0, 0, 0, 0, 0.5, 0, 0.5, 0)
  # The only way to write a mixture at intensity 0.
  assert em.parse_emotion("happy:0.6+surprised:0.4@0").intensity == 0.0


@pytest.mark.parametrize("emotion", [
    em.Emotion.of("happy"),
    em.Emotion.of("neutral", 0.0),
    em.Emotion.of("angry", 1 / 3),
    em.Emotion.of("sad", em.UNSPECIFIED_INTENSITY),
    em.Emotion((0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3), 1 / 7),
    em.Emotion((1 / 3, 0, 0, 1 / 3, 0, 0, 1 / 3, 0), 0.9),
    em.Emotion((0, 0, 0, 0, 0.7, 0, 0, 0.3), 0.0),
    em.Emotion((0.99995, 0.00005, 0, 0, 0, 0, 0, 0), 1e-5),
    em.parse_emotion("happy:0.42+surprised:0.28"),
])
def test_str_round_trips_exactly(emotion):
  text = str(emotion)
  assert em.parse_emotion(text) == emotion
  assert str(em.parse_emotion(text)) == text


def test_str_is_readable():
  assert str(em.Emotion.of("happy")) == "happy"
  assert str(em.Emotion.of("happy", 0.7)) == "happy:0.7"
  assert str(em.Emotion.of("fear", 0)) == "fear:0"
  assert str(em.parse_emotion("surprised:0.28+happy:0.42")) == "happy:0.6+surprised:0.4@0.7"


def test_unknown_name_lists_valid_names_and_suggests():
  with pytest.raises(InputError) as info:
    em.parse_emotion("hapy:0.5")
  message = str(info.value)
  assert message.startswith("hapy:0.5: ")
  assert "did you mean 'happy'?" in message
  for name in em.EMOTIONS:
    assert name in message
  with pytest.raises(InputError, match="did you mean 'surprised'"):
    em.parse_emotion("suprised")
  with pytest.raises(InputError, match="did you mean 'disgusted'"):
    em.parse_emotion("disgustd")
  with pytest.raises(InputError, match="unknown emotion 'qwerty'. Valid names: angry") as info:
    em.parse_emotion("qwerty")
  assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("name", ["calm", "Bored", "boredom"])
def test_non_mead_classes_get_a_hint(name):
  with pytest.raises(InputError, match="not one of MEAD's classes; the closest is 'neutral'"):
    em.parse_emotion(name)


def test_sum_above_one_says_so_and_suggests_dividing():
  with pytest.raises(InputError) as info:
    em.parse_emotion("happy:0.7+surprised:0.5")
  message = str(info.value)
  assert "add up to 1.2, above 1" in message
  assert "divide each by 1.2" in message
  assert "happy:0.583+surprised:0.417" in message
  # Bare names count as amount 1, so an unweighted mixture is over 1 too.
  with pytest.raises(InputError, match="add up to 2, above 1"):
    em.parse_emotion("happy+sad")
  # Within 1e-6 of 1 is accepted and clipped.
  assert em.parse_emotion("happy:0.5+sad:0.5000001").intensity == 1.0


@pytest.mark.parametrize("text,problem", [
    ("", "no emotion given"),
    ("   ", "no emotion given"),
    ("happy+", "empty part"),
    ("happy++sad", "empty part"),
    ("+happy", "empty part"),
    ("happy:", "amount for 'happy' is empty"),
    ("happy:abc", r"amount for 'happy' is not a number \('abc'\)"),
    ("happy:nan", "not a number"),
    ("happy:inf", "not a number"),
    ("happy:1e", "not a number"),
    ("happy:-0.5", r"amount for 'happy' is negative \(-0.5\)"),
    ("happy:1.5", "amount 1.5 for 'happy' is above 1"),
    ("happy:0.5:0.2", "should be 'name' or 'name:amount'"),
    ("happy:0.3+happiness:0.2", "'happy' is given more than once"),
    ("happy:0.3+happy:0.2", "'happy' is given more than once"),
    ("happy:0+sad:0", "all amounts are 0"),
    ("happy@", "intensity after '@' is empty"),
    ("happy@1.5", r"intensity 1.5 is outside \[0, 1\]"),
    ("happy@x", "intensity after '@' is not a number"),
    ("happy:0+sad:0@0.5", "weights before '@' are all 0"),
    ("happy@0.5@0.2", "'@' may appear only once"),
    (":0.5", "unknown emotion"),
])
def test_malformed_text(text, problem):
  with pytest.raises(InputError, match=problem) as info:
    em.parse_emotion(text)
  assert info.value.path == text


def test_parse_rejects_non_text():
  with pytest.raises(InputError, match="as text"):
    em.parse_emotion(0.5)


def test_emotion_batch():
  batch = em.emotion_batch([em.Emotion.of("angry", 0.5), "happy:0.6+surprised:0.4", "neutral"])
  assert batch.shape == (3, 9) and batch.dtype == np.float32
  np.testing.assert_array_equal(batch[0], em.Emotion.of("angry", 0.5).vector())
  np.testing.assert_allclose(batch[1, [4, 7, 8]], [0.6, 0.4, 1.0], atol=1e-7)
  np.testing.assert_allclose(batch[:, :8].sum(axis=1), 1.0, atol=1e-6)
  assert em.emotion_batch([]).shape == (0, 9)
  with pytest.raises(InputError):
    em.emotion_batch(["happy", "hapy"])


# ----------------------------------------------------------------------------------------------
# Dataset labels on hard-coded names (always run).


def test_label_validation_and_conversion():
  label = em.Label("happy", 1 / 3, "mead:happy", True)
  assert label.to_emotion() == em.Emotion.of("happy", 1 / 3)
  with pytest.raises(InputError, match="not one of"):
    em.Label("calm", 0.5, "ravdess:calm", False)
  with pytest.raises(InputError, match="outside"):
    em.Label("happy", 2.0, "x", True)


def test_mead():
  assert em.from_mead("angry", 3) == em.Label("angry", 1.0, "mead:angry", True)
  assert em.from_mead("Neutral", "level_1").intensity == pytest.approx(1 / 3)
  assert em.from_mead("surprised", "level2").intensity == pytest.approx(2 / 3)
  with pytest.raises(InputError, match="not a MEAD emotion"):
    em.from_mead("happiness", 3)


@pytest.mark.parametrize("name,parsed", [
    ("M030_front_angry_level3_001.mp4", em.MeadName("M030", "front", "angry", 3, 1)),
    ("clips/W009_front_neutral_level1_001.mp4", em.MeadName("W009", "front", "neutral", 1, 1)),
    ("M030_sad_3_001.mp4", em.MeadName("M030", None, "sad", 3, 1)),
    ("W015_left_30_contempt_level_2_017", em.MeadName("W015", "left_30", "contempt", 2, 17)),
    ("MEAD/M003/video/front/disgusted/level_2/005.mp4",
     em.MeadName("M003", "front", "disgusted", 2, 5)),
])
def test_mead_filenames(name, parsed):
  assert em.parse_mead_filename(name) == parsed
  assert em.from_mead_filename(name) == em.from_mead(parsed.emotion, parsed.level)


@pytest.mark.parametrize("name", ["M030_front_happiness_level3_001.mp4",
                                  "M030_front_happy_level4_001.mp4", "happy.mp4",
                                  "M030/video/front/happy/level_9/001.mp4"])
def test_bad_mead_filenames(name):
  with pytest.raises(InputError, match="not a MEAD clip name; expected") as info:
    em.from_mead_filename(name)
  assert info.value.path == name


@pytest.mark.parametrize("name,emotion,intensity", [
    ("1001_DFA_ANG_XX", "angry", 2 / 3),
    ("1001_DFA_ANG_XX.flv", "angry", 2 / 3),
    ("AudioWAV/1091_WSI_DIS_LO.wav", "disgusted", 1 / 3),
    ("1030_IEO_FEA_MD.mp3", "fear", 2 / 3),
    ("1012_IEO_HAP_HI", "happy", 1.0),
    ("1003_TIE_NEU_XX", "neutral", 2 / 3),
    ("1076_MTI_SAD_XX.wav", "sad", 2 / 3),
])
def test_cremad_filenames(name, emotion, intensity):
  label = em.from_cremad_filename(name)
  assert label.emotion == emotion and label.exact
  assert label.intensity == pytest.approx(intensity)
  assert label.source == "cremad:" + name.split("_")[2][:3]


def test_cremad_codes_and_actor():
  assert em.from_cremad("hap", "hi") == em.Label("happy", 1.0, "cremad:HAP", True)
  assert em.from_cremad("NEU", "XX").intensity == em.UNSPECIFIED_INTENSITY
  assert em.cremad_actor("1091_WSI_DIS_LO.wav") == 1091
  with pytest.raises(InputError, match="ANG DIS FEA HAP NEU SAD"):
    em.from_cremad("SUR", "HI")
  with pytest.raises(InputError, match="LO MD HI XX"):
    em.from_cremad("ANG", "XY")


@pytest.mark.parametrize("name", ["1001_DFA_SUR_XX.flv", "1001_DFA_ANG.flv", "101_DFA_ANG_XX",
                                  "1001-DFA-ANG-XX", "1001_DFA_ANG_VH"])
def test_bad_cremad_filenames(name):
  with pytest.raises(InputError, match="not a CREMA-D clip name; expected") as info:
    em.from_cremad_filename(name)
  assert info.value.path == name


@pytest.mark.parametrize("name,emotion,intensity,exact", [
    ("03-01-01-01-01-01-01.wav", "neutral", 2 / 3, True),
    ("03-01-02-02-01-01-12.wav", "neutral", 1.0, False),  # calm
    ("03-01-03-01-02-02-05.wav", "happy", 2 / 3, True),
    ("03-01-04-02-01-01-14.wav", "sad", 1.0, True),
    ("03-01-05-02-01-01-12.wav", "angry", 1.0, True),
    ("01-01-06-01-01-01-24.mp4", "fear", 2 / 3, True),
    ("02-02-07-02-02-02-07.mp4", "disgusted", 1.0, True),
    ("03-01-08-02-01-01-18.wav", "surprised", 1.0, True),
])
def test_ravdess_filenames(name, emotion, intensity, exact):
  label = em.from_ravdess_filename(name)
  assert (label.emotion, label.exact) == (emotion, exact)
  assert label.intensity == pytest.approx(intensity)


def test_ravdess_fields():
  parsed = em.parse_ravdess_filename("some/dir/01-02-06-01-02-01-24.mp4")
  assert parsed == em.RavdessName(modality=1, vocal_channel=2, emotion=6, intensity=1, statement=2,
                                  repetition=1, actor=24)
  assert em.ravdess_actor("03-01-05-02-01-01-12.wav") == 12
  assert em.from_ravdess_filename("03-01-02-01-01-01-01.wav").source == "ravdess:calm"
  assert em.from_ravdess_filename("03-01-06-01-01-01-01.wav").source == "ravdess:fearful"


@pytest.mark.parametrize("name,problem", [
    ("03-01-05-02-01-01.wav", "not a RAVDESS file name"),
    ("03-01-5-02-01-01-12.wav", "not a RAVDESS file name"),
    ("03_01_05_02_01_01_12.wav", "not a RAVDESS file name"),
    ("03-01-09-02-01-01-12.wav", "emotion 09 is out of range"),
    ("03-01-05-03-01-01-12.wav", "intensity 03 is out of range"),
    ("03-01-05-02-01-01-25.wav", "actor 25 is out of range"),
    ("04-01-05-02-01-01-12.wav", "modality 04 is out of range"),
])
def test_bad_ravdess_filenames(name, problem):
  with pytest.raises(InputError, match=problem) as info:
    em.from_ravdess_filename(name)
  assert info.value.path == name
  assert "MM-VV-EE-II-SS-RR-AA" in str(info.value)


@pytest.mark.parametrize("name,emotion,exact", [
    ("03a01Wa.wav", "angry", True),
    ("03a04Lc.wav", "neutral", False),  # boredom
    ("03b10Ec.wav", "disgusted", True),
    ("08a01Ab.wav", "fear", True),
    ("03a01Fa.wav", "happy", True),
    ("03a02Ta.wav", "sad", True),
    ("03a01Nc", "neutral", True),
])
def test_emodb_filenames(name, emotion, exact):
  label = em.from_emodb_filename(name)
  assert (label.emotion, label.exact) == (emotion, exact)
  assert label.intensity == em.UNSPECIFIED_INTENSITY


def test_emodb_speaker_and_errors():
  assert em.emodb_speaker("wav/16b10Td.wav") == 16
  assert em.from_emodb_filename("03a04Lc.wav").source == "emodb:boredom"
  for name in ("03a01Xa.wav", "3a01Wa.wav", "03c01Wa.wav", "03a01WA.wav"):
    with pytest.raises(InputError, match="not an EmoDB file name; expected 'SSTTTEV'"):
      em.from_emodb_filename(name)


def _vote_row(vote, level, name="1001_DFA_ANG_XX"):
  return {"": "1", "FileName": name, "VoiceVote": "N", "VoiceLevel": "50", "FaceVote": "A",
          "FaceLevel": "90", "MultiModalVote": vote, "MultiModalLevel": level}


def test_crema_votes_rows():
  assert em.from_crema_votes(_vote_row("H", "73.2")) == em.Label(
      "happy", 0.732, "cremad-multimodal-vote:H", True)
  tie = em.from_crema_votes(_vote_row("N:D", "64.75:61.50"))
  assert (tie.emotion, tie.exact, tie.intensity) == ("neutral", False, 0.6475)
  assert em.from_crema_votes(_vote_row("H", "10"), "face").emotion == "angry"
  assert em.from_crema_votes(_vote_row("H", "10"), "voice").intensity == 0.5
  with pytest.raises(InputError, match="A D F H N S"):
    em.from_crema_votes(_vote_row("X", "50"))
  with pytest.raises(InputError, match="as many levels"):
    em.from_crema_votes(_vote_row("N:D", "50"))
  with pytest.raises(InputError, match="outside 0-100"):
    em.from_crema_votes(_vote_row("N", "150"))
  with pytest.raises(InputError, match="not a CREMA-D clip name"):
    em.from_crema_votes(_vote_row("N", "50", name="hello"))
  with pytest.raises(InputError, match="lacks column"):
    em.from_crema_votes({"FileName": "1001_DFA_ANG_XX"})
  with pytest.raises(InputError, match="modality must be one of"):
    em.from_crema_votes(_vote_row("N", "50"), "audio")


def test_load_crema_votes_small_file(tmp_path):
  path = tmp_path / "summaryTable.csv"
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, list(_vote_row("N", "1")))
    writer.writeheader()
    writer.writerow(_vote_row("A", "80", "1001_DFA_ANG_HI"))
    writer.writerow(_vote_row("F:S", "40:30", "1001_DFA_FEA_LO"))
  labels = em.load_crema_votes(path)
  assert set(labels) == {"1001_DFA_ANG_HI", "1001_DFA_FEA_LO"}
  assert labels["1001_DFA_FEA_LO"] == em.Label("fear", 0.4, "cremad-multimodal-vote:F:S", False)
  with open(path, "a", newline="") as f:
    csv.DictWriter(f, list(_vote_row("N", "1"))).writerow(_vote_row("Q", "80", "1001_DFA_SAD_HI"))
  with pytest.raises(InputError, match="line 4: .*A D F H N S") as info:
    em.load_crema_votes(path)
  assert info.value.path == str(path)
  with pytest.raises(InputError, match="no such file"):
    em.load_crema_votes(tmp_path / "missing.csv")


# ----------------------------------------------------------------------------------------------
# Dataset labels on the real files in ../shared/data (skipped when absent).


def test_real_mead_dreamtalk(shared_data):
  files = sorted((shared_data / "video" / "mead_dreamtalk").glob("*.mp4"))
  assert len(files) == 16
  labels = [em.from_mead_filename(f) for f in files]
  for speaker in ("M030", "W009"):
    mine = [(l.emotion, l.intensity) for f, l in zip(files, labels)
            if em.parse_mead_filename(f).speaker == speaker]
    assert sorted(e for e, _ in mine) == sorted(em.EMOTIONS)
    for emotion, intensity in mine:
      assert intensity == (pytest.approx(1 / 3) if emotion == "neutral" else 1.0)
  assert all(l.exact for l in labels)
  eamm = em.parse_mead_filename(shared_data / "video" / "mead_eamm" / "M030_sad_3_001.mp4")
  assert eamm == em.MeadName("M030", None, "sad", 3, 1)


def test_real_ravdess(shared_data):
  files = sorted((shared_data / "speech" / "ravdess").glob("*.wav"))
  assert len(files) == 64
  labels = {f.name: em.from_ravdess_filename(f) for f in files}
  assert {l.emotion for l in labels.values()} == set(em.EMOTIONS) - {"contempt"}
  inexact = {n for n, l in labels.items() if not l.exact}
  assert inexact == {n for n in labels if n.split("-")[2] == "02"}  # exactly the calm clips
  assert all(labels[n].emotion == "neutral" for n in inexact)
  # Actors 01-04 have all 8 RAVDESS emotions (README).
  per_actor = collections.defaultdict(set)
  for f in files:
    per_actor[em.ravdess_actor(f)].add(em.parse_ravdess_filename(f).emotion)
  for actor in (1, 2, 3, 4):
    assert per_actor[actor] == set(range(1, 9))
  assert labels["03-01-05-02-01-01-22.wav"] == em.Label("angry", 1.0, "ravdess:angry", True)


def test_real_emodb(shared_data):
  files = sorted((shared_data / "speech" / "emodb").glob("*.wav"))
  assert files
  labels = {f.name: em.from_emodb_filename(f) for f in files}
  assert {l.emotion for l in labels.values()} == {"angry", "disgusted", "fear", "happy", "neutral",
                                                 "sad"}
  assert {n for n, l in labels.items() if not l.exact} == {n for n in labels if n[5] == "L"}
  assert {em.emodb_speaker(f) for f in files} <= {3, 8, 9, 10, 11, 12, 13, 14, 15, 16}


def test_real_crema_votes(shared_data):
  path = shared_data / "speech" / "cremad_labels" / "summaryTable.csv"
  labels = em.load_crema_votes(path)
  assert len(labels) == 7442
  counts = collections.Counter(l.emotion for l in labels.values())
  assert set(counts) == {"angry", "disgusted", "fear", "happy", "neutral", "sad"}
  assert min(counts.values()) > 500
  ties = [l for l in labels.values() if not l.exact]
  assert ties and all(":" in l.source for l in ties)
  assert all(0.0 <= l.intensity <= 1.0 for l in labels.values())
  assert labels["1001_IEO_HAP_HI"] == em.Label("happy", 0.732, "cremad-multimodal-vote:H", True)
  # Every clip name in the table also parses as a file name; the acted labels cover the 6 classes
  # and the 4 levels, and the crowd agrees with the acted class on most clips.
  acted = {name: em.from_cremad_filename(name + ".flv") for name in labels}
  assert {l.emotion for l in acted.values()} == set(counts)
  assert {round(l.intensity, 3) for l in acted.values()} == {0.333, 0.667, 1.0}
  agree = sum(acted[n].emotion == l.emotion for n, l in labels.items()) / len(labels)
  assert agree > 0.6
  assert len(em.load_crema_votes(path, "voice")) == 7442

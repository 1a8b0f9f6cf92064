"""RAVDESS: 24 actors, speech with 8 emotions (calm -> neutral, inexact), from `manual_dir`.

The Zenodo archives `Video_Speech_Actor_XX.zip` unpack to `Actor_XX/`; both of these work:

    <manual_dir>/Video_Speech_Actor_01/Actor_01/01-01-05-02-01-01-01.mp4
    <manual_dir>/Actor_01/01-01-05-02-01-01-01.mp4

Only audio-visual speech files (modality 01, vocal channel 01) are used; the video-only copies
(02-...) and song files (..-02-...) are ignored. See README.md in this folder.
"""

import dataclasses
import pathlib
import re

from data_pipelines import common
from data_pipelines.features import ClipSpec
from emotalk_jax import emotions
from emotalk_jax.errors import InputError

_ACTOR_DIR = re.compile(r"Actor_(\d{2})")
_ZIP_DIR = re.compile(r"Video_Speech_Actor_(\d{2})")

LAYOUT = """\
<manual_dir>/
  Video_Speech_Actor_01/            the Zenodo archive Video_Speech_Actor_01.zip unpacked in a
                                    folder of its name
    Actor_01/
      01-01-01-01-01-01-01.mp4      MM-VV-EE-II-SS-RR-AA.mp4: modality 01 (audio-video), vocal
                                    channel 01 (speech)
      ...
  ...
or, the archives unpacked together:
<manual_dir>/
  Actor_01/
    01-01-01-01-01-01-01.mp4
  ...
"""


@dataclasses.dataclass(eq=False)
class RavdessConfig(common.EmotalkConfig):
  """RAVDESS options: those of `common.EmotalkConfig`."""
  single_split: str = "test"


class Builder(common.EmotalkBuilder):
  """RAVDESS speech: by default every actor in one 'test' split (cross-dataset evaluation)."""

  DATASET = "ravdess"
  HOMEPAGE = "https://zenodo.org/records/1188976"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download the Video_Speech_Actor_XX.zip archives of RAVDESS "
      "(https://zenodo.org/records/1188976, CC BY-NC-SA 4.0), unpack them and pass their parent "
      "folder as manual_dir:\n" + LAYOUT)
  BUILDER_CONFIGS = [
      RavdessConfig(name="cross_dataset", description="All 24 actors in one 'test' split."),
      RavdessConfig(
          name="speaker_split",
          single_split="",
          test_fraction=0.2,
          description=
          ("Speaker-disjoint train/test by actor (20% of actors in test, "
           "deterministic by actor id).")),
  ]
  DEFAULT_CONFIG_NAME = "cross_dataset"

  def _actor_dirs(self, root: pathlib.Path) -> list[pathlib.Path]:
    dirs = [p for p in root.iterdir() if p.is_dir() and _ACTOR_DIR.fullmatch(p.name)]
    for z in root.iterdir():
      m = _ZIP_DIR.fullmatch(z.name)
      if m and z.is_dir():
        dirs += [p for p in z.iterdir() if p.is_dir() and _ACTOR_DIR.fullmatch(p.name)]
    return sorted(dirs, key=lambda p: (p.name, str(p)))

  def _check_layout(self, root: pathlib.Path) -> None:
    if not root.is_dir():
      raise common.layout_error(root, "manual_dir is not a folder", LAYOUT)
    dirs = self._actor_dirs(root)
    if not dirs:
      zips = sorted(root.glob("*.zip"))
      hint = f" (found {zips[0].name}: unpack the archives first)" if zips else ""
      raise common.layout_error(root, f"no Actor_XX/ folders{hint}", LAYOUT)
    names = [p.name for p in dirs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
      raise common.layout_error(
          root, f"{dupes[0]} is there twice (plain and inside Video_Speech_Actor_XX/)", LAYOUT)

  def _scan(self, root: pathlib.Path) -> list[ClipSpec]:
    specs = []
    for actor_dir in self._actor_dirs(root):
      folder_actor = int(_ACTOR_DIR.fullmatch(actor_dir.name).group(1))
      for video in sorted(actor_dir.glob("*.mp4")):
        try:
          name = emotions.parse_ravdess_filename(video.name)
          label = emotions.from_ravdess_filename(video.name)
        except InputError as e:
          common.log.warning("ravdess: ignoring %s (%s)", video, e.problem)
          continue
        if name.modality != 1 or name.vocal_channel != 1:
          continue  # Video-only copies and song.
        if name.actor != folder_actor:
          common.log.warning("ravdess: %s names actor %02d but lies in %s; using %02d", video,
                             name.actor, actor_dir.name, name.actor)
        specs.append(
            ClipSpec(clip_id=video.stem,
                     video_path=str(video),
                     audio_path=None,
                     label=label,
                     speaker=f"ravdess/actor_{name.actor:02d}",
                     dataset="ravdess"))
    return specs

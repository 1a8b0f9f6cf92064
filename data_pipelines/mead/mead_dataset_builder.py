"""MEAD: emotional talking faces, 8 emotions x 3 levels, 7 camera views, from `manual_dir`.

Layout (MEAD's published one: each speaker's `video.tar` and `audio.tar` extracted in its folder):

    <manual_dir>/<speaker>/video/<view>/<emotion>/level_<n>/<clip>.mp4
    <manual_dir>/<speaker>/audio/<emotion>/level_<n>/<clip>.m4a

See README.md in this folder for configs, splits and the build command.
"""

import dataclasses
import pathlib
import re

from data_pipelines import common
from data_pipelines.features import ClipSpec
from emotalk_jax import emotions

VIEWS = ("front", "down", "top", "left_30", "left_60", "right_30", "right_60")
# The test speaker of the MEAD paper's baseline: "It is M003." (the MEAD authors, answering which
# subject
# ids form the test set: https://github.com/uniBruce/Mead/issues/4).
MEAD_TEST_SPEAKERS = ("M003",)
_SPEAKER = re.compile(r"[MW]\d{3}")
_LEVEL = re.compile(r"level_([123])")

LAYOUT = """\
<manual_dir>/
  M003/                       one folder per speaker (M003, M005, ..., W040), with video.tar
                              and audio.tar extracted
    video/
      front/                  view: front, down, top, left_30, left_60, right_30, right_60
        angry/                emotion: angry contempt disgusted fear happy neutral sad surprised
          level_1/            level_1, level_2, level_3 (neutral: level_1 only)
            001.mp4
    audio/
      angry/
        level_1/
          001.m4a             optional: without it the video's own sound track is used
  M005/
  ...
"""


@dataclasses.dataclass(eq=False)
class MeadConfig(common.EmotalkConfig):
  """MEAD options (and those of `common.EmotalkConfig`).

  Attributes:
    view: camera view to build (one of VIEWS).
  """
  view: str = "front"
  test_speakers: tuple = MEAD_TEST_SPEAKERS

  def __post_init__(self):
    super().__post_init__()
    if self.view not in VIEWS:
      raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")


class Builder(common.EmotalkBuilder):
  """MEAD, one camera view per config; speaker-disjoint train/test (test = M003 by default)."""

  DATASET = "mead"
  HOMEPAGE = "https://wywu.github.io/projects/MEAD/MEAD.html"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download MEAD (https://wywu.github.io/projects/MEAD/MEAD.html, research licence), "
      "extract each speaker's video.tar and audio.tar inside its folder, and pass the parent "
      "folder as manual_dir:\n" + LAYOUT)
  BUILDER_CONFIGS = [
      MeadConfig(name=view,
                 view=view,
                 description=f"MEAD, {view} view, 256x256 crops, test speaker M003.")
      for view in VIEWS
  ]
  DEFAULT_CONFIG_NAME = "front"

  def _speaker_dirs(self, root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _SPEAKER.fullmatch(p.name))

  def _check_layout(self, root: pathlib.Path) -> None:
    if not root.is_dir():
      raise common.layout_error(root, "manual_dir is not a folder", LAYOUT)
    speakers = self._speaker_dirs(root)
    if not speakers:
      raise common.layout_error(root, "no speaker folders (M003, W009, ...) in manual_dir", LAYOUT)
    view = self.builder_config.view
    with_view = [p for p in speakers if (p / "video" / view).is_dir()]
    if not with_view:
      tars = sorted(str(t) for p in speakers for t in p.glob("*.tar"))
      hint = (f" (found {tars[0]}: extract the tar files inside their speaker folder first)"
              if tars else "")
      raise common.layout_error(root, f"no speaker folder has video/{view}/{hint}", LAYOUT)
    for p in speakers:
      if p not in with_view:
        common.log.warning(
            "mead: %s has no video/%s/ (MEAD lacks some views for some speakers); skipped", p, view)

  def _scan(self, root: pathlib.Path) -> list[ClipSpec]:
    view = self.builder_config.view
    specs = []
    for spk_dir in self._speaker_dirs(root):
      speaker = spk_dir.name
      view_dir = spk_dir / "video" / view
      if not view_dir.is_dir():
        continue
      for emo_dir in sorted(p for p in view_dir.iterdir() if p.is_dir()):
        if emo_dir.name not in emotions.EMOTIONS:
          common.log.warning("mead: ignoring %s (not one of the 8 MEAD emotions)", emo_dir)
          continue
        for level_dir in sorted(p for p in emo_dir.iterdir() if p.is_dir()):
          m = _LEVEL.fullmatch(level_dir.name)
          if m is None:
            common.log.warning("mead: ignoring %s (expected level_1, level_2 or level_3)",
                               level_dir)
            continue
          label = emotions.from_mead(emo_dir.name, int(m.group(1)))
          for video in sorted(level_dir.glob("*.mp4")):
            wav = spk_dir / "audio" / emo_dir.name / level_dir.name / f"{video.stem}.m4a"
            specs.append(ClipSpec(
                clip_id=f"{speaker}_{view}_{emo_dir.name}_{level_dir.name}_{video.stem}",
                video_path=str(video), audio_path=str(wav) if wav.is_file() else None,
                label=label, speaker=f"mead/{speaker}", dataset="mead"))
    return specs

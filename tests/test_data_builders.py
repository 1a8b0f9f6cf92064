"""The TFDS builders (data_pipelines/): real builds of tiny datasets (few clips, 30 frames, 128 px
crops).

The folder builder runs on the bundled GRID clip (works on a fresh clone); MEAD, CREMA-D and RAVDESS
run on real clips of ../shared/data renamed into each dataset's official layout (skipped without
it).
"""

import csv
import json
import pathlib
import shutil

import av
import numpy as np
import pytest
import soundfile
import tensorflow_datasets as tfds

from data_pipelines import common
from data_pipelines import cremad
from data_pipelines import features
from data_pipelines import mead
from data_pipelines import ravdess
from data_pipelines import talking_face_folder as folder
from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.media import audio
from emotalk_jax.media import video_io

FRAMES = 30
SIZE = 128
SMALL = dict(frame_size=SIZE, max_frames=FRAMES)


def _build(builder_cls, config, tmp_path, manual_dir=None, **download_kwargs):
  builder = builder_cls(config=config, data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=None if manual_dir is None else str(manual_dir), **download_kwargs))
  return builder


def _examples(builder) -> dict:
  """{split: {clip_id: example as numpy}}."""
  out = {}
  for split in builder.info.splits:
    ds = builder.as_dataset(split=split)
    out[split] = {ex["clip_id"].decode(): ex for ex in tfds.as_numpy(ds)}
  return out


def _check_example(ex, builder):
  t = len(ex["frames"])
  assert 1 <= t <= FRAMES
  assert ex["frames"].shape == (t, SIZE, SIZE, 3) and ex["frames"].dtype == np.uint8
  assert ex["landmarks"].shape == (t, 68, 2) and np.all(np.abs(ex["landmarks"]) <= 1.5)
  assert ex["mel"].shape == (t, audio.MEL_WINDOW, audio.N_MELS)
  assert ex["detected"].shape == (t,) and ex["detected"].any()
  assert ex["neutral_frame"].shape == (SIZE, SIZE, 3)
  assert ex["neutral_landmarks"].shape == (68, 2)
  assert ex["fps"] == 25.0
  if not ex["has_audio"]:
    np.testing.assert_array_equal(ex["mel"], audio.LOG_MEL_FLOOR)
  else:
    assert ex["mel"].max() > audio.LOG_MEL_FLOOR + 1


def _label(builder, ex):
  return builder.info.features["emotion"].int2str(ex["emotion"])


def _source(builder, ex):
  return builder.info.features["neutral_source"].int2str(ex["neutral_source"])


def _speakers(examples, split):
  return {ex["speaker"].decode() for ex in examples.get(split, {}).values()}


def _broken(path):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(b"\x00\x00\x01\xbanot really a video" * 50)
  return path


def _silent_copy(src, dst, frames=FRAMES + 5):
  """The first frames of `src` re-encoded without sound."""
  video = video_io.read_video(src, max_frames=frames, with_audio=False)
  video_io.write_video(dst, video.frames, fps=video.fps)
  return dst


# ----------------------------------------------------------------------------------------------
# Split helpers (no media).


def test_speaker_splits_are_deterministic_disjoint_and_honour_lists():
  speakers = [f"x/s{i:02d}" for i in range(20)]
  a = common.speaker_splits(speakers, test=["s03"], test_fraction=0.1, validation_fraction=0.1)
  b = common.speaker_splits(list(reversed(speakers)) + speakers[:3],
                            test=["s03"],
                            test_fraction=0.1,
                            validation_fraction=0.1)
  assert a == b and set(a) == set(speakers)
  assert a["x/s03"] == "test"
  counts = {k: sum(v == k for v in a.values()) for k in ("train", "validation", "test")}
  assert counts == {"train": 15, "validation": 2, "test": 3}  # 1 listed + ceil(0.1 * 19) each.
  # A positive fraction always takes someone; explicit train stays train.
  two = common.speaker_splits(["a/1", "a/2"], test_fraction=0.01, train=["2"])
  assert two == {"a/1": "test", "a/2": "train"}
  with pytest.raises(ValueError, match="both"):
    common.speaker_splits(speakers, test=["s01"], validation=["s01"])
  with pytest.raises(ValueError, match="not found"):
    common.speaker_splits(speakers, test=["nobody"], strict=True)


# ----------------------------------------------------------------------------------------------
# Folder builder on the bundled GRID clip (no ../shared needed).


@pytest.fixture(scope="module")
def grid_folder(tmp_path_factory) -> pathlib.Path:
  """spk1: neutral + happy (own sound); spk2: sad with a wav beside it, angry without sound; a
  broken clip."""
  root = tmp_path_factory.mktemp("clips")
  shutil.copy(bundled.GRID_CLIP, root / "spk1_neutral_1.mpg")
  shutil.copy(bundled.GRID_CLIP, root / "spk1_happy_3.mpg")
  sub = root / "more"
  sub.mkdir()
  _silent_copy(bundled.GRID_CLIP, sub / "spk2_sad_2.mp4")
  wave = audio.load_audio(bundled.GRID_CLIP)
  soundfile.write(sub / "spk2_sad_2.wav", wave, audio.SAMPLE_RATE)
  _silent_copy(bundled.GRID_CLIP, sub / "spk2_angry_3.mp4")
  _broken(root / "spk1_fear_2.mp4")
  return root


GRID_PATTERN = r"(?P<speaker>spk\d)_(?P<emotion>[a-z]+)_(?P<level>\d)"


def test_folder_builder_on_bundled_clip(grid_folder, tmp_path):
  config = folder.FolderConfig(name="grid_test", folder=str(grid_folder), pattern=GRID_PATTERN,
                               test_speakers=("spk2",), **SMALL)
  builder = _build(folder.Builder, config, tmp_path)
  ex = _examples(builder)
  assert set(ex) == {"train", "test"}
  assert set(ex["train"]) == {"spk1_neutral_1", "spk1_happy_3"}
  assert set(ex["test"]) == {"more/spk2_sad_2", "more/spk2_angry_3"}
  assert _speakers(ex, "train") == {"folder/spk1"} and _speakers(ex, "test") == {"folder/spk2"}
  for split in ex.values():
    for e in split.values():
      _check_example(e, builder)
  happy = ex["train"]["spk1_happy_3"]
  assert _label(
      builder,
      happy) == "happy" and happy["intensity"] == pytest.approx(1.0) and happy["emotion_exact"]
  assert happy["has_audio"] and happy["dataset"] == b"folder"
  # spk1 has a neutral clip: its reference; spk2 has none: the clip's own frame.
  assert _source(builder, happy) == "speaker_neutral"
  np.testing.assert_array_equal(happy["neutral_frame"],
                                ex["train"]["spk1_neutral_1"]["neutral_frame"])
  sad, angry = ex["test"]["more/spk2_sad_2"], ex["test"]["more/spk2_angry_3"]
  assert sad["has_audio"]  # The wav beside it.
  assert not angry["has_audio"]  # No sound at all: kept, marked.
  assert sad["intensity"] == pytest.approx(2 / 3)
  assert _source(builder, sad) == "first_frame"
  # Its first frame (the frames are stored as JPEG, the reference as PNG).
  assert np.abs(sad["neutral_frame"].astype(int) - sad["frames"][0]).mean() < 3
  # The broken clip is skipped and reported.
  report = common.read_skip_report(builder)
  assert report["num_skipped"] == 1 and report["per_split"] == {"train": 1}
  assert report["skipped"][0]["clip_id"] == "spk1_fear_2" and report["skipped"][0]["reason"]
  reloaded = tfds.builder_from_directory(str(builder.data_dir))
  assert reloaded.info.metadata["skipped_clips"]["num_skipped"] == 1
  assert builder.info.splits["train"].num_examples == 2


def _scan(builder_cls, config, root):
  builder = builder_cls(config=config, data_dir="/nonexistent-unused")
  builder._check_layout(pathlib.Path(root))  # pylint: disable=protected-access
  specs = builder._scan(pathlib.Path(root))  # pylint: disable=protected-access
  return builder, specs, builder._assign_splits(specs)  # pylint: disable=protected-access


def test_folder_builder_csv_labels_and_path_checks(grid_folder, tmp_path):
  rows = [("spk1_neutral_1.mpg", "neutral", "", "alice", "train"),
          ("spk1_happy_3.mpg", "happiness", "0.5", "alice", "train"),
          ("more/spk2_sad_2.mp4", "SAD", "", "bob", "test")]
  csv_path = grid_folder / "labels.csv"

  def write(rows):
    with open(csv_path, "w", newline="") as f:
      w = csv.writer(f)
      w.writerow(folder.talking_face_folder_dataset_builder.CSV_COLUMNS)
      w.writerows(rows)

  try:
    write(rows)
    config = folder.FolderConfig(name="csv_test", folder=str(grid_folder), labels_csv="labels.csv",
                                 unlabelled="", **SMALL)
    _, specs, splits = _scan(folder.Builder, config, grid_folder)
    by_id = {s.clip_id: s for s in specs}
    # Unlabelled left out.
    assert set(by_id) == {"spk1_neutral_1", "spk1_happy_3", "more/spk2_sad_2"}
    assert by_id["spk1_happy_3"].label.emotion == "happy" and by_id[
        "spk1_happy_3"].label.intensity == 0.5
    assert by_id["more/spk2_sad_2"].audio_path.endswith("spk2_sad_2.wav")
    assert {s.clip_id for s in splits["test"]} == {"more/spk2_sad_2"}
    # Unlabelled clips default to neutral, inexact.
    config = folder.FolderConfig(name="csv_test2", folder=str(grid_folder), labels_csv="labels.csv")
    _, specs, _ = _scan(folder.Builder, config, grid_folder)
    angry = {s.clip_id: s for s in specs}["more/spk2_angry_3"]
    assert angry.label.emotion == "neutral" and not angry.label.exact
    # Paths must exist and stay inside the folder; a speaker cannot be in two splits.
    for bad, match in ((("../outside.mp4", "happy", "", "x", ""), "outside"),
                       (("nope.mp4", "happy", "", "x", ""), "no such file"),
                       (("spk1_fear_2.mp4", "happy", "", "alice", "test"), "two splits")):
      write(rows + [bad])
      with pytest.raises(common.InputError, match=match):
        _scan(folder.Builder, config, grid_folder)
  finally:
    csv_path.unlink(missing_ok=True)


def test_folder_builder_layout_errors(tmp_path):
  config = folder.FolderConfig(name="missing", folder=str(tmp_path / "nope"))
  with pytest.raises(common.LayoutError, match="Expected layout"):
    _build(folder.Builder, config, tmp_path)
  config = folder.FolderConfig(name="bad_emotion",
                               folder=str(tmp_path / "c"),
                               pattern=r"(?P<emotion>[a-z]+)_\d")
  (tmp_path / "c").mkdir()
  shutil.copy(bundled.GRID_CLIP, tmp_path / "c" / "grumpy_1.mpg")
  with pytest.raises(common.InputError, match="emotion_map"):
    _scan(folder.Builder, config, tmp_path / "c")


def test_sample_config_labels_and_speaker_disjoint_split(shared_data):
  config = folder.sample_config("sample_scan", folder=str(shared_data))
  _, specs, splits = _scan(folder.Builder, config, shared_data)
  assert set(splits) == {"train", "test"}
  train, test = ({s.speaker for s in splits[k]} for k in ("train", "test"))
  assert not train & test and test == set(folder.SAMPLE_TEST_SPEAKERS)
  by_id = {s.clip_id: s for s in specs}
  assert by_id["video/styletalk_style/furious_talk1_clip1"].label.emotion == "angry"
  assert by_id["video/styletalk_style/vscodehappy_clip1"].label.emotion == "happy"
  assert by_id["video/styletalk_style/sadfather_clip1"].label.emotion == "sad"
  assert by_id["video/styletalk_style/trump_clip1"].label.emotion == "neutral"
  assert by_id["video/mead_dreamtalk/W009_front_fear_level3_001"].label.intensity == 1.0
  assert by_id["video/mead_eamm/M030_sad_3_001"].speaker == "mead/M030"
  assert by_id["video/styletalk_source/Obama_clip1"].audio_path.endswith("Obama_clip1.wav")
  obama = {s.speaker for s in specs if "Obama" in s.clip_id}
  assert obama == {"sample/Obama"}
  unlabelled = by_id["video/hdtf_sadtalker/RD_Radio2_000"].label
  assert unlabelled.emotion == "neutral" and not unlabelled.exact
  # Silent EDTalk clips.
  assert not any("expression_source" in i or "pose_source1" in i for i in by_id)



@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_sample_dataset_build(shared_data, tmp_path):
  """The whole sample dataset, built for real (10 frames per clip, 128 px): splits, labels,
  audio, references."""
  config = folder.sample_config("sample_small",
                                folder=str(shared_data),
                                frame_size=SIZE,
                                max_frames=10)
  builder = folder.Builder(config=config, data_dir=str(tmp_path))
  builder.download_and_prepare()
  assert common.read_skip_report(builder)["num_skipped"] == 0
  examples = {
      split: list(tfds.as_numpy(builder.as_dataset(split=split))) for split in ("train", "test")
  }
  speakers = {k: {ex["speaker"].decode() for ex in v} for k, v in examples.items()}
  assert speakers["test"] == set(
      folder.SAMPLE_TEST_SPEAKERS) and not speakers["train"] & speakers["test"]
  by_id = {ex["clip_id"].decode(): ex for v in examples.values() for ex in v}
  angry = by_id["video/mead_dreamtalk/M030_front_angry_level3_001"]
  assert emotions.EMOTIONS[
      angry["emotion"]] == "angry" and angry["intensity"] == 1.0 and angry["emotion_exact"]
  # M030's neutral clip; MEAD clips are silent
  assert angry["neutral_source"] == 0 and not angry["has_audio"]
  radio = by_id["video/hdtf_sadtalker/RD_Radio2_000"]
  assert radio["has_audio"] and not radio["emotion_exact"] and radio["neutral_source"] == 1
  assert radio["frames"].shape == (10, SIZE, SIZE, 3) and radio["mel"].shape == (10, 16, 80)
  assert np.abs(radio["landmarks"]).max() < 1


# ----------------------------------------------------------------------------------------------
# MEAD, CREMA-D, RAVDESS in their official layouts, from real clips.


def test_mead_builder(shared_data, tmp_path):
  src = shared_data / "video" / "mead_dreamtalk"
  root = tmp_path / "MEAD"
  for speaker in ("M030", "W009"):
    for emotion, level in (("neutral", 1), ("angry", 3), ("happy", 3)):
      clip_dir = root / speaker / "video" / "front" / emotion / f"level_{level}"
      clip_dir.mkdir(parents=True)
      shutil.copy(src / f"{speaker}_front_{emotion}_level{level}_001.mp4", clip_dir / "001.mp4")
  audio_dir = root / "M030" / "audio" / "angry" / "level_3"
  audio_dir.mkdir(parents=True)
  shutil.copy(shared_data / "speech" / "mead_evp" / "M030_angry.m4a", audio_dir / "001.m4a")
  _broken(root / "W009" / "video" / "front" / "sad" / "level_3" / "001.mp4")
  (root / "W009" / "video" / "front" / "bored").mkdir()  # Not a MEAD emotion: ignored.

  config = mead.MeadConfig(name="front_test", view="front", test_speakers=("W009",), **SMALL)
  builder = _build(mead.Builder, config, tmp_path, manual_dir=root)
  ex = _examples(builder)
  assert _speakers(ex, "train") == {"mead/M030"} and _speakers(ex, "test") == {"mead/W009"}
  assert set(ex["train"]) == {
      f"M030_front_{e}_level_{l}_001" for e, l in (("neutral", 1), ("angry", 3), ("happy", 3))
  }
  for split in ex.values():
    for e in split.values():
      _check_example(e, builder)
      assert _source(builder, e) == "speaker_neutral"
  angry = ex["train"]["M030_front_angry_level_3_001"]
  assert _label(
      builder,
      angry) == "angry" and angry["intensity"] == pytest.approx(1.0) and angry["emotion_exact"]
  assert angry["has_audio"]  # The m4a; the DreamTalk videos themselves are silent.
  assert not ex["train"]["M030_front_happy_level_3_001"]["has_audio"]
  assert ex["test"]["W009_front_neutral_level_1_001"]["intensity"] == pytest.approx(1 / 3)
  np.testing.assert_array_equal(ex["test"]["W009_front_happy_level_3_001"]["neutral_frame"],
                                ex["test"]["W009_front_neutral_level_1_001"]["neutral_frame"])
  report = common.read_skip_report(builder)
  assert report["per_split"] == {
      "test": 1
  } and report["skipped"][0]["clip_id"] == "W009_front_sad_level_3_001"
  # The published protocol is the default; another view is a config.
  assert mead.Builder.builder_configs["front"].test_speakers == ("M003",)
  with pytest.raises(common.LayoutError, match=r"video/left_30"):
    _scan(mead.Builder, mead.MeadConfig(name="left", view="left_30"), root)


def test_mead_layout_errors(tmp_path):
  (tmp_path / "M003").mkdir()
  (tmp_path / "M003" / "video.tar").write_bytes(b"")
  with pytest.raises(common.LayoutError, match="extract the tar"):
    _scan(mead.Builder, "front", tmp_path)
  with pytest.raises(common.LayoutError,
                     match=r"does not exist or is empty\nExpected layout:\n(.*\n)*<manual_dir>/"):
    _build(mead.Builder, "front", tmp_path, manual_dir=tmp_path / "missing")


def _write_flv(src, dst, frames=FRAMES + 5):
  """A video-only FLV (Sorenson H.263, as CREMA-D's) of the first frames of `src`."""
  video = video_io.read_video(src, max_frames=frames, with_audio=False)
  with av.open(str(dst), "w", format="flv") as out:
    stream = out.add_stream("flv", rate=25)
    stream.width, stream.height = video.frames.shape[2], video.frames.shape[1]
    stream.pix_fmt = "yuv420p"
    for f in video.frames:
      out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
    out.mux(stream.encode(None))
  return dst


def test_cremad_builder(shared_data, tmp_path):
  root = tmp_path / "CREMA-D"
  (root / "VideoFlash").mkdir(parents=True)
  (root / "AudioWAV").mkdir()
  grid = shared_data / "video" / "grid_lipnet"
  clips = {"1001_DFA_ANG_XX": "bbaf2n", "1001_DFA_NEU_XX": "brbk7n", "1002_IEO_HAP_HI": "lbbc2a"}
  for name, grid_clip in clips.items():
    _write_flv(grid / f"{grid_clip}.mpg", root / "VideoFlash" / f"{name}.flv")
    if name != "1002_IEO_HAP_HI":
      soundfile.write(root / "AudioWAV" / f"{name}.wav",
                      audio.load_audio(grid / f"{grid_clip}.mpg"), audio.SAMPLE_RATE)
  _broken(root / "VideoFlash" / "1002_IEO_SAD_LO.flv")
  (root / "processedResults").mkdir()
  shutil.copy(shared_data / "speech" / "cremad_labels" / "summaryTable.csv",
              root / "processedResults")

  builder = _build(cremad.Builder,
                   cremad.CremadConfig(name="test_small", **SMALL),
                   tmp_path,
                   manual_dir=root)
  ex = _examples(builder)
  # Cross-dataset default: one test split.
  assert set(ex) == {"test"} and set(ex["test"]) == set(clips)
  for e in ex["test"].values():
    _check_example(e, builder)
  ang, hap = ex["test"]["1001_DFA_ANG_XX"], ex["test"]["1002_IEO_HAP_HI"]
  assert _label(builder, ang) == "angry" and ang["intensity"] == pytest.approx(
      2 / 3) and ang["has_audio"]
  assert _label(builder, hap) == "happy" and hap["intensity"] == pytest.approx(1.0)
  assert not hap["has_audio"]  # No wav and a silent flv.
  assert _source(builder, ang) == "speaker_neutral" and _source(builder, hap) == "first_frame"
  assert ang["speaker"] == b"cremad/1001"
  assert common.read_skip_report(builder)["per_split"] == {"test": 1}

  # Crowd votes as labels (scan only): the labels are the CSV's audio-visual votes.
  votes = {
      r["FileName"]: r for r in csv.DictReader(open(root / "processedResults" / "summaryTable.csv"))
  }
  _, specs, _ = _scan(cremad.Builder, cremad.CremadConfig(name="votes", label_source="votes"), root)
  for s in specs:
    assert s.label.source == f"cremad-multimodal-vote:{votes[s.clip_id]['MultiModalVote']}"
  # Speaker-disjoint split by actor.
  _, _, splits = _scan(cremad.Builder, "speaker_split", root)
  seen = [{s.speaker for s in v} for v in splits.values()]
  assert len(seen) >= 2 and not set.intersection(*seen)
  with pytest.raises(common.LayoutError, match="VideoFlash"):
    _scan(cremad.Builder, "cross_dataset", tmp_path / "tfds")


def test_ravdess_builder(shared_data, tmp_path):
  speech = shared_data / "speech" / "ravdess"
  face = shared_data / "video" / "mead_dreamtalk" / "M030_front_neutral_level1_001.mp4"
  frames = video_io.read_video(face, max_frames=FRAMES + 5, with_audio=False).frames
  root = tmp_path / "RAVDESS"
  layout = {  # Actor 1 as unpacked into a folder named after its zip, actor 2 plain.
      "Video_Speech_Actor_01/Actor_01": (
          "01-01-01-01-01-01-01", "01-01-02-02-01-01-01", "01-01-05-02-01-01-01"),
      "Actor_02": ("01-01-05-02-01-01-02",),
  }
  for folder_name, names in layout.items():
    (root / folder_name).mkdir(parents=True)
    for name in names:
      wave = audio.load_audio(speech / f"03{name[2:]}.wav")
      video_io.write_video(root / folder_name / f"{name}.mp4", frames, fps=25, audio=wave)
  shutil.copy(root / "Actor_02" / "01-01-05-02-01-01-02.mp4",
              root / "Actor_02" / "02-01-05-02-01-01-02.mp4")
  _broken(root / "Actor_02" / "01-01-03-02-01-01-02.mp4")

  builder = _build(ravdess.Builder,
                   ravdess.RavdessConfig(name="test_small", **SMALL),
                   tmp_path,
                   manual_dir=root)
  ex = _examples(builder)["test"]
  # The video-only 02-... copy is ignored.
  assert set(ex) == {n for names in layout.values() for n in names}
  for e in ex.values():
    _check_example(e, builder)
    assert e["has_audio"]
  calm = ex["01-01-02-02-01-01-01"]
  assert _label(builder,
                calm) == "neutral" and not calm["emotion_exact"] and calm["intensity"] == 1.0
  angry = ex["01-01-05-02-01-01-02"]
  assert _label(builder, angry) == "angry" and angry["speaker"] == b"ravdess/actor_02"
  assert _source(builder, ex["01-01-05-02-01-01-01"]) == "speaker_neutral"
  assert _source(builder, angry) == "first_frame"  # Actor 2 has no neutral clip here.
  assert common.read_skip_report(builder)["skipped"][0]["clip_id"] == "01-01-03-02-01-01-02"
  with pytest.raises(common.LayoutError, match="unpack the archives"):
    (tmp_path / "zips").mkdir()
    (tmp_path / "zips" / "Video_Speech_Actor_01.zip").write_bytes(b"PK")
    _scan(ravdess.Builder, "cross_dataset", tmp_path / "zips")


# ----------------------------------------------------------------------------------------------
# Apache Beam (optional extra).


@pytest.mark.slow
def test_beam_build_matches_in_process(grid_folder, tmp_path):
  beam = pytest.importorskip("apache_beam")
  config = folder.FolderConfig(name="grid_beam", folder=str(grid_folder), pattern=GRID_PATTERN,
                               test_speakers=("spk2",), **SMALL)
  builder = _build(folder.Builder, config, tmp_path, beam_runner=beam.runners.DirectRunner())
  ex = _examples(builder)
  assert set(ex["train"]) == {"spk1_neutral_1", "spk1_happy_3"}
  assert set(ex["test"]) == {"more/spk2_sad_2", "more/spk2_angry_3"}
  assert _source(builder, ex["train"]["spk1_happy_3"]) == "speaker_neutral"
  report = common.read_skip_report(builder)
  assert report["num_skipped"] == 1 and report["skipped"][0]["clip_id"] == "spk1_fear_2"
  assert not list(pathlib.Path(builder.data_dir).glob(".skipped_clips.*"))


def test_build_command(grid_folder, tmp_path, capsys):
  from data_pipelines import build  # pylint: disable=import-outside-toplevel
  config = json.dumps({"name": "cli", "pattern": GRID_PATTERN, "frame_size": SIZE, "max_frames": 10,
                       "test_speakers": ["spk2"]})
  assert build.main([
      "talking_face_folder", "--manual_dir",
      str(grid_folder), "--data_dir",
      str(tmp_path), "--config", config
  ]) == 0
  out = capsys.readouterr().out  # TFDS prints progress lines before the summary.
  summary = json.loads(out[out.rindex('{\n "dataset"'):])
  assert summary["splits"] == {"train": 2, "test": 2} and summary["skipped"] == {"train": 1}
  assert build.main(
      ["mead", "--manual_dir",
       str(tmp_path / "missing"), "--data_dir",
       str(tmp_path)]) == 2
  assert "Expected layout" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Silent tracks, the `speech` feature, the `av` config.


def _zeroed_copy(src, dst, frames=FRAMES + 5):
  """The first frames of `src` re-encoded with an audio track of digital silence (all zeros)."""
  video = video_io.read_video(src, max_frames=frames, with_audio=True)
  video_io.write_video(dst, video.frames, fps=video.fps, audio=np.zeros_like(video.audio))
  return dst


def _spec(path, audio_path=None):
  label = emotions.Label("neutral", emotions.UNSPECIFIED_INTENSITY, "test", False)
  return features.ClipSpec(
      clip_id=pathlib.Path(path).stem, video_path=str(path), audio_path=audio_path, label=label,
      speaker="t/x", dataset="t")


def test_silent_track_or_wav_means_no_audio(tmp_path):
  opts = common.ProcessOptions(frame_size=SIZE, max_frames=10)
  zeroed = _zeroed_copy(bundled.GRID_CLIP, tmp_path / "zeroed.mp4")
  track = video_io.read_video(zeroed, max_frames=10).audio
  assert track is not None and np.max(np.abs(track)) < audio.SILENCE_PEAK  # A track, but silent.
  assert common.preprocess_clip(_spec(zeroed), opts).mel is None
  # A silent wav beside a clip: no audio too (the clip is kept, not skipped).
  soundfile.write(tmp_path / "zeros.wav", np.zeros(16000, np.float32), audio.SAMPLE_RATE)
  assert common.is_silent_file(tmp_path / "zeros.wav")
  beside = _spec(bundled.GRID_CLIP, str(tmp_path / "zeros.wav"))
  assert common.preprocess_clip(beside, opts).mel is None
  assert not common.is_silent_file(bundled.GRID_CLIP)
  assert common.preprocess_clip(_spec(bundled.GRID_CLIP), opts).mel is not None


def test_mead_eamm_silent_tracks_mean_no_audio(shared_data):
  opts = common.ProcessOptions(frame_size=SIZE, max_frames=5)
  sad = shared_data / "video/mead_eamm/sad.mp4"
  assert video_io.read_video(sad, max_frames=5).audio is not None  # It has a track...
  assert common.preprocess_clip(_spec(sad), opts).mel is None  # ...of digital silence.


def test_speech_feature_on_bundled_clip(tmp_path):
  """speech=True: [T, 384] float16 Whisper features per frame; zeros for a silent clip."""
  from emotalk_jax.models import whisper  # pylint: disable=import-outside-toplevel
  root = tmp_path / "clips"
  root.mkdir()
  shutil.copy(bundled.GRID_CLIP, root / "spk1_neutral_1.mpg")
  _zeroed_copy(bundled.GRID_CLIP, root / "spk2_sad_2.mp4")
  config = folder.FolderConfig(name="speech_test", folder=str(root), pattern=GRID_PATTERN,
                               speech=True, frame_size=SIZE, max_frames=12)
  builder = _build(folder.Builder, config, tmp_path)
  assert builder.info.features["speech"].shape == (None, 384)
  ex = _examples(builder)["train"]
  talking, silent = ex["spk1_neutral_1"], ex["spk2_sad_2"]
  assert talking["has_audio"] and not silent["has_audio"]
  assert talking["speech"].shape == (12, 384) and talking["speech"].dtype == np.float16
  assert silent["speech"].shape == (12, 384) and not silent["speech"].any()
  wave = video_io.read_video(bundled.GRID_CLIP, max_frames=12).audio[:12 * 640]
  params, cfg = common.speech_encoder()
  expected = whisper.speech_features(wave, params, cfg)
  np.testing.assert_allclose(talking["speech"].astype(np.float32), expected, atol=0.05, rtol=0.01)
  # Configs without it (e.g. `sample`) have no `speech` feature.
  assert "speech" not in folder.Builder(config="sample", data_dir=str(tmp_path)).info.features


def test_speech_offset_puts_each_clip_at_its_own_seeded_place_in_the_window(tmp_path):
  """speech_offset_max: the clip encoded after its seeded silence (where a long speech's frames fall
  in the encoder's window), which Whisper reads differently from the window's start."""
  from emotalk_jax.models import whisper  # pylint: disable=import-outside-toplevel
  offsets = [common.speech_offset(f"grid/s1/clip{i}", 22.5) for i in range(200)]
  assert offsets == [common.speech_offset(f"grid/s1/clip{i}", 22.5) for i in range(200)]
  assert 0 <= min(offsets) < 50 and 500 < max(offsets) < 563  # Frames: 0-2 s ... 20-22.5 s.
  assert common.speech_offset("grid/s1/clip0", 0.0) == 0
  with pytest.raises(ValueError, match="speech_offset_max"):
    folder.FolderConfig(name="x", folder=str(tmp_path), speech=True, speech_offset_max=30.0)
  root = tmp_path / "clips"
  root.mkdir()
  shutil.copy(bundled.GRID_CLIP, root / "spk1_neutral_1.mpg")
  config = folder.FolderConfig(name="offset_test", folder=str(root), pattern=GRID_PATTERN,
                               speech=True, speech_offset_max=22.5, frame_size=SIZE,
                               max_frames=12)
  stored = _examples(_build(folder.Builder, config, tmp_path))["train"]["spk1_neutral_1"]["speech"]
  offset = common.speech_offset("spk1_neutral_1", 22.5)
  assert offset > 25  # This clip's seeded place is more than a second in.
  wave = video_io.read_video(bundled.GRID_CLIP, max_frames=12).audio[:12 * 640]
  params, cfg = common.speech_encoder()
  at_start = whisper.speech_features(wave, params, cfg)
  expected = whisper.speech_features(np.concatenate([np.zeros(offset * 640, np.float32), wave]),
                                     params, cfg)[offset:]
  np.testing.assert_allclose(stored.astype(np.float32), expected, atol=0.05, rtol=0.01)
  assert np.abs(expected - at_start).max() > 1.0


def test_source_stride_takes_every_nth_clip(tmp_path):
  for i in range(7):
    (tmp_path / f"c{i}.mp4").write_bytes(b"")
  config = folder.FolderConfig(name="stride_test", folder=str(tmp_path),
                               sources=[folder.Source(path=".", stride=3)])
  _, specs, _ = _scan(folder.Builder, config, tmp_path)
  assert [s.clip_id for s in specs] == ["c0", "c3", "c6"]
  with pytest.raises(ValueError, match="stride"):
    folder.Source(stride=0)


def test_av_config_sources_and_speaker_disjoint_splits(shared_data):
  config = folder.av_config("av_scan", folder=str(shared_data))
  assert config.speech and config.frame_size == 128
  _, specs, splits = _scan(folder.Builder, config, shared_data)
  assert set(splits) == {"train", "test"}
  train, test = ({s.speaker for s in splits[k]} for k in ("train", "test"))
  assert not train & test and test == set(folder.AV_TEST_SPEAKERS)
  assert {"mead/W009", "grid/s26", "grid/s31", "sample/KristiNoem", "sample/FeiFeiLi"} <= test
  assert {"grid/s1", "grid/s4", "cremad/1001", "lrs/lip2speech", "mead/M030"} <= train
  by_speaker = {}
  for s in specs:
    by_speaker.setdefault(s.speaker, []).append(s)
  # grid_s1: every 4th of its 999 clips by name (250), plus LipNet's bbaf2n (the same speaker).
  s1 = sorted(s.clip_id for s in by_speaker["grid/s1"])
  all_s1 = sorted(p.stem for p in (shared_data / "video/grid_s1").glob("*.mp4"))
  assert len(all_s1) == 999 and len(s1) == 251
  assert [c.rsplit("/", 1)[-1] for c in s1 if "grid_s1/" in c] == all_s1[::folder.AV_GRID_S1_STRIDE]
  assert "video/grid_lipnet/bbaf2n" in s1
  assert len(by_speaker["grid/s26"]) == len(by_speaker["grid/s31"]) == 10
  assert len(by_speaker["grid/s4"]) == 49 and len(by_speaker["lrs/lip2speech"]) == 44
  cremad_labels = {s.label.emotion for s in by_speaker["cremad/1001"]}
  assert cremad_labels == {"angry", "disgusted", "fear", "happy", "neutral", "sad"}
  # The sample's clips are all in (the sample config itself is unchanged).
  sample = folder.sample_config("sample_scan2", folder=str(shared_data))
  _, sample_specs, _ = _scan(folder.Builder, sample, shared_data)
  assert {s.clip_id for s in sample_specs} <= {s.clip_id for s in specs}
  assert len(specs) == len(sample_specs) + 250 + 49 + 10 + 10 + 6 + 44


def test_grid_mp4s_with_frozen_timestamps_decode_every_frame(shared_data):
  """grid_s1/s4/s26/s31 mp4s stamp every frame 0: frames follow each other by their duration."""
  for name in ("grid_s1/bbaf3s.mp4", "grid_s26/bgbsza.mp4"):
    video = video_io.read_video(shared_data / "video" / name, max_frames=None, with_audio=True)
    assert len(video.frames) == 75 and len(video.audio) == pytest.approx(75 * 640, abs=1000)

"""video_io on real media: reading every container, frame-rate resampling, atomic writing, input
errors."""

import fractions
import math
import shutil
import struct

import av
import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.errors import InputError
from emotalk_jax.media import audio
from emotalk_jax.media import video_io


@pytest.fixture(scope="module")
def grid():
  return video_io.read_video(bundled.GRID_CLIP)


def _gray_frames(values, size=(48, 64)):
  """[T, H, W, 3] uint8 frames, frame k uniformly `values[k]`: the frame id survives lossy
  coding."""
  return np.stack([np.full(size + (3,), v, np.uint8) for v in values])


def _frame_ids(frames, step=15, offset=10):
  return [int(round((f.mean() - offset) / step)) for f in frames]


def _transcode(src, dst, video_codec, audio_codec, num_frames=10, **video_options):
  """Re-encodes the first frames and audio of `src` into `dst` (container from the extension)."""
  clip = video_io.read_video(src, max_frames=num_frames)
  with av.open(str(dst), "w") as out:
    vs = out.add_stream(video_codec, rate=25)
    vs.width, vs.height, vs.pix_fmt = 360, 288, "yuv420p"
    vs.options = video_options
    aus = out.add_stream(audio_codec,
                         rate=16000 if audio_codec != "libopus" else 48000,
                         layout="mono")
    aus.codec_context.format = "fltp" if audio_codec == "aac" else "flt"
    for i, rgb in enumerate(clip.frames):
      frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
      frame.pts = i
      out.mux(vs.encode(frame))
    out.mux(vs.encode(None))
    wave = clip.audio if aus.codec_context.sample_rate == 16000 else np.repeat(clip.audio, 3)
    size = aus.codec_context.frame_size or 1024
    for start in range(0, len(wave), size):
      chunk = np.ascontiguousarray(wave[None, start : start + size])
      frame = av.AudioFrame.from_ndarray(chunk, format=aus.codec_context.format.name, layout="mono")
      frame.sample_rate = aus.codec_context.sample_rate
      frame.pts = start
      out.mux(aus.encode(frame))
    out.mux(aus.encode(None))
  return clip


def test_grid_clip(grid):
  assert grid.frames.shape == (75, 288, 360, 3)
  assert grid.frames.dtype == np.uint8
  assert grid.fps == 25.0
  assert grid.duration == pytest.approx(3.0)
  assert grid.audio_rate == 16000
  assert grid.audio.dtype == np.float32 and grid.audio.ndim == 1
  assert len(grid.audio) / 16000 == pytest.approx(3.0, abs=0.06)
  assert np.abs(grid.audio).max() > 0.1
  assert grid.path == str(bundled.GRID_CLIP)
  # Native rate is 25 fps: resampling must be the identity.
  native = video_io.read_video(bundled.GRID_CLIP, fps=None, with_audio=False)
  np.testing.assert_array_equal(native.frames, grid.frames)
  assert native.audio is None and native.audio_rate is None


def test_max_frames_cuts_audio_too():
  clip = video_io.read_video(bundled.GRID_CLIP, max_frames=10)
  assert clip.frames.shape[0] == 10
  assert len(clip.audio) == 6400  # 10 frames at 25 fps = 0.4 s at 16 kHz.


def test_iter_frames_streams_and_matches_read_video(grid):
  frames = video_io.iter_frames(bundled.GRID_CLIP)
  first = next(frames)
  np.testing.assert_array_equal(first, grid.frames[0])
  assert 1 + sum(1 for _ in frames) == 75
  frames.close()


def test_shared_30fps_clip_resampled_to_25(shared_data):
  path = shared_data / "video/edtalk/expression_source.mp4"
  with av.open(str(path)) as c:
    stream = c.streams.video[0]
    assert stream.average_rate == 30
    duration = stream.frames / 30
  count = sum(1 for _ in video_io.iter_frames(path, fps=25))
  assert count == math.ceil(duration * 25)  # 389 frames, 12.97 s -> 325.


def test_shared_odd_rate_clip(shared_data):
  path = shared_data / "video/videoretalking/face_1.mp4"
  native = video_io.read_video(path, fps=None, with_audio=False)
  assert native.fps == pytest.approx(22.13, abs=0.01)
  assert native.frames.shape == (135, 700, 700, 3)
  clip = video_io.read_video(path, fps=25)
  assert len(clip.frames) == math.ceil(135 / native.fps * 25)  # 6.1 s -> 153.
  # The first frame comes 33 ms (528 samples) after the audio starts: that audio is dropped to keep
  # sync.
  assert len(clip.audio) == len(audio.decode_audio(path)) - 528


def test_shared_mpg_audio_only_mov_and_truncated_mp4(shared_data, tmp_path):
  clip = video_io.read_video(shared_data / "video/grid_lipnet/lbbc2a.mpg", max_frames=5)
  assert clip.frames.shape == (5, 288, 360, 3)
  with pytest.raises(InputError, match="no video stream"):
    video_io.read_video(shared_data / "speech/eamm_audio/sample1.mov")
  # Index at the end of the file: the first 2 KB hold no usable structure at all.
  (tmp_path / "cut.mp4").write_bytes(
      (shared_data / "video/videoretalking/face_2.mp4").read_bytes()[:2048])
  with pytest.raises(InputError, match="not a readable video"):
    video_io.read_video(tmp_path / "cut.mp4")


@pytest.mark.parametrize(
    "name, video_codec, audio_codec, options",
    [
        ("clip.flv", "flv", "aac", {"qscale": "2"}),
        ("clip.webm", "libvpx", "libopus", {"crf": "10", "b": "2M"}),
    ],
)
def test_flv_and_webm(tmp_path, name, video_codec, audio_codec, options):
  src = _transcode(bundled.GRID_CLIP, tmp_path / name, video_codec, audio_codec, **options)
  clip = video_io.read_video(tmp_path / name)
  assert clip.frames.shape == (10, 288, 360, 3)
  assert np.abs(clip.frames.astype(np.float32) - src.frames).mean() < 12
  # FLV has no edit list, so AAC's 1024-sample encoder delay and last-frame padding stay in the
  # track.
  assert clip.audio is not None and 0.39 <= len(clip.audio) / 16000 <= 0.4 + 2 * 1024 / 16000


def test_resampling_takes_latest_frame_at_or_before_each_time(tmp_path):
  path = tmp_path / "ids30.mp4"
  video_io.write_video(path, _gray_frames(10 + 15 * np.arange(15)), fps=30)  # 15 frames = 0.5 s.
  frames = list(video_io.iter_frames(path, fps=25))
  assert len(frames) == 13  # ceil(0.5 s * 25).
  assert _frame_ids(frames) == [math.floor(i * 30 / 25) for i in range(13)]
  # Upsampling repeats frames: 0.5 s at 60 fps.
  assert _frame_ids(video_io.iter_frames(path,
                                         fps=60)) == [math.floor(i * 30 / 60) for i in range(30)]


def test_ntsc_rate(tmp_path):
  path = tmp_path / "ntsc.mp4"
  video_io.write_video(path, _gray_frames([128] * 30), fps=30000 / 1001)
  assert video_io.read_video(path, fps=None).fps == pytest.approx(29.97, abs=1e-3)
  assert len(video_io.read_video(path, fps=25).frames) == 26  # 1.001 s -> ceil(25.03).


def test_variable_frame_rate(tmp_path):
  path = tmp_path / "vfr.mkv"
  pts_ms = [0, 30, 100, 110, 200, 330, 340, 390]
  with av.open(str(path), "w") as out:
    stream = out.add_stream("libx264", rate=100)  # Nominal rate only: every frame lasts 10 ms.
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.codec_context.time_base = fractions.Fraction(1, 1000)
    stream.options = {"crf": "10", "bf": "0"}
    for t, img in zip(pts_ms, _gray_frames(10 + 15 * np.arange(len(pts_ms)))):
      frame = av.VideoFrame.from_ndarray(img, format="rgb24")
      frame.pts, frame.time_base = t, fractions.Fraction(1, 1000)
      out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
  ids = _frame_ids(video_io.iter_frames(path, fps=25))
  # The last frame starts at 390 ms and lasts 10 ms: the clip ends at 400 ms -> 10 frames at 25 fps.
  assert ids == [max(k for k, t in enumerate(pts_ms) if t <= i * 40) for i in range(10)]


def test_write_video_round_trip(tmp_path, grid):
  path = tmp_path / "new" / "dir" / "out.mp4"
  written = video_io.write_video(path, grid.frames, fps=25, audio=grid.audio, audio_rate=16000)
  assert written == path and path.is_file()
  assert sorted(p.name for p in path.parent.iterdir()) == ["out.mp4"]
  with av.open(str(path)) as c:
    assert c.streams.video[0].codec_context.name == "h264"
    assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert c.streams.audio[0].codec_context.name == "aac"
  head = path.read_bytes()[:4096]
  assert 0 <= head.find(b"moov") < head.find(b"mdat")  # Fast start: the index comes first.
  back = video_io.read_video(path)
  assert back.frames.shape == grid.frames.shape and back.fps == 25.0
  assert np.abs(back.frames.astype(np.float32) - grid.frames).mean() < 3
  # AAC pads to whole 1024-sample frames: the decoded track may run up to one frame longer.
  assert 0 <= len(back.audio) - len(grid.audio) <= 1024
  n = len(grid.audio)
  assert np.corrcoef(back.audio[:n], grid.audio)[0, 1] > 0.99


def test_write_video_streams_an_iterable_with_odd_size(tmp_path):
  rng = np.random.default_rng(0)
  frames = [rng.integers(0, 256, (33, 47, 3), dtype=np.uint8) for _ in range(4)]
  path = video_io.write_video(tmp_path / "odd.mp4", iter(frames), fps=10)
  back = video_io.read_video(path, fps=None)
  assert back.frames.shape == (4, 34, 48, 3) and back.fps == 10 and back.audio is None


def test_write_is_atomic(tmp_path):
  path = tmp_path / "keep.mp4"
  path.write_bytes(b"previous result")

  def frames():
    yield from _gray_frames([50, 60, 70])
    yield np.zeros((10, 10, 3), np.uint8)  # Wrong shape midway.

  with pytest.raises(InputError, match="frame 3 has shape"):
    video_io.write_video(path, frames())
  assert path.read_bytes() == b"previous result"
  assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]  # No temporary file left behind.

  def failing():
    yield from _gray_frames([50, 60])
    raise RuntimeError("generator failed")

  with pytest.raises(RuntimeError):
    video_io.write_video(path, failing())
  assert path.read_bytes() == b"previous result"
  assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_write_errors(tmp_path):
  with pytest.raises(InputError, match="no frames"):
    video_io.write_video(tmp_path / "a.mp4", [])
  with pytest.raises(InputError, match="uint8"):
    video_io.write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.float32))
  with pytest.raises(InputError, match="extension"):
    video_io.write_video(tmp_path / "a.gif", _gray_frames([1]))
  with pytest.raises(InputError, match="mono"):
    video_io.write_video(tmp_path / "a.mp4",
                         _gray_frames([1]),
                         audio=np.zeros((2, 100), np.float32))
  assert not list(tmp_path.iterdir())


def _make_no_frame_video(path):
  """An mkv that declares a video stream but carries only audio packets."""
  with av.open(str(path), "w") as out:
    vs = out.add_stream("libx264", rate=25)
    vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
    aus = out.add_stream("aac", rate=16000, layout="mono")
    wave = (0.1 * np.sin(np.arange(4096) / 5)).astype(np.float32)[None]
    for start in range(0, 4096, 1024):
      chunk = np.ascontiguousarray(wave[:, start : start + 1024])
      frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
      frame.sample_rate, frame.pts = 16000, start
      out.mux(aus.encode(frame))
    out.mux(aus.encode(None))


def test_read_errors(tmp_path):
  cases = {
      "missing.mp4": (None, "no such file"),
      "empty.mp4": (b"", "empty"),
      "random.mp4": (np.random.default_rng(0).bytes(4096), "not a readable video"),
      "cut.mpg": (bundled.GRID_CLIP.read_bytes()[:2048], "no intact video frame"),
      "speech.wav": (bundled.ARCTIC_SPEECH.read_bytes(), "no video stream"),
  }
  for name, (data, problem) in cases.items():
    if data is not None:
      (tmp_path / name).write_bytes(data)
    with pytest.raises(InputError, match=problem) as info:
      video_io.read_video(tmp_path / name)
    assert info.value.path == str(tmp_path / name)
  _make_no_frame_video(tmp_path / "noframes.mkv")
  with pytest.raises(InputError, match="no intact video frame"):
    video_io.read_video(tmp_path / "noframes.mkv")
  with pytest.raises(InputError, match="directory"):
    video_io.read_video(tmp_path)
  with pytest.raises(InputError, match="no such file"):
    video_io.iter_frames(tmp_path / "missing.mp4")  # Checked on the call, before iterating.
  with pytest.raises(InputError, match="fps"):
    video_io.read_video(bundled.GRID_CLIP, fps=0)


def test_truncated_mp4(tmp_path, grid):
  full = video_io.write_video(tmp_path / "full.mp4", grid.frames[:20]).read_bytes()
  # Fast start puts the index first: 2 KB hold the index but no decodable picture.
  (tmp_path / "cut.mp4").write_bytes(full[:2048])
  with pytest.raises(InputError, match="no intact video frame"):
    video_io.read_video(tmp_path / "cut.mp4")
  # Like the ffmpeg tool, a file cut midway gives the frames before the cut.
  (tmp_path / "half.mp4").write_bytes(full[: len(full) // 2])
  assert 0 < len(video_io.read_video(tmp_path / "half.mp4").frames) < 20


def test_read_image(tmp_path):
  photo = video_io.read_image(bundled.ASTRONAUT_PHOTO)
  assert photo.shape == (512, 512, 3) and photo.dtype == np.uint8
  # PNG data behind a .jpg name, at a non-ASCII path.
  odd = tmp_path / "fotó 写真.jpg"
  shutil.copy(bundled.ASTRONAUT_PHOTO, odd)
  np.testing.assert_array_equal(video_io.read_image(odd), photo)
  rgb = photo[100:110, 200:212]
  bgr = np.ascontiguousarray(rgb[..., ::-1])
  cv2.imwrite(str(tmp_path / "gray.png"), rgb[..., 0])
  np.testing.assert_array_equal(video_io.read_image(tmp_path / "gray.png"),
                                np.repeat(rgb[..., :1], 3, axis=2))
  alpha = np.full(rgb.shape[:2] + (1,), 9, np.uint8)
  cv2.imwrite(str(tmp_path / "rgba.png"), np.concatenate([bgr, alpha], axis=2))
  np.testing.assert_array_equal(video_io.read_image(tmp_path / "rgba.png"), rgb)
  cv2.imwrite(str(tmp_path / "deep.png"), bgr.astype(np.uint16) * 257)
  np.testing.assert_array_equal(video_io.read_image(tmp_path / "deep.png"), rgb)


def test_read_image_applies_exif_orientation(tmp_path):
  bgr = np.zeros((20, 40, 3), np.uint8)
  bgr[:, :10, 2] = 255  # A red band on the left.
  jpeg = cv2.imencode(".jpg", bgr)[1].tobytes()
  # A minimal EXIF block: big-endian TIFF header and one IFD entry, Orientation (0x0112) = 6 (turn
  # 90° cw).
  tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">HHHIHH", 1, 0x0112, 3, 1, 6, 0) + b"\x00" * 4
  app1 = b"Exif\x00\x00" + tiff
  (tmp_path / "phone.jpg").write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H",
                                                                            len(app1) + 2) + app1 +
                                       jpeg[2:])
  upright = video_io.read_image(tmp_path / "phone.jpg")
  assert upright.shape == (40, 20, 3)
  # The band is now on top.
  assert upright[:8, :, 0].mean() > 200 and upright[-20:, :, 0].mean() < 30


def test_read_image_errors(tmp_path):
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "junk.png").write_bytes(b"not an image at all" * 50)
  (tmp_path / "cut.png").write_bytes(bundled.ASTRONAUT_PHOTO.read_bytes()[:100])
  cases = [
      ("missing.png", "no such file"),
      ("empty.png", "empty"),
      ("junk.png", "not a readable image"),
      ("cut.png", "not a readable image"),
  ]
  for name, problem in cases:
    with pytest.raises(InputError, match=problem):
      video_io.read_image(tmp_path / name)

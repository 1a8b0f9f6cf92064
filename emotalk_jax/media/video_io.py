"""Reading and writing video and images with PyAV (bundled FFmpeg) and OpenCV.

Frames are always [H, W, 3] uint8 RGB. Reading resamples to a constant frame rate from the frames'
presentation timestamps: output frame i shows time t_i = i / fps (measured from the first decoded
  frame)
and is the latest source frame whose timestamp is <= t_i. A clip whose last frame ends at time D
gives ceil(D * fps) frames, e.g. a 10 s clip at 30 fps (or at a variable rate) gives 250 frames at
25 fps. Packets the decoder rejects and frames it flags as corrupt are skipped (the previous frame
is held), so a file cut off midway gives the frames before the cut. `read_video` returns the audio
track as [N] float32 mono at 16 kHz (`audio.SAMPLE_RATE`), shifted so that sample 0 plays with frame
0.
"""

import dataclasses
import fractions
import math
import os
import pathlib
import secrets
from collections.abc import Iterable, Iterator

import av
import cv2
import numpy as np

from emotalk_jax.errors import InputError
from emotalk_jax.media import audio as audio_lib

# Timestamps are compared with this slack (seconds) so float rounding never shifts a frame boundary.
_TIME_EPS = 1e-6
_WRITABLE_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")


@dataclasses.dataclass
class Video:
  """A decoded clip.

  Attributes:
    frames: [T, H, W, 3] uint8 RGB.
    fps: frames per second of `frames` (the requested rate, or the stream's average rate).
    audio: [N] float32 mono at `audio_rate`, or None (no audio track, or not requested).
    audio_rate: samples per second of `audio` (16000), or None.
    path: the file it was read from.
  """

  frames: np.ndarray
  fps: float
  audio: np.ndarray | None
  audio_rate: int | None
  path: str

  @property
  def duration(self) -> float:
    """Seconds covered by the frames."""
    return len(self.frames) / self.fps


def _check_fps(fps, allow_none: bool = True) -> float | None:
  if fps is None and allow_none:
    return None
  fps = float(fps)
  if not (math.isfinite(fps) and fps > 0):
    raise InputError("fps", f"must be a positive number of frames per second, got {fps}")
  return fps


def _open_video(path):
  """-> (container, video stream), or InputError for anything that is not a decodable video file."""
  p = audio_lib.check_file(path)
  try:
    container = av.open(str(p))
  except (av.error.InvalidDataError, av.error.EOFError):
    raise InputError(
        path, "is not a readable video file (unknown format, or corrupt/truncated data)") from None
  except (av.FFmpegError, OSError) as e:
    raise InputError(path, f"cannot be opened as video ({e.strerror or e})") from None
  if not container.streams.video:
    kind = "audio only" if container.streams.audio else "no streams at all"
    container.close()
    raise InputError(path, f"has no video stream ({kind}); give a video file")
  stream = container.streams.video[0]
  stream.thread_type = "AUTO"  # Frame + slice threads: several times faster on long H.264 clips.
  return container, stream


def _native_fps(stream) -> float | None:
  for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
    if rate and 0 < rate < 1000:  # Some containers report 90000 (the time base) as the rate.
      return float(rate)
  return None


def _to_rgb(frame) -> np.ndarray:
  """PyAV frame -> [H, W, 3] uint8 RGB, turned upright when the stream carries a display
  rotation."""
  rgb = frame.to_ndarray(format="rgb24")
  rotation = frame.rotation  # Degrees counterclockwise needed for display (phone clips: +-90).
  if rotation:
    rgb = np.ascontiguousarray(np.rot90(rgb, k=int(round(rotation / 90.0)) % 4))
  return rgb


def _decoded(path, container, stream) -> Iterator[tuple[object, float | None, float | None]]:
  """Yields (frame, pts seconds or None, duration seconds or None) in presentation order.

  Like the ffmpeg tool, packets the decoder rejects are skipped, and so are frames it flags as
  corrupt (e.g. the cut-off last frame of a truncated file): the previous intact frame is held in
  their place.
  """
  try:
    for packet in container.demux(stream):
      try:
        frames = packet.decode()
      except av.error.InvalidDataError:
        continue
      for frame in frames:
        if frame.is_corrupt:
          continue
        pts = None if frame.pts is None else float(frame.pts * frame.time_base)
        duration = float(frame.duration *
                         frame.time_base) if frame.duration and frame.time_base else None
        yield frame, pts, duration
  except av.FFmpegError as e:
    problem = f"video stream cannot be read (corrupt or truncated file?): {e.strerror or e}"
    raise InputError(path, problem) from None


def _frames(path, container, stream, fps, max_frames, timeline=None) -> Iterator[np.ndarray]:
  """Generator behind `iter_frames`; owns and closes `container`.

  Records the timestamp (seconds) of the first shown frame as timeline["start"] when `timeline` is
  given.
  """
  limit = math.inf if max_frames is None else max_frames
  native = _native_fps(stream)
  timeline = {} if timeline is None else timeline
  count = 0
  with container:
    if fps is None:
      for frame, pts, _ in _decoded(path, container, stream):
        if count >= limit:
          return
        timeline.setdefault("start", pts)
        yield _to_rgb(frame)
        count += 1
    else:
      prev = prev_rgb = None  # The latest source frame so far (converted only once it is shown).
      prev_t = start = None
      last_step = None  # Seconds between the last two source frames: the fallback frame duration.
      prev_duration = None
      last_pts = None  # The latest timestamp the file gave (seconds).
      for frame, pts, duration in _decoded(path, container, stream):
        # No timestamp, or one that does not advance (some GRID mp4s stamp every frame 0): the
        # frame follows the previous one by the last step, else the previous frame's duration,
        # else one native frame period.
        if pts is None or (last_pts is not None and pts <= last_pts):
          if start is None:
            start = timeline["start"] = 0.0 if pts is None else pts
          step = last_step or prev_duration or 1.0 / (native or fps)
          t = 0.0 if prev_t is None else prev_t + step
        else:
          last_pts = pts
          if start is None:
            start = timeline["start"] = pts
          t = pts - start
        if prev is not None:
          if t > prev_t:
            last_step = t - prev_t
          # Every output time before this frame's timestamp shows the previous frame.
          while count < limit and count / fps < t - _TIME_EPS:
            if prev_rgb is None:
              prev_rgb = _to_rgb(prev)
            yield prev_rgb
            count += 1
          if count >= limit:
            return
        prev, prev_rgb, prev_t, prev_duration = frame, None, t, duration
      if prev is None:
        return
      # The last frame lasts its own duration, else the last frame step, else one native frame
      # period.
      end = prev_t + (prev_duration or last_step or 1.0 / (native or fps))
      while count < limit and count / fps < end - _TIME_EPS:
        if prev_rgb is None:
          prev_rgb = _to_rgb(prev)
        yield prev_rgb
        count += 1


def iter_frames(path,
                fps: float | None = 25.0,
                max_frames: int | None = None) -> Iterator[np.ndarray]:
  """Streams a video's frames as [H, W, 3] uint8 RGB, resampled to `fps` (None keeps every decoded
  frame).

  The file is checked and opened immediately (InputError for a missing, empty, undecodable or
  audio-only file); decoding errors later in the file raise InputError from the iteration.
  """
  fps = _check_fps(fps)
  container, stream = _open_video(path)
  return _frames(path, container, stream, fps, max_frames)


def read_video(
    path, fps: float | None = 25.0, max_frames: int | None = None, with_audio: bool = True
) -> Video:
  """Decodes a whole clip (mp4, mpg, mov, flv, webm, mkv, avi, ...: whatever FFmpeg reads).

  Args:
    path: the video file.
    fps: output frame rate (frames are resampled by timestamp); None keeps the native frames and
      reports the stream's average rate.
    max_frames: stop after this many output frames; the audio is then cut to the same duration.
    with_audio: also decode the first audio track (to [N] float32 mono, 16 kHz).

  Raises:
    InputError: missing, empty or undecodable file, no video stream, or no frame decoded.
  """
  fps = _check_fps(fps)
  if max_frames is not None and max_frames < 1:
    raise InputError("max_frames", f"must be at least 1, got {max_frames}")
  container, stream = _open_video(path)
  audio_start = None
  if container.streams.audio:
    track = container.streams.audio[0]
    audio_start = float(track.start_time * track.time_base) if track.start_time is not None else 0.0
  out_fps = fps if fps is not None else (_native_fps(stream) or 25.0)
  timeline = {}
  frames = list(_frames(path, container, stream, fps, max_frames, timeline))
  if not frames:
    raise InputError(
        path, "no intact video frame could be decoded (empty stream, or a truncated/corrupt file)"
    )
  wave = rate = None
  if with_audio and audio_start is not None:
    wave = audio_lib.decode_audio(path)
    if wave is not None:
      rate = audio_lib.SAMPLE_RATE
      # Align sample 0 with frame 0: drop audio before the first frame, or pad silence if audio
      # starts late.
      shift = int(round(((timeline.get("start") or 0.0) - audio_start) * rate))
      wave = wave[shift:] if shift >= 0 else np.concatenate([np.zeros(-shift, np.float32), wave])
      if max_frames is not None and len(frames) == max_frames:
        wave = wave[: int(round(len(frames) / out_fps * rate))]
  return Video(frames=np.stack(frames), fps=out_fps, audio=wave, audio_rate=rate, path=str(path))


def read_image(path) -> np.ndarray:
  """Decodes an image file (by content, not extension) to [H, W, 3] uint8 RGB.

  Grayscale is expanded to RGB, alpha is dropped, 16-bit and float images are scaled to 8 bits, and
  JPEG EXIF orientation is applied.
  """
  p = audio_lib.check_file(path)
  data = np.frombuffer(p.read_bytes(), np.uint8)  # Bytes + imdecode: works for any unicode path.
  try:
    # ANYDEPTH keeps 16-bit precision for a correct rescale; ANYCOLOR keeps gray as gray and drops
    # alpha,
    # and unlike IMREAD_UNCHANGED it honours EXIF orientation.
    image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
  except cv2.error:
    image = None
  if image is None or image.size == 0:
    raise InputError(path, "is not a readable image (unknown format, or corrupt/truncated data)")
  if image.dtype == np.uint16:
    image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
  elif image.dtype != np.uint8:
    image = np.clip(np.nan_to_num(image.astype(np.float32)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
  if image.ndim == 2:
    image = image[:, :, None]
  channels = image.shape[2]
  if channels == 1:
    return np.ascontiguousarray(np.repeat(image, 3, axis=2))
  if channels == 3:
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
  if channels == 4:
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
  raise InputError(path, f"has {channels} colour channels; expected gray, RGB or RGBA")


def write_image(path, image) -> pathlib.Path:
  """Writes [H, W, 3] uint8 RGB as PNG or JPEG (by suffix), via a temporary name renamed when
  complete."""
  path = pathlib.Path(path)
  ok, data = cv2.imencode(path.suffix or ".png",
                          cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR))
  if not ok:
    raise InputError(path, "cannot be written: use a .png or .jpg name")
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
  try:
    tmp.write_bytes(data.tobytes())
    tmp.replace(path)
  finally:
    tmp.unlink(missing_ok=True)
  return path


def _check_frame(path, frame, index: int, shape) -> np.ndarray:
  frame = np.asarray(frame)
  if frame.dtype != np.uint8:
    raise InputError(path, f"frame {index} has dtype {frame.dtype}; expected uint8 RGB")
  if frame.ndim != 3 or frame.shape[2] != 3:
    raise InputError(path, f"frame {index} has shape {frame.shape}; expected [H, W, 3] RGB")
  if shape is not None and frame.shape != shape:
    raise InputError(path, f"frame {index} has shape {frame.shape}, but frame 0 has shape {shape}")
  return frame


def _pad_even(frame: np.ndarray) -> np.ndarray:
  """yuv420p needs even sizes: repeat the last row/column when H or W is odd."""
  h, w = frame.shape[:2]
  if h % 2 or w % 2:
    frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
  return frame


class _AudioEncoder:
  """Feeds [N] float32 mono (an array or an `audio.SpooledWave`) to an AAC stream in 1024-sample
  frames, up to a given time."""

  def __init__(self, container, wave, rate: int):
    self._stream = container.add_stream("aac", rate=rate, layout="mono")
    self._stream.bit_rate = 96_000
    self._container = container
    self._wave = wave
    self._rate = rate
    self._pos = 0

  def encode_until(self, seconds: float):
    stop = len(self._wave)
    if seconds < stop / self._rate:
      stop = int(round(seconds * self._rate))
    size = self._stream.codec_context.frame_size or 1024
    while self._pos < stop:
      # Clipped a frame at a time (AAC has no headroom above full scale): no copy of the speech.
      chunk = np.clip(self._wave[self._pos:self._pos + size], -1.0, 1.0)[None]
      frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
      frame.sample_rate = self._rate
      frame.pts = self._pos
      frame.time_base = fractions.Fraction(1, self._rate)
      self._container.mux(self._stream.encode(frame))
      self._pos += chunk.shape[1]

  def finish(self):
    self.encode_until(math.inf)
    self._container.mux(self._stream.encode(None))


# x264's speed preset. Measured on 250 generated 480x480 frames at CRF 14 (2 cores): "medium" 3.1 s,
# "fast" 2.5 s, "faster" 2.1 s, all with the same detail (variance of the Laplacian 0.986-0.988 of
# the frames'), "veryfast" 1.1 s but 0.959. "faster" makes a still mouth flicker: dlib read its
# opening changing by 0.0057 a frame in silence against 0.0040-0.0041 with "medium" or "fast".
X264_PRESET = "fast"


def write_video(
    path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 25.0,
    audio: np.ndarray | None = None,
    audio_rate: int = audio_lib.SAMPLE_RATE,
    crf: int = 18,
) -> pathlib.Path:
  """Writes frames (and optional speech) as an H.264/AAC video, atomically.

  Args:
    path: output file; .mp4 (or .mov, .m4v, .mkv). Parent directories are created.
    frames: [T, H, W, 3] uint8 RGB, or any iterable of [H, W, 3] uint8 frames (streamed, never
      stacked). Odd H or W is padded by one repeated pixel row/column (yuv420p needs even sizes).
    fps: frames per second.
    audio: [N] float32 mono in [-1, 1] at `audio_rate` (an array, or an `audio.SpooledWave` read
      a frame at a time), muxed as AAC exactly as given (no trim or pad).
    audio_rate: samples per second of `audio`.
    crf: x264 constant rate factor (0 lossless .. 51 worst; 18 is visually lossless).

  Returns:
    The written path. The video is encoded into a hidden temporary file next to `path` that replaces
    `path` only once complete, so a failed write never leaves a partial file or destroys an existing
    one.
  """
  fps = _check_fps(fps, allow_none=False)
  out = pathlib.Path(os.fspath(path)).expanduser()
  if out.suffix.lower() not in _WRITABLE_SUFFIXES:
    raise InputError(path, f"cannot write H.264 video with extension {out.suffix!r}; use .mp4")
  if out.is_dir():
    raise InputError(path, "is a directory; give a file name such as out.mp4")
  wave = audio
  if audio is not None and not isinstance(audio, audio_lib.SpooledWave):
    wave = np.asarray(audio, np.float32)
    if wave.ndim == 2 and 1 in wave.shape:
      wave = wave.reshape(-1)
    if wave.ndim != 1:
      raise InputError(path, f"audio must be mono [N] samples, got shape {wave.shape}")
  if audio is not None and not (isinstance(audio_rate, (int, np.integer)) and
                                8000 <= audio_rate <= 96000):
    raise InputError(
        path, f"audio_rate must be an integer between 8000 and 96000 Hz, got {audio_rate}")
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise InputError(path, f"cannot create its directory ({e.strerror or e})") from None
  tmp = out.with_name(f".{out.stem}.{secrets.token_hex(4)}.partial{out.suffix}")
  try:
    _encode(path, tmp, frames, fps, wave, int(audio_rate), crf)
    os.replace(tmp, out)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return out


def _encode(path, tmp: pathlib.Path, frames, fps: float, wave, audio_rate: int, crf: int):
  try:
    container = av.open(str(tmp), mode="w", container_options={"movflags": "+faststart"})
  except (av.FFmpegError, OSError) as e:
    raise InputError(path, f"cannot be written ({e.strerror or e})") from None
  if isinstance(frames, np.ndarray) and frames.ndim != 4:
    container.close()
    raise InputError(path, f"frames must be [T, H, W, 3] uint8 RGB, got shape {frames.shape}")
  with container:
    video = None
    sound = None
    shape = None
    # Fraction keeps rates such as 29.97 exact in the container's time base.
    rate = fractions.Fraction(fps).limit_denominator(1001)
    for count, frame in enumerate(frames):
      frame = _check_frame(path, frame, count, shape)
      if video is None:
        shape = frame.shape
        padded = _pad_even(frame)
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height = padded.shape[1], padded.shape[0]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(int(crf)), "preset": X264_PRESET}
        if wave is not None:
          sound = _AudioEncoder(container, wave, audio_rate)
      av_frame = av.VideoFrame.from_ndarray(_pad_even(frame), format="rgb24")
      av_frame.pts = count
      av_frame.time_base = 1 / rate
      container.mux(video.encode(av_frame))
      if sound is not None:
        sound.encode_until((count + 1) / fps)  # Interleave: audio up to the end of this frame.
    if video is None:
      raise InputError(path, "no frames to write")
    container.mux(video.encode(None))
    if sound is not None:
      sound.finish()

"""Speech loading and the log-mel features that drive the generator.

The contract (every number below is a module constant):

* Waveforms are mono float32 in [-1, 1] at `SAMPLE_RATE` = 16000 Hz. `load_audio` decodes any
  container PyAV or libsndfile reads, averages the channels and resamples with soxr.
* `log_mel`: an STFT with `N_FFT` = 512, a 25 ms Hann window (`WIN_LENGTH` = 400 samples) and a 10
  ms hop (`HOP_LENGTH` = 160 samples, so 100 mel frames per second), `N_MELS` = 80 Slaney mel bands
  over `FMIN`..`FMAX` = 55..7600 Hz, power 2, natural log with a floor: log(max(power,
  `LOG_FLOOR`)). Frames are centred (the signal is zero-padded by N_FFT / 2 on both sides), so N
  samples give
  F = 1 + N // 160 mel frames, and mel frame j describes the audio around time j * 10 ms.
* `num_video_frames`: N samples last N / 16000 s and get T = ceil(N * fps / 16000) video frames, so
  the last, partial frame period still gets a frame and no speech is dropped.
* `mel_windows`: video frame i shows time t_i = i / fps. Its window is centred on mel frame
  c_i = floor(i * 100 / fps + 0.5) and covers the `MEL_WINDOW` = 16 mel frames c_i - 8 .. c_i + 7
  (160 ms; window row 8 is frame c_i itself). Mel frames outside 0 .. F - 1 read as `LOG_MEL_FLOOR`
  = log(LOG_FLOOR) = -11.51, the value of digital silence, so the output has exactly the requested
  number of video frames even when the audio is a little shorter or longer than the video.

Example: 3.0 s of speech -> 48000 samples -> F = 301 mel frames -> T = 75 video frames at 25 fps ->
`audio_features` returns [75, 16, 80]; window 0 covers mel frames -8 .. 7 (rows 0..7 are padding)
and window 74 covers mel frames 288 .. 303 (rows 13..15 are padding).
"""

import math
import os
import pathlib
import struct
import tempfile
import threading
from typing import Iterator

import av
import librosa
import numpy as np
import soundfile
import soxr

from emotalk_jax.errors import InputError

SAMPLE_RATE = 16000  # Hz.
N_FFT = 512  # Samples (32 ms); the next power of two above WIN_LENGTH.
WIN_LENGTH = 400  # Samples (25 ms).
HOP_LENGTH = 160  # Samples (10 ms): 100 mel frames per second.
N_MELS = 80
# 55 Hz sits below the lowest male F0; 7600 Hz stays under Nyquist (8 kHz) where resampling filters
# roll off.
FMIN = 55.0
FMAX = 7600.0
LOG_FLOOR = 1e-5  # Floor on mel power before the log.
LOG_MEL_FLOOR = np.float32(np.log(LOG_FLOOR))  # -11.51: log-mel of silence, and the padding value.
FPS = 25  # Video frames per second the model is trained at.
MEL_WINDOW = 16  # Mel frames per video frame window (160 ms).
MEL_FPS = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames per second.
MIN_SAMPLES = SAMPLE_RATE // FPS  # 640: one video frame of audio; anything shorter is not speech.
# Peak |x| below this (-80 dBFS, about 3 LSB of 16-bit audio) is digital silence, not quiet speech.
SILENCE_PEAK = 1e-4

_SOUNDFILE_ERRORS = (soundfile.LibsndfileError, RuntimeError, TypeError)


def check_file(path) -> pathlib.Path:
  """Checks that `path` names a non-empty, readable regular file; raises InputError otherwise."""
  p = pathlib.Path(os.fspath(path)).expanduser()
  if not p.exists():
    raise InputError(path, "no such file")
  if p.is_dir():
    raise InputError(path, "is a directory, not a file")
  if not p.is_file():
    raise InputError(path, "is not a regular file")
  try:
    size = p.stat().st_size
    with open(p, "rb"):
      pass
  except OSError as e:
    raise InputError(path, f"cannot be read ({e.strerror or e})") from None
  if size == 0:
    raise InputError(path, "is empty (0 bytes)")
  return p


# Samples per block read from libsndfile (about 4 s at 16 kHz).
_BLOCK = 65536


def _check_wav_length(path, p: pathlib.Path) -> None:
  """Raises InputError when a RIFF WAV file holds less audio than its header declares (a copy or
  recording cut short): libsndfile then reads what is there without a word.

  A declared length of 0 or 0xFFFFFFFF (what recorders write while the length is unknown) is
  not checked.
  """
  with open(p, "rb") as f:
    if f.read(4) != b"RIFF" or not f.read(4) or f.read(4) != b"WAVE":
      return
    bytes_per_second = None
    while True:
      header = f.read(8)
      if len(header) < 8:
        return
      name, size = header[:4], struct.unpack("<I", header[4:])[0]
      if name == b"fmt " and size >= 12:
        bytes_per_second = struct.unpack("<I", f.read(12)[8:12])[0]
        size -= 12
      elif name == b"data":
        break
      f.seek(size + size % 2, os.SEEK_CUR)  # Chunks are padded to an even size.
    present = os.fstat(f.fileno()).st_size - f.tell()
  if size in (0, 0xFFFFFFFF) or present >= size:
    return
  if bytes_per_second:
    held = f"{present / bytes_per_second:.2f} s of the {size / bytes_per_second:.2f} s"
  else:
    held = f"{present} of the {size} bytes"
  raise InputError(path, f"is truncated: it holds {held} of audio its header declares")


def _soundfile_chunks(path, p: pathlib.Path):
  """(rate, [n] float32 mono block) pairs, or None when libsndfile does not know the format."""
  try:
    file = soundfile.SoundFile(str(p))
  except _SOUNDFILE_ERRORS:
    return None
  if file.format in ("WAV", "WAVEX"):
    try:
      _check_wav_length(path, p)
    except InputError:
      file.close()
      raise

  def blocks():
    with file:
      while True:
        try:
          block = file.read(_BLOCK, dtype="float32", always_2d=True)
        except _SOUNDFILE_ERRORS as e:
          raise InputError(path, f"cannot be read to the end (corrupt or truncated?): {e}"
                          ) from None
        if not block.shape[0]:
          return
        yield file.samplerate, block.mean(axis=1, dtype=np.float32)

  return blocks()


def _av_chunks(path, p: pathlib.Path):
  """(rate, [n] float32 mono chunk) pairs of the first audio stream, or None when the file has no
  audio stream."""
  try:
    container = av.open(str(p))
  except (av.error.InvalidDataError, av.error.EOFError):
    raise InputError(
        path, "is not a readable audio or video file (unknown format, or corrupt/truncated data)"
    ) from None
  except (av.FFmpegError, OSError) as e:
    raise InputError(path, f"cannot be opened as media ({e.strerror or e})") from None
  if not container.streams.audio:
    container.close()
    return None

  def chunks():
    stream = container.streams.audio[0]
    resampler = None
    with container:
      try:
        for packet in container.demux(stream):
          try:
            frames = packet.decode()
          except av.error.InvalidDataError:
            continue  # A damaged packet: skip it, as the ffmpeg tool does.
          for frame in frames:
            if resampler is None:
              # Planar float at the native rate and channels: mixing down and resampling are
              # done by `_resampled`, so every input goes through the same soxr path.
              resampler = av.AudioResampler(format="fltp", layout=frame.layout.name,
                                            rate=frame.sample_rate)
            for out in resampler.resample(frame):
              yield out.sample_rate, out.to_ndarray().mean(axis=0, dtype=np.float32)
        for out in resampler.resample(None) if resampler is not None else ():
          yield out.sample_rate, out.to_ndarray().mean(axis=0, dtype=np.float32)
      except av.FFmpegError as e:
        problem = f"audio stream cannot be read (corrupt or truncated file?): {e.strerror or e}"
        raise InputError(path, problem) from None

  return chunks()


def _resampled(chunks) -> Iterator[np.ndarray]:
  """(rate, [n] float32) chunks -> the same audio at SAMPLE_RATE, a chunk at a time: soxr's high
  quality, equal to the bit to resampling the whole signal at once (librosa's `soxr_hq`, whose
  length ceil(N * 16000 / rate) it keeps)."""
  stream, rate, heard, written = None, SAMPLE_RATE, 0, 0
  for rate, chunk in chunks:
    if rate == SAMPLE_RATE:
      yield chunk
      continue
    stream = stream or soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    heard += chunk.size
    out = stream.resample_chunk(chunk)
    written += out.size
    yield out
  if stream is not None:
    tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
    missing = math.ceil(heard * SAMPLE_RATE / rate) - written
    yield np.pad(tail[:max(0, missing)], (0, max(0, missing - tail.size)))


def _decoded(path):
  """The first audio track of `path` as [n] float32 mono chunks at 16 kHz, or None when the file
  decodes but has no audio stream. wav/flac/ogg (recognised by content, whatever the extension) go
  through libsndfile; everything else (mp3, m4a/aac, a video's audio track) through PyAV."""
  p = check_file(path)
  chunks = _soundfile_chunks(path, p) or _av_chunks(path, p)
  return None if chunks is None else _resampled(chunks)


def decode_audio(path) -> np.ndarray | None:
  """Decodes the first audio track of any media file to [N] float32 mono at 16 kHz, without content
  checks (see `_decoded`). Returns None when the file decodes but has no audio stream (a silent
  video). Raises InputError for a missing, empty or undecodable file.
  """
  chunks = _decoded(path)
  if chunks is None:
    return None
  return np.concatenate([np.zeros(0, np.float32), *chunks])


class SpooledWave:
  """[N] float32 mono speech at 16 kHz kept in an unnamed temporary file instead of memory, read a
  span at a time: `wave[a:b]` -> [b - a] float32 (from any thread), `len(wave)`, `wave.size`,
  `wave.peak` (max |x|). Generation reads its speech this way, so its memory does not grow
  with the length of the speech. Close it (or use it as a context manager) to free the file.
  """

  ndim = 1

  def __init__(self, chunks):
    self._file = tempfile.TemporaryFile()
    self._lock = threading.Lock()  # A read never meets a closed (or reused) file descriptor.
    self.size, self.peak = 0, 0.0
    try:
      for chunk in chunks:
        chunk = np.asarray(chunk, np.float32)
        self._file.write(chunk.tobytes())
        self.size += chunk.size
        self.peak = float(np.max(np.abs(chunk), initial=self.peak))  # NaN stays NaN.
      self._file.flush()
    except BaseException:
      self.close()
      raise

  @property
  def shape(self) -> tuple[int]:
    return (self.size,)

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, span: slice) -> np.ndarray:
    if not isinstance(span, slice) or span.step not in (None, 1):
      raise TypeError(f"a SpooledWave is read by spans wave[a:b], not [{span!r}]")
    start, stop, _ = span.indices(self.size)
    with self._lock:
      if self._file.closed:
        raise ValueError("the speech was read after its SpooledWave was closed")
      data = os.pread(self._file.fileno(), max(0, stop - start) * 4, start * 4)
    return np.frombuffer(data, np.float32)

  def close(self) -> None:
    with self._lock:
      self._file.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _check_speech(path, size: int, peak: float, allow_silent: bool) -> None:
  """Raises InputError unless `size` samples with peak |x| `peak` are speech (see `load_audio`)."""
  if size < MIN_SAMPLES:
    raise InputError(
        path,
        f"is too short: {size / SAMPLE_RATE * 1000:.1f} ms of audio, need at least "
        f"{MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms (one video frame at {FPS} fps)",
    )
  if not allow_silent and not peak >= SILENCE_PEAK:  # Also catches NaN.
    level = f"{20 * math.log10(peak):.1f} dBFS" if peak > 0 else "-inf dBFS (all zeros)"
    threshold = 20 * math.log10(SILENCE_PEAK)
    raise InputError(path, f"is silent (peak level {level}, below {threshold:.0f} dBFS); give a "
                     "file with speech")


_NO_AUDIO = "has no audio stream (a silent video?); give a file with speech"


def load_audio(path, allow_silent: bool = False) -> np.ndarray:
  """Loads speech as [N] float32 mono at 16 kHz from any audio or video file.

  Args:
    path: wav, flac, ogg, mp3, m4a, mov, mp4, ... (format detected from the content).
    allow_silent: accept digital silence (peak below -80 dBFS) instead of raising.

  Raises:
    InputError: missing, empty or undecodable file; no audio stream; shorter than one video frame
      (40 ms); silent (unless allow_silent).
  """
  wave = decode_audio(path)
  if wave is None:
    raise InputError(path, _NO_AUDIO)
  _check_speech(path, wave.size, float(np.max(np.abs(wave), initial=0.0)), allow_silent)
  return wave


def spool_audio(path) -> SpooledWave:
  """`load_audio` into a `SpooledWave`: the speech is decoded, resampled and checked a chunk at a
  time, so memory stays the same for any length. Raises InputError as `load_audio` does."""
  chunks = _decoded(path)
  if chunks is None:
    raise InputError(path, _NO_AUDIO)
  wave = SpooledWave(chunks)
  try:
    _check_speech(path, wave.size, wave.peak, allow_silent=False)
  except InputError:
    wave.close()
    raise
  return wave


def _as_wave(wave) -> np.ndarray:
  wave = np.asarray(wave, np.float32)
  if wave.ndim != 1:
    raise ValueError(f"expected a mono waveform of shape [N], got shape {wave.shape}")
  return wave


def log_mel(wave) -> np.ndarray:
  """[N] float32 at 16 kHz -> [F, 80] float32 natural-log mel power, F = 1 + N // 160."""
  wave = _as_wave(wave)
  power = librosa.feature.melspectrogram(
      y=wave,
      sr=SAMPLE_RATE,
      n_fft=N_FFT,
      hop_length=HOP_LENGTH,
      win_length=WIN_LENGTH,
      window="hann",
      center=True,
      pad_mode="constant",  # Zero padding: the edges read as silence, not as mirrored speech.
      power=2.0,
      n_mels=N_MELS,
      fmin=FMIN,
      fmax=FMAX,
  )  # [80, F]
  return np.log(np.maximum(power, LOG_FLOOR)).T.astype(np.float32)


def num_video_frames(num_samples: int, fps: float = FPS) -> int:
  """T = ceil(N * fps / 16000): video frames covering N samples, the last partial frame period
  included."""
  if not fps > 0:
    raise ValueError(f"fps must be positive, got {fps}")
  # Rounding first keeps float noise (e.g. 29.97 fps) from adding a frame to an exact multiple.
  return int(math.ceil(round(int(num_samples) * float(fps) / SAMPLE_RATE, 6)))


def window_centres(num_frames: int, fps: float = FPS, first_frame: int = 0) -> np.ndarray:
  """[T] int: c_i = floor(i * 100 / fps + 0.5), the mel frame at video frame i's time i / fps, for
  i = first_frame .. first_frame + T - 1 (negative frames lie before the audio starts)."""
  if not fps > 0:
    raise ValueError(f"fps must be positive, got {fps}")
  frames = np.arange(int(first_frame), int(first_frame) + int(num_frames))
  return np.floor(frames * (MEL_FPS / float(fps)) + 0.5).astype(np.int64)


def mel_windows(mel,
                num_frames: int,
                fps: float = FPS,
                window: int = MEL_WINDOW,
                first_frame: int = 0) -> np.ndarray:
  """Cuts one mel window per video frame.

  Args:
    mel: [F, M] log-mel frames at 100 per second (from `log_mel`).
    num_frames: T, the number of video frames to cover (the output has exactly T windows).
    fps: video frame rate.
    window: W, mel frames per window.
    first_frame: the video frame of the first window (windows of frames before 0 or past the audio
      read as silence), so a long clip can be cut a piece at a time.

  Returns:
    [T, W, M] float32; window i holds mel frames c_i - W // 2 .. c_i + W - W // 2 - 1 with
    c_i = floor(i * 100 / fps + 0.5); frames outside the clip read as LOG_MEL_FLOOR = log(1e-5).
  """
  mel = np.asarray(mel, np.float32)
  if mel.ndim != 2:
    raise ValueError(f"expected mel of shape [F, n_mels], got shape {mel.shape}")
  if window <= 0 or num_frames < 0:
    raise ValueError(
        f"window must be positive and num_frames non-negative, got {window}, {num_frames}")
  num_mel = mel.shape[0]
  # One extra row of silence at index F: every out-of-range index is sent there.
  padded = np.concatenate([mel, np.full([1, mel.shape[1]], LOG_MEL_FLOOR, np.float32)])
  idx = window_centres(num_frames, fps, first_frame)[:, None] + np.arange(
      -(window // 2), window - window // 2)[None, :]
  idx = np.where((idx >= 0) & (idx < num_mel), idx, num_mel)
  return padded[idx]


def audio_features(path_or_wave, num_frames: int | None = None, fps: float = FPS) -> np.ndarray:
  """A speech file or [N] 16 kHz waveform -> [T, MEL_WINDOW, N_MELS] float32 mel windows.

  T is `num_frames` when given (e.g. the length of a driving video), else `num_video_frames(N,
  fps)`.
  """
  if isinstance(path_or_wave, (str, os.PathLike)):
    wave = load_audio(path_or_wave)
  else:
    wave = _as_wave(path_or_wave)
  if num_frames is None:
    num_frames = num_video_frames(wave.size, fps)
  return mel_windows(log_mel(wave), num_frames, fps)

"""Whisper's speech encoder (Radford et al. 2022) in Flax, as stage 1's speech-content feature.

Only the encoder of the recogniser is used: its output is a 50 Hz sequence of vectors, learnt
for transcription on a large speech corpus, that describe what is being said (the content a
lip motion model needs), largely independent of who says it and how loud.

Data flow for one 30 s window (D = width, L = layers):

  wave [N] float32, 16 kHz
  mel = log_mel(wave, 3000)                              [3000, 80]   100 frames/s
  x = gelu(conv1(mel)); x = gelu(conv2(x)) (stride 2)    [1500, D]    50 frames/s
  x = x + sinusoids(1500, D)
  x = L pre-LayerNorm transformer blocks (x)             [1500, D]
  x = layer_norm(x)                                      [1500, D]

`speech_features` runs any length of audio through overlapping 30 s windows (one at a time)
and returns one vector per 25 fps video frame. Weights come from
`emotalk_jax.models.whisper_weights.load_encoder` (nothing is downloaded).
"""

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emotalk_jax import cache
from emotalk_jax.media import audio

SAMPLE_RATE = 16000  # Hz.
N_FFT = 400  # Samples (25 ms): Whisper's window and FFT size.
HOP_LENGTH = 160  # Samples (10 ms): 100 mel frames per second.
N_MELS = 80
LOG_FLOOR = 1e-10  # Floor on mel power before log10.
DYNAMIC_RANGE = 8.0  # log10 units (80 dB) kept below the loudest bin; quieter bins are clamped.
WINDOW_FRAMES = 3000  # Mel frames in one 30 s encoder window.
FPS = 25  # Video frames per second of `speech_features`.
MEL_PER_VIDEO_FRAME = SAMPLE_RATE // HOP_LENGTH // FPS  # 4 mel frames, 2 encoder frames.
# Windows of 30 s start every 20 s; neighbours are cross-faded over 5 s in their 10 s overlap.
WINDOW_HOP_FRAMES = 2000  # Mel frames (20 s).
FADE_FRAMES = 125  # Video frames (5 s) of the linear cross-fade.
FADE_CENTER_FRAMES = 125  # Video frames (5 s) from the later window's start to the fade's centre.
# Frames per STFT block: the complex spectrum (1.6 MB) and its temporaries stay small, so the speech
# encoder's windows do not leave holes in the heap that rendering then has to grow around.
_STFT_CHUNK = 500


@dataclasses.dataclass(frozen=True)
class WhisperConfig:
  """Dimensions of a Whisper encoder.

  Attributes:
    n_mels: mel bins of the input.
    n_ctx: encoder frames in one window (1500 = 30 s at 50 Hz).
    width: channels D of every encoder frame.
    heads: attention heads (Whisper's head size is always 64).
    layers: transformer blocks.
  """
  n_mels: int = 80
  n_ctx: int = 1500
  width: int = 384
  heads: int = 6
  layers: int = 4


TINY_EN = WhisperConfig(width=384, heads=6, layers=4)
BASE = WhisperConfig(width=512, heads=8, layers=6)


# ---------------------------------------------------------------------------------------------
# Log-mel front end (numpy).


def _hz_to_slaney_mel(hz):
  """Slaney's mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
  hz = np.asarray(hz, np.float64)
  log_step = np.log(6.4) / 27.0
  return np.where(hz < 1000.0, hz * 3.0 / 200.0,
                  15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / log_step)


def _slaney_mel_to_hz(mel):
  mel = np.asarray(mel, np.float64)
  log_step = np.log(6.4) / 27.0
  return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(log_step * (mel - 15.0)))


@functools.lru_cache(maxsize=None)
def mel_filters(n_mels: int = N_MELS) -> np.ndarray:
  """Slaney-normalised mel filterbank from 0 Hz to Nyquist, [n_mels, N_FFT // 2 + 1] float32 (the
  filterbank Whisper's front end uses, librosa's default; computed here because importing
  librosa's filters costs about a second at start-up)."""
  fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
  edges_hz = _slaney_mel_to_hz(np.linspace(0.0, _hz_to_slaney_mel(SAMPLE_RATE / 2), n_mels + 2))
  lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
  rising = (fft_hz - lower) / (centre - lower)
  falling = (upper - fft_hz) / (upper - centre)
  triangles = np.maximum(0.0, np.minimum(rising, falling))
  # Slaney normalisation: each filter has unit area in Hz.
  return (triangles * (2.0 / (upper - lower))).astype(np.float32)


def _hann_periodic(n: int) -> np.ndarray:
  """Periodic Hann window of n samples (the DFT-even one torch.hann_window gives)."""
  return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def _as_wave(wave) -> np.ndarray:
  wave = np.asarray(wave, dtype=np.float32)
  if wave.ndim != 1:
    raise ValueError(f"expected mono audio [N], got shape {wave.shape}")
  return wave


def mel_power(wave, n_mels: int = N_MELS) -> np.ndarray:
  """Mel power spectrogram with Whisper's STFT conventions.

  Frames are centred (the signal is reflect-padded by N_FFT // 2 on both sides) and the last
  frame is dropped, so N samples give N // 160 frames; frame j is centred on sample 160 j.

  Args:
    wave: [N] float32 mono audio at 16 kHz, N > 200.

  Returns:
    [N // 160, n_mels] float32 mel power (squared magnitude, Slaney filterbank).
  """
  wave = _as_wave(wave)
  return _padded_mel_power(np.pad(wave, N_FFT // 2, mode="reflect"), len(wave) // HOP_LENGTH,
                           n_mels)


def _padded_mel_power(padded, num_frames: int, n_mels: int) -> np.ndarray:
  """[num_frames, n_mels] mel power of the frames starting every 160 samples of `padded`."""
  frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:num_frames]
  window = _hann_periodic(N_FFT)
  filters = mel_filters(n_mels)
  out = np.empty((num_frames, n_mels), np.float32)
  for start in range(0, num_frames, _STFT_CHUNK):
    spectrum = np.fft.rfft(frames[start:start + _STFT_CHUNK] * window, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    out[start:start + _STFT_CHUNK] = power @ filters.T
  return out


def _normalised(power) -> np.ndarray:
  """Mel power -> Whisper's log-mel (see `log_mel`), clamped against the maximum of `power`."""
  log_spec = np.log10(np.maximum(power, LOG_FLOOR))
  log_spec = np.maximum(log_spec, log_spec.max(initial=-np.inf) - DYNAMIC_RANGE)
  return ((log_spec + 4.0) / 4.0).astype(np.float32)


def log_mel(wave, num_frames: int | None = None, n_mels: int = N_MELS) -> np.ndarray:
  """Whisper's normalised log-mel spectrogram.

  log10(max(power, 1e-10)), clamped from below at (its maximum - 8), then (x + 4) / 4, which
  puts speech roughly in [-1, 1.5].

  Args:
    wave: [N] float32 mono audio at 16 kHz.
    num_frames: if given, the audio is zero-padded (or cut) to num_frames * 160 samples first,
      as Whisper's `pad_or_trim` does (num_frames = 3000 for one 30 s window).
    n_mels: mel bins.

  Returns:
    [num_frames or N // 160, n_mels] float32.
  """
  wave = _as_wave(wave)
  if num_frames is not None:
    samples = num_frames * HOP_LENGTH
    wave = np.pad(wave[:samples], (0, max(0, samples - len(wave))))
  if len(wave) <= N_FFT // 2:  # The reflect padding needs more than N_FFT / 2 samples.
    wave = np.pad(wave, (0, N_FFT // 2 + 1 - len(wave)))
  return _normalised(mel_power(wave, n_mels))


def window_log_mel(wave, start: int, total: int, n_mels: int = N_MELS) -> np.ndarray:
  """`log_mel(wave, total)[start:start + 3000]` reading only the samples those frames need, clamped
  against the window's own loudest bin: what the encoder sees of a 30 s clip on its own.

  Args:
    wave: [N] float32 mono audio at 16 kHz: an array or anything read by spans
      (`media.audio.SpooledWave`).
    start: first mel frame of the window.
    total: mel frames of the whole clip (zero-padded to total * 160 samples, as `log_mel`
      pads), start + 3000 <= total.

  Returns:
    [3000, n_mels] float32.
  """
  end, half = total * HOP_LENGTH, N_FFT // 2
  lo, hi = start * HOP_LENGTH - half, (start + WINDOW_FRAMES) * HOP_LENGTH + half
  a, b = max(lo, 0), min(hi, end)
  core = np.asarray(wave[a:min(b, len(wave))], np.float32)
  core = np.pad(core, (0, b - a - core.size))  # Past the audio: the zero padding.
  # At the clip's two ends the STFT's padding reflects the samples next to the end.
  padded = np.concatenate(
      [core[1:1 + a - lo][::-1], core, core[len(core) - 1 - (hi - b):-1][::-1]])
  return _normalised(_padded_mel_power(padded, WINDOW_FRAMES, n_mels))


# ---------------------------------------------------------------------------------------------
# The encoder (Flax Linen).


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
  """Whisper's positional embedding, [length, channels] float32: sines, then cosines.

  Timescales are geometric from 1 to max_timescale over the channels // 2 pairs.
  """
  if channels % 2:
    raise ValueError(f"channels must be even, got {channels}")
  half = channels // 2
  increment = math.log(max_timescale) / (half - 1)
  inv_timescales = np.exp(-increment * np.arange(half, dtype=np.float64))
  angle = np.arange(length, dtype=np.float64)[:, None] * inv_timescales[None, :]
  return np.concatenate([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)


def _gelu(x: jax.Array) -> jax.Array:
  return nn.gelu(x, approximate=False)  # Whisper uses the exact (erf) GELU.


# Queries per block of `SelfAttention`.
ATTENTION_QUERY_BLOCK = 300


class SelfAttention(nn.Module):
  """Multi-head self-attention with biases on query, value and output, none on key.

  Attributes:
    width: channels D.
    heads: H; D must be a multiple of H.
  """
  width: int
  heads: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, T, D] -> [B, T, D]."""
    batch, length, _ = x.shape
    head_size = self.width // self.heads

    def split(y):
      return y.reshape(batch, length, self.heads, head_size)

    # Heads first ([B, H, T, C]): each head's logits are one contiguous matrix product, and the
    # softmax divides the [Q, C] output, not the [Q, T] weights (a third less time a window).
    q = jnp.swapaxes(split(nn.Dense(self.width, name="query")(x)), 1, 2) / math.sqrt(head_size)
    k = jnp.swapaxes(split(nn.Dense(self.width, use_bias=False, name="key")(x)), 1, 2)
    v = jnp.swapaxes(split(nn.Dense(self.width, name="value")(x)), 1, 2)
    # A block of queries at a time (`lax.map`: one after the other): the [B, H, T, T] logits and
    # weights of the whole window (2 x 54 MB at T = 1500) made the encoder the largest memory peak
    # of generation. XLA's temporary memory for one window: 164 MB whole, 78 MB in blocks of 300
    # written as a Python loop (XLA held several at once), 40 MB with `lax.map` (28 MB heads first).
    num_blocks = max(1, length // ATTENTION_QUERY_BLOCK)
    if length % num_blocks:
      num_blocks = 1
    blocks = jnp.moveaxis(q.reshape(batch, self.heads, num_blocks, length // num_blocks,
                                    head_size), 2, 0)

    def attend(block):  # [B, H, Q, C] -> [B, H, Q, C]
      logits = jnp.einsum("bhqc,bhkc->bhqk", block, k)
      weights = jnp.exp(logits - logits.max(axis=-1, keepdims=True))
      return jnp.einsum("bhqk,bhkc->bhqc", weights, v) / weights.sum(axis=-1, keepdims=True)

    y = jnp.moveaxis(jax.lax.map(attend, blocks), 0, 2)  # [B, H, blocks, Q, C]
    y = jnp.swapaxes(y.reshape(batch, self.heads, length, head_size), 1, 2)
    y = y.reshape(batch, length, self.width)
    return nn.Dense(self.width, name="out")(y)


class EncoderBlock(nn.Module):
  """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x)), MLP width 4 D.

  Attributes:
    width: channels D.
    heads: attention heads.
  """
  width: int
  heads: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, T, D] -> [B, T, D]."""
    x = x + SelfAttention(self.width, self.heads, name="attn")(
        nn.LayerNorm(epsilon=1e-5, name="attn_ln")(x))
    h = nn.LayerNorm(epsilon=1e-5, name="mlp_ln")(x)
    h = _gelu(nn.Dense(4 * self.width, name="mlp_in")(h))
    return x + nn.Dense(self.width, name="mlp_out")(h)


class WhisperEncoder(nn.Module):
  """Whisper's audio encoder.

  Params (a plain pytree; kernels in Flax layout [..., in, out]):
    conv1 {kernel [3, n_mels, D], bias [D]}, conv2 {kernel [3, D, D], bias [D]},
    block_{i} {attn_ln, attn {query, key (no bias), value, out}, mlp_ln, mlp_in, mlp_out},
    ln_post {scale [D], bias [D]}.

  Attributes:
    config: the encoder's dimensions.
  """
  config: WhisperConfig = TINY_EN

  @nn.compact
  def __call__(self, mel: jax.Array) -> jax.Array:
    """mel [B, F, n_mels] (normalised log-mel, F <= 2 n_ctx, even) -> [B, F / 2, D] float32.

    Whisper itself always uses F = 3000 (30 s); shorter inputs run but were never trained on.
    """
    cfg = self.config
    if mel.shape[-1] != cfg.n_mels or mel.shape[1] > 2 * cfg.n_ctx:
      raise ValueError(f"mel must be [B, <= {2 * cfg.n_ctx}, {cfg.n_mels}], got {mel.shape}")
    x = _gelu(nn.Conv(cfg.width, (3,), padding=((1, 1),), name="conv1")(mel))
    x = _gelu(nn.Conv(cfg.width, (3,), strides=(2,), padding=((1, 1),), name="conv2")(x))
    x = x + jnp.asarray(sinusoids(cfg.n_ctx, cfg.width)[:x.shape[1]])
    for i in range(cfg.layers):
      x = EncoderBlock(cfg.width, cfg.heads, name=f"block_{i}")(x)
    return nn.LayerNorm(epsilon=1e-5, name="ln_post")(x)


def _encode(config: WhisperConfig, params, mel):
  return WhisperEncoder(config).apply({"params": params}, mel)


def encode(mel, params, config: WhisperConfig = TINY_EN) -> np.ndarray:
  """Runs the encoder on mel windows.

  Args:
    mel: [B, 3000, n_mels] (or [3000, n_mels]) normalised log-mel from `log_mel`.
    params: encoder params (from `whisper_weights.load_encoder`).
    config: the matching dimensions.

  Returns:
    [B, 1500, D] (or [1500, D]) float32 encoder frames at 50 Hz.
  """
  mel = np.asarray(mel, np.float32)
  single = mel.ndim == 2
  mel = mel[None] if single else mel
  # Compiled once per config and mel shape (its trace kept in the user cache folder).
  fn = cache.compiled(f"whisper {config}", functools.partial(_encode, config), params, mel)
  out = np.asarray(fn(params, mel))
  return out[0] if single else out


def window_starts(num_video_frames: int) -> list[int]:
  """Start (in mel frames) of each 30 s window that covers num_video_frames at 25 fps."""
  needed = num_video_frames * MEL_PER_VIDEO_FRAME
  if needed <= WINDOW_FRAMES:
    return [0]
  extra = -(-(needed - WINDOW_FRAMES) // WINDOW_HOP_FRAMES)
  return [k * WINDOW_HOP_FRAMES for k in range(extra + 1)]


def _window_weights(k: int, num_windows: int, length: int) -> np.ndarray:
  """Blend weight [length] of window k over its first `length` video frames.

  Inside the overlap of windows k and k + 1, the weight passes linearly from one to the other
  over FADE_FRAMES centred FADE_CENTER_FRAMES after window k + 1's start; weights of all windows
  sum to 1 on every frame.
  """
  frames = np.arange(length) + 0.5  # Frame centres, relative to window k's start.
  weight = np.ones(length, np.float32)
  hop = WINDOW_HOP_FRAMES // MEL_PER_VIDEO_FRAME
  rise_start = FADE_CENTER_FRAMES - FADE_FRAMES / 2
  if k > 0:
    weight *= np.clip((frames - rise_start) / FADE_FRAMES, 0.0, 1.0)
  if k < num_windows - 1:
    weight *= np.clip(1.0 - (frames - hop - rise_start) / FADE_FRAMES, 0.0, 1.0)
  return weight


def speech_features(wave_16k, params, config: WhisperConfig = TINY_EN) -> np.ndarray:
  """Whisper encoder features, one vector per 25 fps video frame, for audio of any length.

  The audio is cut into 30 s windows that start every 20 s; each window's log-mel is computed
  from its own samples (its -8 clamp relative to its own loudest bin, as for a 30 s clip on its
  own) and encoded, one window at a time, so memory does not grow with the clip's length beyond
  the output (and the speech, unless it is a `media.audio.SpooledWave`).

  Whisper's features depend on where in its window a sound falls (a few channels, e.g. 334 and
  381 of tiny.en, run from about +7 to -9 across every window), so two windows disagree on the
  same audio and a hard switch between them would jump. Neighbouring windows are therefore
  cross-faded linearly over 5 s centred 25 s into the earlier one (22.5 s to 27.5 s after its
  start); every frame used is at least 2.5 s from its window's edges, and up to 22.5 s the
  result equals that of the first window alone, i.e. of the first 30 s of the clip on their own.

  Video frame i (40 ms from 40 i ms) is the mean of encoder frames 2 i and 2 i + 1 (centred on
  40 i and 40 i + 20 ms). Audio past the last video frame is zero-padded.

  Args:
    wave_16k: [N] float32 mono audio at 16 kHz, or a `media.audio.SpooledWave`.
    params: encoder params (from `whisper_weights.load_encoder`).
    config: the matching dimensions (n_ctx must be 1500).

  Returns:
    [T, D] float32 with T = ceil(N / 640) = ceil(seconds * 25).
  """
  return np.concatenate([block for block, _ in speech_feature_blocks(wave_16k, params, config)])


def speech_feature_blocks(wave_16k, params, config: WhisperConfig = TINY_EN):
  """`speech_features` one window at a time, for work that starts on the first frames while the
  rest of a long clip is encoded; only the frames still to be blended with the next window are
  kept (memory does not grow with the clip's length).

  Yields:
    (features, ready): [n, D] features of the frames that became final with this window, frames
    ready - n .. ready - 1 (later windows change only frames from `ready` on). The blocks follow
    each other; the last one ends at T.
  """
  wave = wave_16k if isinstance(wave_16k, audio.SpooledWave) else _as_wave(wave_16k)
  if config.n_ctx * 2 != WINDOW_FRAMES:
    raise ValueError(f"speech_features needs n_ctx = {WINDOW_FRAMES // 2}, got {config.n_ctx}")
  samples_per_frame = SAMPLE_RATE // FPS
  num_video = -(-len(wave) // samples_per_frame)
  if num_video == 0:
    yield np.zeros((0, config.width), np.float32), 0
    return
  starts = window_starts(num_video)
  per_window = WINDOW_FRAMES // MEL_PER_VIDEO_FRAME  # 750 video frames.
  hop = WINDOW_HOP_FRAMES // MEL_PER_VIDEO_FRAME
  # Frames `ready` on that earlier windows have weighed in on, and how much.
  ready, pending = 0, np.zeros((0, config.width), np.float32)
  for k, start in enumerate(starts):
    mel = window_log_mel(wave, start, starts[-1] + WINDOW_FRAMES, config.n_mels)
    features = encode(mel, params, config)  # [1500, D]
    video = features.reshape(per_window, 2, config.width).mean(axis=1)
    first = start // MEL_PER_VIDEO_FRAME
    length = min(per_window, num_video - first)
    # Window k's weight is 0 before the frames earlier windows left pending: it starts there.
    blended = (_window_weights(k, len(starts), length)[:, None] * video[:length])[ready - first:]
    blended[:len(pending)] += pending
    # The next window weighs in from its fade's first frame on (see `_window_weights`).
    last = k == len(starts) - 1
    final = num_video if last else first + hop + int(FADE_CENTER_FRAMES - FADE_FRAMES / 2)
    yield blended[:final - ready], final
    ready, pending = final, blended[final - ready:]

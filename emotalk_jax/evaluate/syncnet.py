"""SyncNet (Chung & Zisserman, ACCV 2016 workshops) in Flax, its weight file format, and LSE-C /
LSE-D.

LSE-D and LSE-C (Prajwal et al., Wav2Lip 2020) score lip sync with SyncNet's audio and lip
embeddings. No
weights ship here: give the standard ones (syncnet_python's `syncnet_v2.model`) converted to our
  format.

**Weight file format.** An `.npz` of plain float arrays (read with `allow_pickle=False`), one per
tensor of syncnet_python's model `S`, named and shaped exactly as in its PyTorch `state_dict`:
`netcnnaud.0.weight` [64, 1, 3, 3], `netcnnaud.1.running_mean` [64], ..., `netcnnlip.0.weight` [96,
3, 5, 7, 7], ..., `netfcaud.3.weight` [1024, 512] (convolutions [out, in, *kernel], linear layers
[out, in], batch norms `weight`, `bias`, `running_mean`, `running_var`; `num_batches_tracked`
entries are ignored). In a PyTorch environment, `np.savez(out, **{k: v.numpy() for k, v in
state_dict.items()})` writes it. `load_params` checks every name and shape against the architecture
and raises InputError naming the first mismatch.

**Architecture** (`SyncNetConfig`: channel widths; the defaults are the standard model): audio, 13
  MFCC x 20
steps (0.2 s): conv3x3 64, conv3x3 192, maxpool 3x3 /(1, 2), conv3x3 384, 256, 256, maxpool 3x3 /2,
  conv 5x4
512, then FC 512 -> 1024. Lips, 5 frames of 224x224 BGR: conv3d 5x7x7 96 /(1, 2, 2), maxpool /2,
conv 1x5x5 256 /2, maxpool /2, conv 1x3x3 256 x3, maxpool /2, conv 1x6x6 512, then FC 512 -> 1024.
Every convolution is followed by batch norm (eps 1e-5, running statistics) and ReLU.

**Scoring** follows syncnet_python's `SyncNetInstance.evaluate`: MFCC by
`python_speech_features.mfcc` on the 16 kHz speech in 16-bit integer units; window v pairs video
frames v..v+4 with MFCC steps 4v..4v+19 for v = 0..min(T, N / 640) - 6; for every window the
distances to the audio embeddings of windows shifted by -15..+15 (zeros beyond the ends) are
averaged over windows into 31 mean distances; LSE-D is their minimum, LSE-C their median minus the
minimum, and the AV offset is 15 minus the index of the minimum (positive: the audio leads). The
face crops mimic syncnet_python's: a square 1.4 times the face box, shifted down by 0.2 box, resized
to 224x224, outside the frame filled with grey 110; our face box is dlib's (from the landmarks,
median-filtered over 13 frames as syncnet_python smooths its S3FD boxes), so values are close to,
not identical with, the S3FD pipeline's.
"""

import dataclasses

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import signal

from emotalk_jax.errors import InputError
from emotalk_jax.media import audio as audio_lib
from emotalk_jax.media import face

INPUT_SIZE = 224  # Face crop side, pixels.
WINDOW = 5  # Video frames per sample (0.2 s at 25 fps).
MFCC_PER_FRAME = 4  # 100 MFCC steps per second / 25 fps.
VSHIFT = 15  # Offsets searched either way, frames.
BN_EPS = 1e-5  # PyTorch's default.
FPS = 25
BATCH = 16
CROP_SCALE = 0.4  # syncnet_python's crop_scale.
BOX_SMOOTHING = 13  # Median filter length (frames) over the face boxes.
PAD_VALUE = 110  # Grey outside the frame, as syncnet_python pads.


@dataclasses.dataclass(frozen=True)
class SyncNetConfig:
  """Channel widths; the defaults are the standard SyncNet (syncnet_python's `S`)."""
  audio_channels: tuple = (64, 192, 384, 256, 256, 512)
  lip_channels: tuple = (96, 256, 256, 256, 256, 512)
  fc_hidden: int = 512
  embed_dim: int = 1024


# (torch index, kind, kernel, stride, padding) per layer; ("pool", window, stride, padding) for max
# pools.
_AUDIO_LAYERS = ((0, "conv", (3, 3), (1, 1), (1, 1)), (None, "pool", (1, 1), (1, 1), (0, 0)),
                 (4, "conv", (3, 3), (1, 1), (1, 1)), (None, "pool", (3, 3), (1, 2), (0, 0)),
                 (8, "conv", (3, 3), (1, 1), (1, 1)), (11, "conv", (3, 3), (1, 1), (1, 1)),
                 (14, "conv", (3, 3), (1, 1), (1, 1)), (None, "pool", (3, 3), (2, 2), (0, 0)),
                 (18, "conv", (5, 4), (1, 1), (0, 0)))
_LIP_LAYERS = ((0, "conv", (5, 7, 7), (1, 2, 2), (0, 0, 0)), (None, "pool", (1, 3, 3), (1, 2, 2),
                                                              (0, 0, 0)), (4, "conv", (1, 5, 5),
                                                                           (1, 2, 2), (0, 1, 1)),
               (None, "pool", (1, 3, 3), (1, 2, 2),
                (0, 1, 1)), (8, "conv", (1, 3, 3), (1, 1, 1),
                             (0, 1, 1)), (11, "conv", (1, 3, 3), (1, 1, 1),
                                          (0, 1, 1)), (14, "conv", (1, 3, 3), (1, 1, 1), (0, 1, 1)),
               (None, "pool", (1, 3, 3), (2, 2, 2), (0, 0, 0)), (18, "conv", (1, 6, 6), (1, 1, 1),
                                                                 (0, 0, 0)))


class _Tower(nn.Module):
  """Convolutions (each + batch norm + ReLU) and max pools, then FC-BN-ReLU-FC; named like
  PyTorch's."""
  prefix: str
  fc_prefix: str
  layers: tuple
  channels: tuple
  fc_hidden: int
  embed_dim: int

  @nn.compact
  def __call__(self, x):
    widths = iter(self.channels)
    for index, kind, window, stride, pad in self.layers:
      if kind == "pool":
        x = nn.max_pool(x, window, stride, padding=tuple((p, p) for p in pad))
        continue
      x = nn.Conv(next(widths), window, stride, padding=tuple((p, p) for p in pad),
                  name=f"{self.prefix}_{index}")(x)
      x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS,
                       name=f"{self.prefix}_{index + 1}")(x)
      x = nn.relu(x)
    x = x.reshape(x.shape[0], -1)
    x = nn.Dense(self.fc_hidden, name=f"{self.fc_prefix}_0")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name=f"{self.fc_prefix}_1")(x)
    x = nn.relu(x)
    return nn.Dense(self.embed_dim, name=f"{self.fc_prefix}_3")(x)


class SyncNet(nn.Module):
  """Audio and lip embeddings.

  `audio(mfcc)`: [B, 13, 20, 1] MFCC -> [B, embed_dim]; `lips(frames)`: [B, 5, 224, 224, 3] BGR
  0..255 -> [B, embed_dim].
  """
  config: SyncNetConfig = SyncNetConfig()

  def setup(self):
    c = self.config
    self.audio_tower = _Tower("netcnnaud", "netfcaud", _AUDIO_LAYERS, c.audio_channels, c.fc_hidden,
                              c.embed_dim)
    self.lip_tower = _Tower("netcnnlip", "netfclip", _LIP_LAYERS, c.lip_channels, c.fc_hidden,
                            c.embed_dim)

  def audio(self, mfcc):
    return self.audio_tower(mfcc)

  def lips(self, frames):
    return self.lip_tower(frames)

  def __call__(self, mfcc, frames):
    return self.audio(mfcc), self.lips(frames)


def init_variables(config: SyncNetConfig = SyncNetConfig(), seed: int = 0) -> dict:
  """Randomly initialised variables ({'params', 'batch_stats'}) of the right shapes."""
  model = SyncNet(config)
  mfcc = jnp.zeros((1, 13, MFCC_PER_FRAME * WINDOW, 1))
  frames = jnp.zeros((1, WINDOW, INPUT_SIZE, INPUT_SIZE, 3))
  return model.init(jax.random.PRNGKey(seed), mfcc, frames)


def _torch_to_flax(name: str, array: np.ndarray) -> np.ndarray:
  """PyTorch layout -> Flax layout for one tensor."""
  if name.endswith(".weight") and array.ndim >= 3:  # Conv [out, in, *k] -> [*k, in, out].
    return np.transpose(array, tuple(range(2, array.ndim)) + (1, 0))
  if name.endswith(".weight") and array.ndim == 2:  # Linear [out, in] -> [in, out].
    return array.T
  return array


def _torch_name(collection: str, module: str, leaf: str) -> str:
  """Flax variable path -> PyTorch state_dict name."""
  prefix, index = module.rsplit("_", 1)
  if collection == "batch_stats":
    return f"{prefix}.{index}.running_{'mean' if leaf == 'mean' else 'var'}"
  return f"{prefix}.{index}.{ {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias'}[leaf] }"


def expected_shapes(config: SyncNetConfig = SyncNetConfig()) -> dict:
  """PyTorch state_dict name -> shape (PyTorch layout) that a weight file for `config` must have."""
  shapes = jax.eval_shape(lambda: init_variables(config))
  out = {}
  for collection, towers in shapes.items():
    for tower in towers.values():
      for module, leaves in tower.items():
        for leaf, value in leaves.items():
          name = _torch_name(collection, module, leaf)
          shape = tuple(value.shape)
          if leaf == "kernel":  # Back to PyTorch's layout.
            shape = shape[::-1] if len(shape) == 2 else (shape[-1], shape[-2]) + shape[:-2]
          out[name] = shape
  return out


def load_params(path, config: SyncNetConfig = SyncNetConfig()) -> dict:
  """Reads a SyncNet weight file (format in the module docstring) into Flax variables.

  Raises:
    InputError: unreadable file, a missing or unexpected tensor, or a shape that does not match
      `config` (the message names the tensor and both shapes).
  """
  audio_lib.check_file(path)
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: np.asarray(data[k]) for k in data.files}
  except (ValueError, OSError) as e:
    raise InputError(path, f"is not a SyncNet .npz weight file ({e})") from None
  arrays = {k: v for k, v in arrays.items() if not k.endswith("num_batches_tracked")}
  expected = expected_shapes(config)
  for name, shape in expected.items():
    if name not in arrays:
      raise InputError(path, f"missing tensor {name!r} (shape {list(shape)})")
    if tuple(arrays[name].shape) != shape:
      raise InputError(
          path, f"tensor {name!r} has shape {list(arrays[name].shape)}, but this SyncNet "
          f"needs {list(shape)}")
    if not np.issubdtype(arrays[name].dtype, np.floating):
      raise InputError(path, f"tensor {name!r} has dtype {arrays[name].dtype}; expected floats")
  unexpected = sorted(set(arrays) - set(expected))
  if unexpected:
    raise InputError(
        path, f"unexpected tensor {unexpected[0]!r} ({len(unexpected)} in all): not the standard "
        "SyncNet (syncnet_python's S) layout")
  variables = jax.eval_shape(lambda: init_variables(config))
  out = {}
  for collection, towers in variables.items():
    out[collection] = {}
    for tower_name, tower in towers.items():
      out[collection][tower_name] = {}
      for module, leaves in tower.items():
        out[collection][tower_name][module] = {
            leaf:
                jnp.asarray(
                    _torch_to_flax(_torch_name(collection, module, leaf),
                                   arrays[_torch_name(collection, module, leaf)]), jnp.float32)
            for leaf in leaves
        }
  return out


def mfcc(wave) -> np.ndarray:
  """[N] float speech at 16 kHz in [-1, 1] -> [13, F] MFCC as syncnet_python computes it (100
  steps/s)."""
  import python_speech_features  # pylint: disable=g-import-not-at-top  (only needed for SyncNet)
  pcm = np.round(np.clip(np.asarray(wave, np.float64), -1.0, 1.0) * 32767.0)
  return np.asarray(python_speech_features.mfcc(pcm, audio_lib.SAMPLE_RATE), np.float32).T


def face_crops(frames, landmarks_px) -> np.ndarray:
  """[T, 224, 224, 3] float32 BGR 0..255 SyncNet crops from [T, H, W, 3] RGB frames and [T, 68,
  2] landmarks."""
  boxes = np.array([face.predictor_box(points) for points in np.asarray(landmarks_px)], np.float64)
  # Half side, as `bs` there.
  size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
  cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
  if len(boxes) >= BOX_SMOOTHING:
    size, cx, cy = (signal.medfilt(v, BOX_SMOOTHING) for v in (size, cx, cy))
  out = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE, 3), np.float32)
  for t, frame in enumerate(np.asarray(frames)):
    half = size[t] * (1 + CROP_SCALE)
    # The crop spans [cy - bs, cy + bs (1 + 2 cs)] vertically.
    left, top = cx[t] - half, cy[t] - size[t]
    k = INPUT_SIZE / (2 * half)
    # Box edges are in pixel-centre coordinates, so crop pixel u = k (x - left) - 0.5.
    transform = np.array([[k, 0.0, -k * left - 0.5], [0.0, k, -k * top - 0.5]])
    # Bilinear, as syncnet_python's cv2.resize of the cut-out region.
    crop = cv2.warpAffine(np.ascontiguousarray(frame),
                          transform, (INPUT_SIZE, INPUT_SIZE),
                          flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(PAD_VALUE,) * 3)
    out[t] = crop[..., ::-1]
  return out


def lse(variables,
        frames,
        landmarks_px,
        wave,
        config: SyncNetConfig = SyncNetConfig(),
        batch: int = BATCH) -> dict:
  """LSE-D, LSE-C and the AV offset of a video (see the module docstring).

  Args:
    variables: from `load_params`.
    frames: [T, H, W, 3] uint8 RGB at 25 fps.
    landmarks_px: [T, 68, 2] landmarks in frame pixels.
    wave: [N] float speech at 16 kHz, sample 0 at frame 0.
    config: the architecture the variables belong to.
    batch: windows per compiled call (the last batch is padded to it).

  Returns:
    {'lse_d', 'lse_c', 'offset_frames', 'num_windows'}; raises InputError for under 6 frames of
    video and audio together.
  """
  features = mfcc(wave)
  length = min(len(frames), len(wave) // (audio_lib.SAMPLE_RATE // FPS))
  last = length - WINDOW
  if last < 1:
    raise InputError("syncnet",
                     f"needs at least {WINDOW + 1} frames of video with audio, got {length}")
  crops = face_crops(frames[:length], landmarks_px[:length])
  model = SyncNet(config)
  embed = jax.jit(lambda v, m, f: model.apply(v, m, f))
  lip_feats, audio_feats = [], []
  for start in range(0, last, batch):
    idx = np.arange(start, start + batch)
    valid = idx < last
    idx = np.minimum(idx, last - 1)  # Pad the last batch so one compiled shape serves every batch.
    clips = np.stack([crops[i:i + WINDOW] for i in idx])
    steps = np.stack(
        [features[:, MFCC_PER_FRAME * i:MFCC_PER_FRAME * i + MFCC_PER_FRAME * WINDOW] for i in idx])
    a, v = embed(variables, jnp.asarray(steps[..., None]), jnp.asarray(clips))
    audio_feats.append(np.asarray(a)[valid])
    lip_feats.append(np.asarray(v)[valid])
  lip_feats, audio_feats = np.concatenate(lip_feats), np.concatenate(audio_feats)
  padded = np.pad(audio_feats, ((VSHIFT, VSHIFT), (0, 0)))
  # torch.nn.functional.pairwise_distance adds eps = 1e-6 to the difference.
  dists = np.stack([
      np.linalg.norm(lip_feats[i][None] - padded[i:i + 2 * VSHIFT + 1] + 1e-6, axis=-1)
      for i in range(len(lip_feats))
  ])
  mean = dists.mean(0)
  best = int(np.argmin(mean))
  return {"lse_d": float(mean[best]), "lse_c": float(np.median(mean) - mean[best]),
          "offset_frames": VSHIFT - best, "num_windows": int(last)}

"""SyncNet: the weight file format and its loader (on tiny files written here), layouts, LSE
scoring."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import syncnet
from emotalk_jax.media import tracking
from emotalk_jax.media import video_io

TINY = syncnet.SyncNetConfig(audio_channels=(4, 4, 4, 4, 4, 8),
                             lip_channels=(4, 4, 4, 4, 4, 8),
                             fc_hidden=8,
                             embed_dim=6)


def _random_state(config, seed=0) -> dict:
  rng = np.random.default_rng(seed)
  return {
      name: (rng.uniform(0.5, 1.5, shape) if name.endswith("running_var") else rng.normal(
          0, 0.2, shape)).astype(np.float32
                                ) for name, shape in syncnet.expected_shapes(config).items()
  }


@pytest.fixture
def tiny_file(tmp_path):
  state = _random_state(TINY)
  path = tmp_path / "tiny_syncnet.npz"
  np.savez(path, **state, **{"netcnnaud.1.num_batches_tracked": np.array(3)})
  return path, state


def test_standard_architecture_matches_syncnet_python():
  shapes = syncnet.expected_shapes()
  # 12 convolutions + 4 linear layers (weight, bias), 16 batch norms (4 each).
  assert len(shapes) == 88
  assert shapes["netcnnaud.0.weight"] == (64, 1, 3, 3)
  assert shapes["netcnnaud.18.weight"] == (512, 256, 5, 4)
  assert shapes["netcnnlip.0.weight"] == (96, 3, 5, 7, 7)
  assert shapes["netcnnlip.18.weight"] == (512, 256, 1, 6, 6)
  assert shapes["netcnnlip.19.running_var"] == (512,)
  # The lip tower ends at 1x1x1 for 5 frames of 224x224.
  assert shapes["netfclip.0.weight"] == (512, 512)
  assert shapes["netfcaud.3.weight"] == (1024, 512)
  assert sum(int(np.prod(s)) for s in shapes.values()) == 13_640_256


def test_loads_a_tiny_file_into_flax_layouts(tiny_file):
  path, state = tiny_file
  variables = syncnet.load_params(path, TINY)
  audio = variables["params"]["audio_tower"]
  np.testing.assert_array_equal(audio["netcnnaud_0"]["kernel"],
                                state["netcnnaud.0.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(audio["netfcaud_3"]["kernel"], state["netfcaud.3.weight"].T)
  np.testing.assert_array_equal(audio["netcnnaud_1"]["scale"], state["netcnnaud.1.weight"])
  lips = variables["batch_stats"]["lip_tower"]
  np.testing.assert_array_equal(lips["netcnnlip_5"]["var"], state["netcnnlip.5.running_var"])
  model = syncnet.SyncNet(TINY)
  embedding = model.apply(variables, jnp.zeros((2, 13, 20, 1)), method=syncnet.SyncNet.audio)
  assert embedding.shape == (2, TINY.embed_dim)  # The lip tower runs in the LSE test.


def test_shape_mismatch_names_the_tensor(tiny_file, tmp_path):
  _, state = tiny_file
  state = dict(state, **{"netcnnlip.4.weight": np.zeros((4, 4, 1, 3, 3), np.float32)})
  path = tmp_path / "bad_shape.npz"
  np.savez(path, **state)
  expected = r"'netcnnlip.4.weight' has shape \[4, 4, 1, 3, 3\].*needs \[4, 4, 1, 5, 5\]"
  with pytest.raises(InputError, match=expected):
    syncnet.load_params(path, TINY)
  # The standard architecture refuses the tiny file, naming the first tensor that differs.
  with pytest.raises(InputError, match="has shape .* but this SyncNet needs"):
    syncnet.load_params(tiny_file[0])


def test_missing_unexpected_and_pickled_tensors(tiny_file, tmp_path):
  _, state = tiny_file
  missing = {k: v for k, v in state.items() if k != "netfclip.1.running_mean"}
  np.savez(tmp_path / "missing.npz", **missing)
  with pytest.raises(InputError, match="missing tensor 'netfclip.1.running_mean'"):
    syncnet.load_params(tmp_path / "missing.npz", TINY)
  np.savez(tmp_path / "extra.npz", **state, **{"netcnnaud.99.weight": np.zeros(3, np.float32)})
  with pytest.raises(InputError, match="unexpected tensor 'netcnnaud.99.weight'"):
    syncnet.load_params(tmp_path / "extra.npz", TINY)
  np.savez(tmp_path / "objects.npz",
           **dict(state, **{"netcnnaud.0.bias": np.array([{
               "a": 1
           }], object)}))
  with pytest.raises(InputError, match="not a SyncNet .npz weight file"):
    syncnet.load_params(tmp_path / "objects.npz", TINY)
  (tmp_path / "text.npz").write_text("hello")
  with pytest.raises(InputError, match="not a SyncNet .npz weight file"):
    syncnet.load_params(tmp_path / "text.npz", TINY)
  with pytest.raises(InputError, match="no such file"):
    syncnet.load_params(tmp_path / "absent.npz", TINY)


def _torch_conv(x, w, b, stride, padding):
  """PyTorch's ConvNd (cross-correlation) on [C, *spatial] with [O, C, *k] weights, written out
  directly."""
  x = np.pad(x, [(0, 0)] + [(p, p) for p in padding])
  k = w.shape[2:]
  out_shape = [(x.shape[1 + d] - k[d]) // stride[d] + 1 for d in range(len(k))]
  out = np.zeros([w.shape[0]] + out_shape)
  for pos in np.ndindex(*out_shape):
    window = x[(slice(None),) + tuple(slice(p * s, p * s + kk) for p, s, kk in zip(pos, stride, k))]
    out[(slice(None),) + pos] = np.tensordot(w, window, axes=w.ndim - 1) + b
  return out


@pytest.mark.parametrize("kernel, stride, padding", [((3, 3), (1, 2), (1, 1)),
                                                     ((2, 3, 3), (1, 2, 2), (0, 1, 1))])
def test_pytorch_convolution_layout_is_converted(kernel, stride, padding):
  rng = np.random.default_rng(1)
  w = rng.normal(size=(5, 2) + kernel).astype(np.float32)
  b = rng.normal(size=5).astype(np.float32)
  x = rng.normal(size=(2, 4, 7) if len(kernel) == 2 else (2, 3, 6, 7)).astype(np.float32)
  conv = nn.Conv(5, kernel, stride, padding=tuple((p, p) for p in padding))
  params = {
      "params": {
          "kernel": syncnet._torch_to_flax("x.0.weight", w),  # pylint: disable=protected-access
          "bias": b
      }
  }
  ours = conv.apply(params, jnp.asarray(np.moveaxis(x, 0, -1))[None])[0]
  np.testing.assert_allclose(np.moveaxis(np.asarray(ours), -1, 0),
                             _torch_conv(x, w, b, stride, padding),
                             rtol=1e-4,
                             atol=1e-4)
  dense = syncnet._torch_to_flax("x.3.weight", w.reshape(5, -1))  # pylint: disable=protected-access
  assert dense.shape == (w[0].size, 5)


def test_lse_on_a_real_clip_with_a_tiny_model(tiny_file):
  # 7 windows: one batch (CPU convs are slow).
  video = video_io.read_video(bundled.GRID_CLIP, max_frames=12)
  points = tracking.track_landmarks(video.frames).landmarks
  variables = syncnet.load_params(tiny_file[0], TINY)
  result = syncnet.lse(variables, video.frames, points, video.audio, TINY, batch=7)
  assert result["num_windows"] == 7
  assert np.isfinite(result["lse_d"]) and result["lse_c"] >= 0
  assert -syncnet.VSHIFT <= result["offset_frames"] <= syncnet.VSHIFT
  with pytest.raises(InputError, match="at least 6 frames"):
    syncnet.lse(variables, video.frames[:5], points[:5], video.audio, TINY)


def test_face_crops_and_mfcc():
  frame = np.zeros((240, 320, 3), np.uint8)
  frame[..., 0] = 200  # Pure red.
  points = tracking.face.template(100) + [110.0, 70.0]
  crops = syncnet.face_crops(frame[None], points[None])
  assert crops.shape == (1, 224, 224, 3) and crops.dtype == np.float32
  assert crops[0, 112, 112, 2] == pytest.approx(200) and crops[0, 112, 112, 0] == 0  # BGR order.
  assert syncnet.mfcc(np.zeros(16000, np.float32) + 0.01 * np.sin(np.arange(16000))).shape == (13,
                                                                                               99)
  # A face near the frame's edge: the crop is filled with syncnet_python's grey where the frame
  # ends.
  edge = syncnet.face_crops(frame[None], (points - [150.0, 0.0])[None])
  assert edge[0, 112, 0, 0] == syncnet.PAD_VALUE

"""VGG19 perceptual loss: the .npz weights format, its loader, and the checkpoint converters."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emotalk_jax.models import vgg

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("relu1_1", "relu2_1")


def _converter():
  spec = importlib.util.spec_from_file_location("convert_vgg19",
                                                REPO_ROOT / "tools" / "convert_vgg19.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _tiny_params(seed=0):
  """Random weights for conv1_1 .. conv2_1 (all that relu2_1 needs)."""
  rng = np.random.default_rng(seed)
  return {name: {"kernel": rng.normal(0, 0.1, vgg.CONV_SHAPES[name]).astype(np.float32),
                 "bias": rng.normal(0, 0.1, vgg.CONV_SHAPES[name][-1:]).astype(np.float32)}
          for name in vgg.convs_needed(LAYERS)}


def test_loads_a_tiny_file_and_the_loss_behaves(tmp_path):
  params = _tiny_params()
  vgg.save_weights(tmp_path / "vgg.npz", params)
  weights = vgg.load_weights(tmp_path / "vgg.npz", LAYERS)
  assert set(weights["params"]) == {"conv1_1", "conv1_2", "conv2_1"}
  np.testing.assert_array_equal(weights["params"]["conv1_2"]["kernel"], params["conv1_2"]["kernel"])
  np.testing.assert_allclose(weights["mean"], vgg.IMAGENET_MEAN)
  rng = np.random.default_rng(1)
  a = jnp.asarray(rng.uniform(-1, 1, (2, 16, 16, 3)), jnp.float32)
  b = jnp.asarray(rng.uniform(-1, 1, (2, 16, 16, 3)), jnp.float32)
  # Jitted (one program each, instead of compiling every op on its own).
  loss = jax.jit(lambda x, y: vgg.perceptual_loss(weights, x, y, LAYERS, (1.0, 1.0)))
  same = loss(a, a)
  diff = loss(a, b)
  assert float(same) == 0.0 and float(diff) > 0
  grad = jax.jit(jax.grad(loss))(a, b)
  assert np.abs(np.asarray(grad)).sum() > 0
  # relu1_1 by hand: conv of the normalised input + relu.
  feats = jax.jit(lambda x: vgg.VGG19(LAYERS).apply({"params": weights["params"]}, x,
                                                    weights["mean"], weights["std"]))(a * 0.5 + 0.5)
  x = ((np.asarray(a) * 0.5 + 0.5) - vgg.IMAGENET_MEAN) / vgg.IMAGENET_STD
  ref = jax.lax.conv_general_dilated(
      x, params["conv1_1"]["kernel"],
      (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + params["conv1_1"]["bias"]
  np.testing.assert_allclose(feats["relu1_1"], np.maximum(ref, 0), atol=1e-4)
  assert feats["relu2_1"].shape == (2, 8, 8, 128)


def test_bad_files_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="VGG19 weights file not found"):
    vgg.load_weights(tmp_path / "nope.npz")
  params = _tiny_params()
  vgg.save_weights(tmp_path / "short.npz", params)
  with pytest.raises(ValueError, match="missing conv2_2/kernel"):
    vgg.load_weights(tmp_path / "short.npz", ("relu2_2",))
  params["conv1_2"]["kernel"] = params["conv1_2"]["kernel"][:, :, :32]
  vgg.save_weights(tmp_path / "bad.npz", params)
  with pytest.raises(ValueError, match=r"conv1_2 has kernel \(3, 3, 32, 64\)"):
    vgg.load_weights(tmp_path / "bad.npz", LAYERS)
  with pytest.raises(ValueError, match="unknown VGG19 layer"):
    vgg.convs_needed(("relu9_1",))


def test_torchvision_state_dict_conversion(tmp_path):
  converter = _converter()
  params = _tiny_params()
  state = {}
  for name, index in zip(vgg.CONV_NAMES, converter.TORCH_INDICES):
    if name in params:
      # OIHW, as torch stores it.
      state[f"features.{index}.weight"] = params[name]["kernel"].transpose(3, 2, 0, 1)
      state[f"features.{index}.bias"] = params[name]["bias"]
  converted = converter.from_torch_state_dict(state)
  assert set(converted) == set(params)
  for name in params:
    np.testing.assert_array_equal(converted[name]["kernel"], params[name]["kernel"])
    np.testing.assert_array_equal(converted[name]["bias"], params[name]["bias"])
  vgg.save_weights(tmp_path / "vgg.npz", converted)
  assert set(vgg.load_weights(tmp_path / "vgg.npz", LAYERS)["params"]) == set(params)


def test_keras_h5_conversion_matches_caffe_preprocessing(tmp_path):
  h5py = pytest.importorskip("h5py")
  converter = _converter()
  params = _tiny_params()
  with h5py.File(tmp_path / "keras.h5", "w") as f:
    for name, p in params.items():
      b, i = name[4:].split("_")
      g = f.create_group(f"block{b}_conv{i}").create_group(f"block{b}_conv{i}")
      g["kernel:0"], g["bias:0"] = p["kernel"], p["bias"]
  assert converter.main(["convert", str(tmp_path / "keras.h5"), str(tmp_path / "vgg.npz")]) == 0
  weights = vgg.load_weights(tmp_path / "vgg.npz", ("relu1_1",))
  rgb = np.random.default_rng(2).uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)
  ours = vgg.VGG19(("relu1_1",)).apply({"params": weights["params"]}, rgb, weights["mean"],
                                       weights["std"])
  caffe = rgb[..., ::-1] * 255.0 - converter.CAFFE_MEAN_BGR  # What Keras' VGG19 sees.
  ref = jax.lax.conv_general_dilated(
      caffe,
      params["conv1_1"]["kernel"], (1, 1),
      "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC")) + params["conv1_1"]["bias"]
  np.testing.assert_allclose(ours["relu1_1"], np.maximum(ref, 0), rtol=1e-4, atol=1e-3)

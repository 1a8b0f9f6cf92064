"""Converts a public VGG19 checkpoint into the `.npz` the perceptual loss reads
(`emotalk_jax/models/vgg.py`).

  # torchvision (https://download.pytorch.org/models/vgg19-dcb9e9de.pth; needs torch):
  python tools/convert_vgg19.py vgg19-dcb9e9de.pth vgg19.npz
  # Keras applications (vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5; needs h5py):
  python tools/convert_vgg19.py vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 vgg19.npz

then train with `--config.vgg_weights=vgg19.npz` (and `--config.perceptual_weight` > 0).

* torchvision: `features.{0,2,5,7,10,12,14,16,19,21,23,25,28,30,32,34}.weight` [out, in, 3, 3] ->
  HWIO kernels; inputs RGB in [0, 1] normalised by the ImageNet mean/std (stored as `mean`/`std`).
  Read with `torch.load(weights_only=True)` (no arbitrary pickled code).
* Keras: `block{b}_conv{i}` kernels are HWIO already but expect Caffe preprocessing (BGR, 0..255,
  mean
  subtracted, no std): conv1_1's input channels are flipped to RGB and `mean` = the Caffe means /
  255, `std` = 1 / 255, which is the same function of RGB in [0, 1].
The weights keep their original licences (torchvision: BSD-3; Keras/VGG: CC BY 4.0, Oxford VGG).
"""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from emotalk_jax.models import vgg  # pylint: disable=wrong-import-position

# Indices of the 16 convs in torchvision's vgg19().features.
TORCH_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def from_torch_state_dict(state_dict) -> dict:
  """torchvision `vgg19` state dict (numpy or torch tensors) -> {'conv1_1': {'kernel', 'bias'},
  ...}."""
  params = {}
  for name, index in zip(vgg.CONV_NAMES, TORCH_INDICES):
    if f"features.{index}.weight" not in state_dict:  # A truncated trunk: keep the convs it has.
      break
    weight = np.asarray(state_dict[f"features.{index}.weight"], np.float32)
    params[name] = {
        "kernel": weight.transpose(2, 3, 1, 0),
        "bias": np.asarray(state_dict[f"features.{index}.bias"], np.float32)
    }
  return params


def from_keras_h5(path) -> tuple:
  """Keras VGG19 h5 -> (params, mean, std) equivalent on RGB in [0, 1]."""
  import h5py  # pylint: disable=g-import-not-at-top
  params = {}
  with h5py.File(path, "r") as f:
    group = f["model_weights"] if "model_weights" in f else f
    for name in vgg.CONV_NAMES:
      b, i = name[4:].split("_")
      if f"block{b}_conv{i}" not in group:  # A truncated trunk: keep the convs it has.
        break
      layer = group[f"block{b}_conv{i}"]
      # Nested `block1_conv1/block1_conv1/kernel:0`.
      while "kernel:0" not in layer and len(layer) == 1:
        layer = layer[next(iter(layer))]
      params[name] = {
          "kernel": np.asarray(layer["kernel:0"], np.float32),
          "bias": np.asarray(layer["bias:0"], np.float32)
      }
  params["conv1_1"]["kernel"] = params["conv1_1"]["kernel"][:, :, ::-1].copy()  # BGR -> RGB inputs.
  return params, CAFFE_MEAN_BGR[::-1] / 255.0, np.full(3, 1.0 / 255.0, np.float32)


def main(argv) -> int:
  if len(argv) != 3:
    print(__doc__)
    return 2
  src, dst = pathlib.Path(argv[1]), pathlib.Path(argv[2])
  if src.suffix in (".h5", ".hdf5"):
    params, mean, std = from_keras_h5(src)
  else:
    import torch  # pylint: disable=g-import-not-at-top
    state = torch.load(src, map_location="cpu", weights_only=True)
    params, mean, std = from_torch_state_dict({
        k: v.numpy() for k, v in state.items()
    }), vgg.IMAGENET_MEAN, vgg.IMAGENET_STD
  vgg.save_weights(dst, params, mean, std)
  print(f"wrote {dst}: {len(params)} convs")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))

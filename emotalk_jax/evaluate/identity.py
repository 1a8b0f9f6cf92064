"""Identity similarity (CSIM): cosine similarity of dlib face-recognition embeddings.

The embedding network is dlib's ResNet `dlib_face_recognition_resnet_model_v1` (128-d; 99.38% on
LFW), whose weights ship in the `face_recognition_models` package, so nothing is downloaded. Each
face is cut out by dlib's own chip extraction from our 68 landmarks (`dlib.get_face_chip`: 150x150
px, padding 0.25) and embedded without jittering. CSIM between a source photo and a video is the
mean over the video's frames (with a face) of cos(e_source, e_frame) = e_source . e_frame /
(|e_source| |e_frame|), in [-1, 1]; measured on real photos and clips in `../shared/data`, the same
person scores about 0.95-0.97 and different people 0.82-0.91 (dlib calls two faces the same person
when the Euclidean distance is below 0.6).
"""

import functools
import threading

import numpy as np

CHIP_SIZE = 150  # Pixels: the input size of dlib's recognition network.
CHIP_PADDING = 0.25  # dlib's default context around the face in the chip.
EMBEDDING_DIM = 128


class FaceEmbedder:
  """dlib's face-recognition ResNet, loaded on first use."""

  def __init__(self):
    self._lock = threading.Lock()
    self._model = None

  def _net(self):
    with self._lock:
      if self._model is None:
        # Slow import; only when embeddings are needed.
        import dlib  # pylint: disable=g-import-not-at-top
        import face_recognition_models  # pylint: disable=g-import-not-at-top
        self._model = dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location())
    return self._model

  def chip(self, image, landmarks_px) -> np.ndarray:
    """[CHIP_SIZE, CHIP_SIZE, 3] uint8 face chip cut from [H, W, 3] uint8 `image` at [68, 2]
    landmarks."""
    import dlib  # pylint: disable=g-import-not-at-top
    points = np.asarray(landmarks_px, np.float64)
    if points.shape != (68, 2):
      raise ValueError(f"expected [68, 2] landmarks, got {points.shape}")
    x0, y0 = np.floor(points.min(0)).astype(int)
    x1, y1 = np.ceil(points.max(0)).astype(int)
    shape = dlib.full_object_detection(
        dlib.rectangle(int(x0), int(y0), int(x1),
                       int(y1)), [dlib.point(int(round(x)), int(round(y))) for x, y in points])
    return dlib.get_face_chip(np.ascontiguousarray(image, np.uint8), shape, CHIP_SIZE, CHIP_PADDING)

  def embed_chips(self, chips) -> np.ndarray:
    """[N, CHIP_SIZE, CHIP_SIZE, 3] uint8 chips -> [N, 128] float32 embeddings."""
    chips = [np.ascontiguousarray(c, np.uint8) for c in chips]
    if not chips:
      return np.zeros((0, EMBEDDING_DIM), np.float32)
    return np.asarray(self._net().compute_face_descriptor(chips),
                      np.float32).reshape(len(chips), EMBEDDING_DIM)

  def embed(self, images, landmarks_px) -> np.ndarray:
    """[N, H, W, 3] uint8 images with [N, 68, 2] landmarks (image pixels) -> [N, 128] float32."""
    return self.embed_chips([self.chip(im, pts) for im, pts in zip(images, landmarks_px)])


@functools.lru_cache(maxsize=1)
def default_embedder() -> FaceEmbedder:
  """The process-wide embedder (the network loads once, on first use)."""
  return FaceEmbedder()


def cosine_similarity(a, b) -> np.ndarray:
  """Cosine similarity over the last axis of [..., D] arrays (broadcast); float64."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  denom = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
  return np.sum(a * b, axis=-1) / np.maximum(denom, 1e-12)

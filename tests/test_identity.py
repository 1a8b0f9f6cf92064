"""CSIM: dlib face-recognition embeddings tell the same person from a different one (real
photos)."""

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.evaluate import identity
from emotalk_jax.media import face
from emotalk_jax.media import video_io


def _embed_photo(path):
  image = video_io.read_image(path)
  return identity.default_embedder().embed([image], [face.face_landmarks(image, path)])[0]


def test_same_person_scores_higher_than_a_different_person(shared_data):
  photos = shared_data / "faces" / "makeittalk"
  natalie, natalie2, hermione = (
      _embed_photo(photos / n) for n in ("natalie.jpg", "natalie2.jpg", "hermione.jpg"))
  same = identity.cosine_similarity(natalie, natalie2)
  different = max(identity.cosine_similarity(natalie, hermione),
                  identity.cosine_similarity(natalie2, hermione))
  print(f"CSIM photos: same person {same:.3f}, different person {different:.3f}")
  assert same > different + 0.03


def test_photo_against_video_frames(shared_data):
  obama = _embed_photo(shared_data / "faces" / "makeittalk" / "obama.jpg")
  scores = {}
  for clip in ("Obama_clip1", "andrew_clip_1"):
    video = video_io.read_video(shared_data / "video" / "styletalk_source" / f"{clip}.mp4",
                                max_frames=3,
                                with_audio=False)
    points = [face.face_landmarks(f, clip) for f in video.frames]
    scores[clip] = identity.cosine_similarity(
        identity.default_embedder().embed(video.frames, points), obama).mean()
  print(
      f"CSIM obama.jpg vs frames: Obama {scores['Obama_clip1']:.3f}, "
      f"Andrew Ng {scores['andrew_clip_1']:.3f}"
  )
  assert scores["Obama_clip1"] > scores["andrew_clip_1"] + 0.03


def test_embeddings_and_chips():
  photo = video_io.read_image(bundled.ASTRONAUT_PHOTO)
  points = face.face_landmarks(photo)
  embedder = identity.default_embedder()
  chip = embedder.chip(photo, points)
  assert chip.shape == (identity.CHIP_SIZE, identity.CHIP_SIZE, 3) and chip.dtype == np.uint8
  # The same photo smaller and shifted: the chip is cut at the landmarks, so the embedding barely
  # moves.
  small = np.zeros_like(photo)
  small[100:100 + 358, 50:50 + 358] = cv2.resize(photo, (358, 358), interpolation=cv2.INTER_AREA)
  e = embedder.embed([photo, small], [points, face.face_landmarks(small)])
  assert e.shape == (2, identity.EMBEDDING_DIM) and e.dtype == np.float32
  assert identity.cosine_similarity(e[0], e[0]) == pytest.approx(1.0)
  assert identity.cosine_similarity(e[0], e[1]) > 0.97
  assert embedder.embed_chips([]).shape == (0, identity.EMBEDDING_DIM)
  with pytest.raises(ValueError, match="68, 2"):
    embedder.chip(photo, points[:5])

"""face_process: the photo's face search in a child process gives the landmarks (and the
warnings) of the search in process, and None on any failure, so the caller's own search raises."""

import signal

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.media import face
from emotalk_jax.media import face_process
from emotalk_jax.media import video_io


def test_the_child_finds_the_same_landmarks_as_the_search_in_process():
  search = face_process.Search(bundled.DEMO_PHOTO)
  points = search.result()
  search.close()
  expected = face.face_landmarks(video_io.read_image(bundled.DEMO_PHOTO))
  assert points.dtype == np.float32 and points.shape == (68, 2)
  np.testing.assert_array_equal(points, expected)


def test_the_childs_warnings_are_given_again(tmp_path):
  astronaut = video_io.read_image(bundled.ASTRONAUT_PHOTO)
  big = cv2.resize(astronaut[30:250, 110:330], (288, 288), interpolation=cv2.INTER_AREA)
  small = video_io.read_video(bundled.GRID_CLIP, max_frames=1, with_audio=False).frames[0]
  pair = tmp_path / "pair.png"
  video_io.write_image(pair, np.concatenate([big, small], axis=1))
  search = face_process.Search(pair, face_index=1)
  with pytest.warns(UserWarning, match=r"pair\.png: 2 faces found"):
    points = search.result()
  assert points[:, 0].min() > 288  # The second face: the GRID speaker's, on the right.


@pytest.mark.parametrize("kind", ["no_face", "unreadable", "missing"])
def test_a_failed_search_gives_none(tmp_path, kind):
  photo = tmp_path / "photo.png"
  if kind == "no_face":
    video_io.write_image(photo, np.full((200, 200, 3), 128, np.uint8))
  elif kind == "unreadable":
    photo.write_bytes(b"not an image")
  assert face_process.Search(photo).result() is None


def test_close_stops_a_search_still_running():
  search = face_process.Search(bundled.DEMO_PHOTO)
  search.close()  # At once: dlib alone takes most of a second to load.
  assert search._child.returncode == -signal.SIGKILL  # pylint: disable=protected-access

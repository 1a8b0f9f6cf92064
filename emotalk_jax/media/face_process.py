"""A photo's face search in a process of its own.

dlib holds the GIL while it loads its models (about 0.8 s) and while it searches, so in a thread of
the generating process it would stop the speech encoder's and the networks' Python for that long.
In a child process it runs beside them on the other core.

```python
search = face_process.Search("photo.jpg")  # Starts the child; returns at once.
...                                         # Other work.
points = search.result()                    # [68, 2] px, or None: search in process instead.
```

The child (`python -m emotalk_jax.media.face_process PHOTO FACE_INDEX`) reads the photo with
`video_io.read_image` and runs `face.face_landmarks` on it, so its landmarks are those of a search
in process; it prints them as JSON with the warnings that search gave. On any failure (no face, an
unreadable photo) it exits non-zero and `result()` returns None: the caller's own search then
raises the error with its usual message.
"""

import json
import pathlib
import subprocess
import sys
import warnings
from typing import Optional

import numpy as np


class Search:
  """The face search of the photo at `path` in a child process (see the module docstring)."""

  def __init__(self, path, face_index: int = 0):
    self._child = subprocess.Popen(
        [sys.executable, "-m", __name__, str(pathlib.Path(path)), str(int(face_index))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

  def result(self) -> Optional[np.ndarray]:
    """[68, 2] float32 landmark pixels of the face (warning as the search did), or None when the
    child failed."""
    out, _ = self._child.communicate()
    if self._child.returncode != 0:
      return None
    reply = json.loads(out)
    for message in reply["warnings"]:
      warnings.warn(message, stacklevel=2)
    return np.asarray(reply["landmarks"], np.float32)

  def close(self) -> None:
    """Stops the child if it is still searching (e.g. generation failed before it needed the
    face)."""
    if self._child.poll() is None:
      self._child.kill()
      self._child.wait()
    self._child.stdout.close()


def main(argv) -> int:
  # Imported here: the parent imports this module only to start the child.
  from emotalk_jax.media import face  # pylint: disable=g-import-not-at-top
  from emotalk_jax.media import video_io  # pylint: disable=g-import-not-at-top
  path, face_index = argv
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    points = face.face_landmarks(video_io.read_image(path), path, int(face_index))
  # float32 -> JSON (shortest repr of the float64) -> float32 is exact.
  json.dump({"landmarks": points.tolist(), "warnings": [str(w.message) for w in caught]},
            sys.stdout)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))

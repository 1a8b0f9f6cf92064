"""Work in a background thread: the stages of generation overlap on a multi-core CPU.

JAX (while its compiled code runs), OpenCV and the video encoder release the GIL, so a thread is
enough to run stage 2 while the previous frames are pasted and encoded, or the speech encoder while
the face is searched.
"""

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


class Call:
  """`fn()` started now in a daemon thread; `result()` waits for it and returns its value or
  raises its exception."""

  def __init__(self, fn: Callable[[], T]):
    self._value, self._error = None, None
    self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
    self._thread.start()

  def _run(self, fn):
    try:
      self._value = fn()
    except BaseException as e:  # pylint: disable=broad-except  (re-raised in the caller's thread)
      self._error = e

  def result(self):
    self._thread.join()
    if self._error is not None:
      raise self._error
    return self._value


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
  """Yields `items`, produced up to `depth` ahead by a daemon thread (so at most `depth` + 1 of
  them are held at once). An exception in the producer is raised here, at its place in the
  sequence; leaving the loop early stops the producer at its next item."""
  slots = queue.Queue(maxsize=depth)
  stop = threading.Event()

  def produce():
    try:
      for item in items:
        if stop.is_set():
          return
        slots.put((item, None))
      slots.put((_DONE, None))
    except BaseException as e:  # pylint: disable=broad-except  (re-raised in the consumer)
      slots.put((_DONE, e))

  thread = threading.Thread(target=produce, daemon=True)
  thread.start()
  try:
    while True:
      item, error = slots.get()
      if error is not None:
        raise error
      if item is _DONE:
        return
      yield item
  finally:
    stop.set()
    while thread.is_alive():  # Free a producer blocked on a full queue.
      try:
        slots.get_nowait()
      except queue.Empty:
        thread.join(timeout=0.01)

"""Work in background threads: the stages of generation overlap on a multi-core CPU.

JAX (while its compiled code runs), OpenCV and the video encoder release the GIL, so a thread is
enough to run stage 2 while the previous frames are pasted and encoded, or the speech encoder and
stage 1 on the rest of a long clip while its first frames are rendered. (dlib does not release it:
the face search runs in a process of its own, `media.face_process`.)
"""

import contextlib
import ctypes
import heapq
import itertools
import queue
import threading
import time
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
_DONE = object()
# mallopt's parameter number of M_ARENA_MAX (glibc's malloc.h).
_M_ARENA_MAX = -8


def fewer_malloc_arenas(count: int = 2) -> bool:
  """Caps glibc's malloc arenas at `count` for the rest of the process (the command line calls it
  before generating; a library leaves the process's allocator alone).

  Otherwise every thread that allocates gets an arena of its own (up to 8 per core) and keeps
  there what it freed: with the stages in threads, generation's peak memory was 50-100 MB higher
  and varied by 60 MB from run to run (docs/results.md#generation-speed-and-memory).

  Returns:
    Whether it was set: False without glibc (macOS, Windows, musl), where nothing changes.
  """
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return False
  return bool(libc.mallopt(_M_ARENA_MAX, int(count)))


def release_free_memory() -> bool:
  """Gives the pages of glibc's free heap space back to the system (`malloc_trim(0)`); they are
  mapped again when reused.

  Generation calls it after each speech-encoder window and stage-1 chunk: in a long clip these
  take turns with stage 2's batches and split the free space its 31 MB of temporaries leave, and
  the split space stayed resident (300 s of speech settled about 90 MB above 10 s without it;
  docs/results.md#generation-speed-and-memory).

  Returns:
    Whether anything was given back: False without glibc.
  """
  try:
    return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
  except (OSError, AttributeError):
    return False


class _MallInfo2(ctypes.Structure):
  """glibc's `struct mallinfo2` (malloc.h, glibc >= 2.33), in its order; sizes in bytes."""
  _fields_ = [(name, ctypes.c_size_t) for name in (
      "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
      "keepcost")]


def heap_mb() -> Optional[dict]:
  """glibc's heap now, in MB, all arenas: 'in_use' (allocated), 'free' (free space inside the
  heap: resident where it was touched, until reused or trimmed) and 'mapped' (blocks mapped on
  their own, above the mmap threshold). None without glibc's `mallinfo2`.

  Free space is how fragmentation shows: generation's peak memory differs between short and long
  clips by it, not by what is in use (docs/results.md#generation-speed-and-memory).
  """
  try:
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
  except (OSError, AttributeError):
    return None
  mallinfo2.restype = _MallInfo2
  info = mallinfo2()
  return {"in_use": round(info.uordblks / 2**20, 1), "free": round(info.fordblks / 2**20, 1),
          "mapped": round(info.hblkhd / 2**20, 1)}


class TurnLock:
  """A lock taken in turns: the lowest `priority` asking goes first, equal ones in the order they
  asked (a `threading.Lock` most often goes again to the thread that just released it).

  ```python
  with lock.turn(priority=0):
    ...
  ```
  """

  def __init__(self):
    self._turns = threading.Condition()
    self._waiting = []  # Heap of (priority, ticket).
    self._tickets = itertools.count()
    self._held = False
    self._waited = threading.local()

  @contextlib.contextmanager
  def turn(self, priority: int = 0):
    start = time.perf_counter()
    with self._turns:
      me = (priority, next(self._tickets))
      heapq.heappush(self._waiting, me)
      self._turns.wait_for(lambda: not self._held and self._waiting[0] == me)
      heapq.heappop(self._waiting)
      self._held = True
    self._waited.seconds = self.waited_seconds() + time.perf_counter() - start
    try:
      yield
    finally:
      with self._turns:
        self._held = False
        self._turns.notify_all()

  def locked(self) -> bool:
    """Whether a thread holds it now."""
    with self._turns:
      return self._held

  def waited_seconds(self) -> float:
    """How long the calling thread has waited for its turns, in all."""
    return getattr(self._waited, "seconds", 0.0)

  def waiting(self) -> int:
    """How many threads wait for their turn."""
    with self._turns:
      return len(self._waiting)


class prefetch(Iterator[T]):  # pylint: disable=invalid-name  (used like a function)
  """Yields `items`, produced up to `depth` ahead by a daemon thread that starts now (so at most
  `depth` + 1 of them are held at once). An exception in the producer is raised here, at its place
  in the sequence. `close()` (also when this is garbage-collected, e.g. a loop left early, or on
  an error before any item is taken) stops the producer at its next item."""

  def __init__(self, items: Iterable[T], depth: int):
    self._slots = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    # The thread holds the queue and the event, not this object, which can then be collected.
    self._thread = threading.Thread(target=_produce, args=(items, self._slots, self._stop),
                                    daemon=True)
    self._thread.start()

  def __next__(self) -> T:
    item, error = self._slots.get()
    if error is not None:
      raise error
    if item is _DONE:
      self._slots.put((_DONE, None))  # Later calls stop too.
      raise StopIteration
    return item

  def close(self) -> None:
    self._stop.set()
    while self._thread.is_alive():  # Free a producer blocked on a full queue.
      try:
        self._slots.get_nowait()
      except queue.Empty:
        self._thread.join(timeout=0.01)

  def __del__(self):
    self.close()


def _produce(items, slots: queue.Queue, stop: threading.Event) -> None:
  try:
    for item in items:
      if stop.is_set():
        return
      slots.put((item, None))
    slots.put((_DONE, None))
  except BaseException as e:  # pylint: disable=broad-except  (re-raised in the consumer)
    slots.put((_DONE, e))


class Progressive:
  """Runs a generator of (value, ready) pairs in a daemon thread, `ready` counting how much of
  `value` (e.g. the first frames of an array being filled) is final; `wait(n)` returns the value
  once at least `n` is, or raises the generator's exception if it stopped before."""

  def __init__(self, blocks: Iterable[tuple]):
    self._value, self._ready, self._error, self._done = None, 0, None, False
    self.waited_seconds = 0.0  # How long `wait` calls have blocked, in all.
    self._changed = threading.Condition()
    threading.Thread(target=self._run, args=(blocks,), daemon=True).start()

  def _run(self, blocks):
    try:
      for value, ready in blocks:
        with self._changed:
          self._value, self._ready = value, ready
          self._changed.notify_all()
    except BaseException as e:  # pylint: disable=broad-except  (re-raised by `wait`)
      self._error = e
    with self._changed:
      self._done = True
      self._changed.notify_all()

  def wait(self, n: int):
    start = time.perf_counter()
    with self._changed:
      self._changed.wait_for(lambda: self._ready >= n or self._done)
      self.waited_seconds += time.perf_counter() - start
      if self._ready >= n:
        return self._value  # Final, even if the producer failed later on.
      if self._error is not None:
        raise self._error
      raise RuntimeError(f"the producer finished with {self._ready} ready, {n} needed")

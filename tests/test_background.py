"""generate.background: a thread that produces ahead, in order, with errors raised in place; the
process's malloc arenas capped; glibc's heap measured."""

import platform
import sys
import threading
import time

import pytest

from emotalk_jax.generate import background


def test_prefetch_keeps_the_order_and_runs_ahead_in_another_thread():
  produced_in = set()

  def items():
    for i in range(20):
      produced_in.add(threading.get_ident())
      yield i

  assert list(background.prefetch(items(), depth=3)) == list(range(20))
  assert produced_in and threading.get_ident() not in produced_in


def _counted(n: int, made: list):
  """Yields 0 .. n - 1, appending each to `made` as it is produced."""
  for i in range(n):
    made.append(i)
    yield i


def test_prefetch_holds_at_most_depth_items_ahead():
  made = []
  stream = background.prefetch(_counted(100, made), depth=4)
  assert next(stream) == 0
  time.sleep(0.2)  # Time for the producer to run as far as it may.
  # Item 0 was taken, 4 wait in the queue, 1 more is made and waits for a free slot.
  assert len(made) == 6
  stream.close()


def test_an_error_in_the_producer_is_raised_at_its_place():

  def items():
    yield 1
    yield 2
    raise ValueError("broken frame 3")

  got = []
  with pytest.raises(ValueError, match="broken frame 3"):
    for item in background.prefetch(items(), depth=2):
      got.append(item)
  assert got == [1, 2]


def test_leaving_early_stops_the_producer():
  made = []
  stream = background.prefetch(_counted(10_000, made), depth=2)
  for item in stream:
    if item == 5:
      break
  thread = stream._thread  # pylint: disable=protected-access
  del stream  # Left behind (collected): the producer ends instead of waiting for a free slot.
  thread.join(timeout=2)
  assert not thread.is_alive() and len(made) <= 10


def test_progressive_waits_for_what_is_ready_and_raises_the_error():

  def blocks():
    for ready in (2, 5):
      time.sleep(0.05)
      yield f"value {ready}", ready
    raise ValueError("stage 1 failed")

  stream = background.Progressive(blocks())
  assert stream.wait(1) in ("value 2", "value 5")
  assert stream.wait(5) == "value 5"
  with pytest.raises(ValueError, match="stage 1 failed"):
    stream.wait(6)



def _hold_then_release(lock, order, askers):
  """Holds `lock` until `askers` threads wait for it, then releases it; `order` records the turns
  (each asker appends its name once it has the lock)."""
  threads = []
  with lock.turn():
    order.append("holder")
    for name, priority in askers:

      def ask(name=name, priority=priority):
        with lock.turn(priority):
          order.append(name)

      threads.append(threading.Thread(target=ask))
      threads[-1].start()
      while lock.waiting() < len(threads):  # Each asks before the next one starts.
        time.sleep(0.001)
  for t in threads:
    t.join()


def test_the_turn_lock_goes_by_priority_then_in_the_order_asked():
  lock = background.TurnLock()
  order = []
  _hold_then_release(lock, order, [("speech", 2), ("stage 1", 1), ("first render", 0),
                                   ("second render", 0), ("more speech", 2)])
  assert order == ["holder", "first render", "second render", "stage 1", "speech", "more speech"]
  assert not lock.locked() and not lock.waiting()


def test_the_turn_lock_counts_each_threads_wait():
  lock = background.TurnLock()
  waited = []

  def ask():
    with lock.turn():
      waited.append(lock.waited_seconds())

  with lock.turn():
    asker = threading.Thread(target=ask)
    asker.start()
    while not lock.waiting():
      time.sleep(0.001)
    time.sleep(0.05)
  asker.join()
  assert waited[0] >= 0.05  # The asker's own wait...
  assert lock.waited_seconds() < waited[0]  # ...not this thread's, which found it free.


def test_the_turn_lock_is_held_by_one_thread_at_a_time():
  lock = background.TurnLock()
  inside, most = [0], [0]

  def work():
    for _ in range(50):
      with lock.turn():
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.0001)
        inside[0] -= 1

  threads = [threading.Thread(target=work) for _ in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert most == [1]


_GLIBC = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt and mallinfo2 are glibc's")


@_GLIBC
def test_the_heap_counts_what_is_allocated_and_the_holes_freeing_leaves():
  before = background.heap_mb()
  # 64 MB in 48 KB blocks: below glibc's mmap threshold, so from the heap.
  blocks = [bytearray(48 << 10) for _ in range(1365)]
  held = background.heap_mb()
  del blocks[::2]  # Holes: the heap cannot shrink around them.
  holed = background.heap_mb()
  assert held["in_use"] - before["in_use"] > 60
  assert held["in_use"] - holed["in_use"] > 28 and holed["free"] - held["free"] > 28
  del blocks


@_GLIBC
def test_malloc_arenas_are_capped_on_glibc():
  assert background.fewer_malloc_arenas(2)


def _resident_mb() -> float:
  with open("/proc/self/statm", encoding="ascii") as f:
    return int(f.read().split()[1]) * 4096 / 2**20


@_GLIBC
def test_releasing_free_memory_gives_the_holes_pages_back():
  # 64 MB in 48 KB blocks from the heap, touched (bytearray zeroes them), then every other one
  # freed: 32 MB of holes the heap cannot shrink around, resident until released.
  blocks = [bytearray(48 << 10) for _ in range(1365)]
  del blocks[::2]
  holed = _resident_mb()
  assert background.release_free_memory()
  released = _resident_mb()
  # Each 48 KB hole holds 11 whole pages of its 12: about 29 MB can go back.
  assert holed - released > 20
  del blocks

"""generate.background: a thread that produces ahead, in order, with errors raised in place; the
process's malloc arenas capped."""

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



def test_the_fair_lock_goes_in_the_order_it_was_asked_for():
  """A thread that releases the lock and asks again at once waits behind one already waiting
  (with a plain lock it would most often win again: the speech encoder starved stage 2)."""
  lock = background.FairLock()
  order = []

  def greedy():
    for k in range(3):
      with lock:
        order.append(f"greedy {k}")
        while k == 0 and len(lock._queue) < 2:  # pylint: disable=protected-access
          time.sleep(0.001)  # Until the other thread has asked.

  def other():
    with lock:
      order.append("other")

  first = threading.Thread(target=greedy)
  first.start()
  while not lock.locked():
    time.sleep(0.001)
  second = threading.Thread(target=other)
  second.start()
  first.join()
  second.join()
  assert order == ["greedy 0", "other", "greedy 1", "greedy 2"]
  assert not lock.locked()


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_malloc_arenas_are_capped_on_glibc():
  assert background.fewer_malloc_arenas(2)

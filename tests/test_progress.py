"""generate.progress: step lines with the time since the start, and a frame bar that starts after
the first batch (so its rate leaves out compilation)."""

import io
import re

from emotalk_jax.generate import progress


def test_steps_name_what_is_done_and_when():
  out = io.StringIO()
  status = progress.Progress(stream=out)
  status.step("finding the face")
  status.step("reading the speech")
  lines = out.getvalue().splitlines()
  assert [re.sub(r"\(\d+\.\d s\)", "(T)", l) for l in lines] == [
      "emotalk: finding the face (T)", "emotalk: reading the speech (T)"]


def test_the_frame_bar_starts_after_the_first_batch_counting_it():
  out = io.StringIO()
  bar = progress.Progress(stream=out).frames(total=40, first_batch=8)
  for _ in range(7):
    bar.update(1)
  assert out.getvalue() == ""  # Still compiling: no bar, no rate extrapolated from it.
  bar.update(1)
  assert "8/40" in out.getvalue()
  for _ in range(32):
    bar.update(1)
  bar.close()
  assert "40/40" in out.getvalue()


def test_disabled_progress_writes_nothing():
  out = io.StringIO()
  status = progress.Progress(enabled=False, stream=out)
  status.step("finding the face")
  bar = status.frames(total=10, first_batch=2)
  for _ in range(10):
    bar.update(1)
  bar.close()
  assert out.getvalue() == ""

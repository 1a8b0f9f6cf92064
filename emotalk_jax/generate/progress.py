"""What generation is doing, on stderr: one line per step as it starts, then a frame bar.

Light on imports (tqdm only when the bar starts), so the command line shows its first line before
JAX is imported.
"""

import sys
import time


class Progress:
  """Step lines ("emotalk: finding the face (1.2 s)") and a frame bar.

  The bar starts after the first batch of frames is rendered, counting those, so its rate and ETA
  come from rendering alone, not from compiling stage 2.
  """

  def __init__(self, enabled: bool = True, stream=None):
    self.enabled = enabled
    self._stream = stream
    self._start = time.perf_counter()

  def step(self, text: str) -> None:
    if self.enabled:
      stream = self._stream or sys.stderr
      print(f"emotalk: {text} ({time.perf_counter() - self._start:.1f} s)", file=stream,
            flush=True)

  def frames(self, total: int, first_batch: int) -> "FrameBar":
    """A bar over `total` frames that appears once `first_batch` frames are done."""
    return FrameBar(self, total, first_batch)


class FrameBar:
  """`update(1)` per frame; the tqdm bar is made at the `first_batch`-th."""

  def __init__(self, progress: Progress, total: int, first_batch: int):
    self._progress, self._total, self._first = progress, total, max(1, min(first_batch, total))
    self._done, self._bar = 0, None

  def update(self, frames: int) -> None:
    self._done += frames
    if self._bar is not None:
      self._bar.update(frames)
    elif self._progress.enabled and self._done >= self._first:
      from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
      self._bar = tqdm.tqdm(total=self._total, initial=self._done, desc="generate", unit="frame",
                            file=self._progress._stream or sys.stderr, dynamic_ncols=True,
                            mininterval=0.5)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()

"""bench/networks.py: `emotalk bench landmark` (the stage 1 benchmark) and the timing both benchmarks
share."""

import json

import pytest


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_landmark_benchmark_returns_every_figure_positive():
  """`emotalk bench landmark` on a tiny budget: every figure is there and positive (timings not
  asserted)."""
  from emotalk_jax.bench import networks as bench  # pylint: disable=g-import-not-at-top
  result = bench.landmark_benchmark(train_steps=2, clip_seconds=12.0, infer_repeats=1)
  json.dumps(result)
  assert result["clip_frames"] == 300 and result["batch_size"] * result["window"] > 0
  for key in ("train_steps_per_s", "train_examples_per_s", "inference_fps_one_call",
              "inference_fps_streamed"):
    assert result[key] > 0, key


def test_calls_per_second_is_the_median_round_after_an_untimed_first_call(monkeypatch):
  """A scripted clock: the first (compiling) call takes 100 s and is not timed; three rounds of two
  calls take 1, 10 and 2 s a call, so the rates are 1, 0.1 and 0.5 calls/s and the median is 0.5."""
  from emotalk_jax.bench import networks as bench  # pylint: disable=g-import-not-at-top
  clock = {"now": 0.0}
  durations = iter([100.0] + [1.0] * 2 + [10.0] * 2 + [2.0] * 2)

  def call():
    clock["now"] += next(durations)
    return ()

  monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["now"])
  assert bench._steps_per_second(call, tuple, 2, rounds=3) == 0.5
  with pytest.raises(StopIteration):  # Exactly 1 + 3 x 2 calls were made.
    call()

"""bench/networks.py: `emotalk bench landmark` (the stage 1 benchmark)."""

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

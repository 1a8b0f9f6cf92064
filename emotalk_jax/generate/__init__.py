"""Inference: photo + speech + emotion -> video (`pipeline`), the driving signals (emotion
schedules, blinks,
smoothing: `driving`) and the one-shot fine-tune on the photo (`finetune`). Never imports a trainer
  or
TensorFlow."""

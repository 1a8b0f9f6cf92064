#!/usr/bin/env bash
# The GPU figures of docs/results.md#generation-speed-and-memory, on a machine with one NVIDIA GPU
# (CUDA 12 drivers), from the repository root:
#
#   bash tools/bench_gpu.sh [OUT_DIR]     # default emotalk_out/bench_gpu; about 15 minutes
#
# Writes one JSON file per benchmark into OUT_DIR: the network alone (stage 2 frames/s at batch 1,
# 8, 32 and 256, at 128 and 256) and end to end (a fresh process per run: first frame, frames/s
# for 10 / 60 / 300 s of speech, at batch 1 and 64). Each JSON names the device it ran on.
set -euo pipefail
out="${1:-emotalk_out/bench_gpu}"
mkdir -p "$out"
pip install -q -e ".[cuda]"
python -c "import jax; print(jax.devices())" | tee "$out/devices.txt"
emotalk bench texture --batch 256 | tee "$out/texture.json"
emotalk bench speech | tee "$out/speech.json"
for batch in 1 64; do
  emotalk bench generate --sizes 128,256 --lengths 10,60,300 --batch "$batch" \
    | tee "$out/generate_batch$batch.json"
done
echo "wrote $out"

#!/usr/bin/env bash
# The README's first command: install what is missing, build, train fmnist-cnn for one
# epoch on Fashion-MNIST and evaluate the checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p runs
build/lowbit train --model fmnist-cnn --epochs 1 --out runs/demo-cnn.safetensors --metrics runs/demo-cnn.jsonl
build/lowbit eval --model fmnist-cnn --ckpt runs/demo-cnn.safetensors --json

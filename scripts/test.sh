#!/usr/bin/env bash
# The README's second command: build and run every test (ctest), then the same tests
# built with AddressSanitizer and UndefinedBehaviorSanitizer.
#   scripts/test.sh            both builds
#   scripts/test.sh --fast     the optimised build only
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
# One test at a time: each test already runs on every core through OpenMP, and two
# OpenMP processes spin-waiting on the same cores slow each other down a hundredfold.
ctest --test-dir build --output-on-failure
if [[ "${1:-}" != "--fast" ]]; then
  # -O1 keeps the sanitizer build quick enough for CI
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLB_SANITIZE=ON -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure
fi

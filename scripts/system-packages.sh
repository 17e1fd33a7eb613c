#!/usr/bin/env bash
# Debian packages Kairos and its tests need, installed only when missing:
#   ffmpeg                 decodes video and makes the audio test files in other codecs
#   espeak-ng              speaks the English and French test and sample sentences
#   pocketsphinx-testdata  real speech with reference transcripts (LibriVox clips)
#   libopenblas-dev        the encoders' large matrix products (kairos links OpenBLAS; 2x candle's
#                          gemm on them, docs/benchmarks.md)
# and with --tests, what only the test suite uses:
#   chromium chromium-driver  the headless browser the web UI tests drive over WebDriver
#   sqlite3                   damages a catalog behind the indexes' back (doctor --check tests)
set -euo pipefail
packages=(ffmpeg espeak-ng pocketsphinx-testdata libopenblas-dev)
[ "${1:-}" = "--tests" ] && packages+=(chromium chromium-driver sqlite3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

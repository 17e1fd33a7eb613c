#!/usr/bin/env bash
# Writes a sample news video: four shots from ffmpeg's test sources (640×360, 25 fps, H.264) with
# two synthesized reports (espeak-ng) spoken over them at known times (2 s and 15 s), and a title
# and creation date in the container.
# usage: scripts/sample-video.sh OUT_DIR
set -euo pipefail
out="$1"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v en -s 160 -w "$tmp/one.wav" \
  "In the pool tonight, the swimmer broke the world record in the final of the relay."
espeak-ng -v en -s 160 -w "$tmp/two.wav" \
  "Heavy rain stopped the tennis match on the centre court for an hour."
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=s=640x360:r=25:d=7" \
  -f lavfi -i "smptebars=s=640x360:r=25:d=6" \
  -f lavfi -i "gradients=s=640x360:r=25:speed=0.05:d=8" \
  -f lavfi -i "rgbtestsrc=s=640x360:r=25:d=7" \
  -i "$tmp/one.wav" -i "$tmp/two.wav" \
  -filter_complex "[0:v][1:v][2:v][3:v]concat=n=4:v=1:a=0,format=yuv420p[v];\
[4:a]adelay=2000:all=1[a1];[5:a]adelay=15000:all=1[a2];\
[a1][a2]amix=inputs=2:duration=longest:normalize=0,apad=whole_dur=28[a]" \
  -map "[v]" -map "[a]" -c:v libx264 -preset veryfast -c:a aac -t 28 \
  -metadata title="Evening news (sample)" -metadata creation_time=2024-08-03T19:00:00Z \
  "$out/evening-news.mp4"
echo "sample video in $out"

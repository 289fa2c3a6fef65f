"""Regenerate data/files/*.tsv from a local mirror's MANIFEST.tsv (maintainers only).

usage: python data/make_file_lists.py ../shared/data

Each output row is: path (relative to the dataset folder), url, hash. Byte-identical copies
are checked by the file's sha256. BSD100 is downloaded as the original Berkeley JPEG and stored
as lossless PNG, so it is checked by ``pixels:<sha256 of the decoded RGB/L array>``.
"""
import csv
import hashlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image

GROUPS = {  # dataset → folder under the data root (must match data/datasets.tsv)
    "set5": "sr/Set5", "set14": "sr/Set14", "bsd100": "sr/BSD100", "styles": "styles",
    "content": "content", "reference-outputs": "reference_outputs", "coco-val-sample": "coco",
}


def pixel_hash(path: Path) -> str:
    with Image.open(path) as im:
        arr = np.asarray(im)
    return "pixels:" + hashlib.sha256(str(arr.shape).encode() + arr.tobytes()).hexdigest()


def main(root: Path) -> None:
    rows = list(csv.DictReader(open(root / "MANIFEST.tsv"), delimiter="\t"))
    out_dir = Path(__file__).parent / "files"
    for name, folder in GROUPS.items():
        lines = ["path\turl\thash"]
        for r in rows:
            if not r["path"].startswith(folder + "/"):
                continue
            url = f"https://raw.githubusercontent.com/{r['source_repo']}/{r['source_commit']}/{r['source_path']}"
            rel = r["path"][len(folder) + 1:]
            digest = "sha256:" + r["sha256"] if r["transform"].startswith("none") else pixel_hash(root / r["path"])
            lines.append(f"{rel}\t{url}\t{digest}")
        (out_dir / f"{name}.tsv").write_text("\n".join(lines) + "\n")
        print(name, len(lines) - 1)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

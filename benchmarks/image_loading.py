"""Image-folder loading, side by side: the loader as it is against decoding every image whole.

Two choices of the `imagefolder` loader are measured on folders written here (generated photos,
smooth enough to compress as photos do): JPEGs decode at the reduced scale that still covers the
size trained at (PIL's draft mode) instead of whole, and small images of several sizes train at
their median size instead of 224 px. Each figure is milliseconds a sample over every sample of the
folder, the best of ``--repeat`` passes; the reduced decode's mean absolute pixel difference from
the whole one is printed beside it.

    .venv/bin/python benchmarks/image_loading.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from noisyctl.data import load_dataset


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth random picture: a few blurred colour fields, compressing as photos do."""
    small = rng.integers(0, 256, (max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BICUBIC)


def write_folder(root: Path, sizes: list[tuple[int, int]], suffix: str, per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            photo(rng, *sizes[i % len(sizes)]).save(root / label / f"{i}.{suffix}", quality=90)
    return root


def whole_decode(sample_set, index: int) -> np.ndarray:
    """The loader's resize and centre crop from the image decoded whole (as before draft mode)."""
    with Image.open(sample_set.root / sample_set.ids[index]) as image:
        image = image.convert("RGB")
        size = sample_set.size
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.BILINEAR)
        left, top = (width - size) // 2, (height - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0


def per_sample_ms(load, count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(count):
            load(i)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = Table(title="imagefolder loading, ms a sample (best of passes)")
    for column in ("images", "trained at", "as loaded now", "decoded whole", "ratio", "mean pixel difference"):
        table.add_column(column, justify="left" if column == "images" else "right")
    with tempfile.TemporaryDirectory() as folder:
        for name, sizes in (("2000 x 1500 JPEG photos", [(2000, 1500)]), ("1024 x 768 JPEG photos", [(1024, 768)]),
                            ("500 x 375 JPEG photos", [(500, 375)])):
            root = write_folder(Path(folder) / name.split()[0], sizes, "jpg", args.per_class)
            data = load_dataset({"name": "imagefolder", "root": str(root), "options": {"normalize": False}})
            train = data.train
            now = per_sample_ms(train.load, len(train), args.repeat)
            whole = per_sample_ms(lambda i: whole_decode(train, i), len(train), args.repeat)
            difference = np.mean([np.abs(train.load(i).numpy().transpose(1, 2, 0) - whole_decode(train, i)).mean()
                                  for i in range(len(train))])
            table.add_row(name, f"{train.size} px", f"{now:.1f}", f"{whole:.1f}", f"{whole / now:.1f}x",
                          f"{difference:.4f}")
        # Small crops of several sizes: trained at their median size now, at 224 px before.
        root = write_folder(Path(folder) / "crops", [(20, 24), (22, 22), (24, 20), (21, 23)], "png", args.per_class)
        data = load_dataset({"name": "imagefolder", "root": str(root), "options": {"normalize": False}})
        enlarged = load_dataset({"name": "imagefolder", "root": str(root), "options": {"normalize": False,
                                                                                        "size": 224}})
        now = per_sample_ms(data.train.load, len(data.train), args.repeat)
        before = per_sample_ms(enlarged.train.load, len(enlarged.train), args.repeat)
        table.add_row("20-24 px PNG crops", f"{data.train.size} px (224 before)", f"{now:.2f}",
                      f"{before:.2f} at 224 px", f"{before / now:.1f}x", "-")
    table.caption = "the crops' row is loading alone: a model costs about (224 / size)^2 as much more at 224 px"
    Console(width=110).print(table)


if __name__ == "__main__":
    main()

"""Real-asset loaders: the official fill50k folder, diffusers' dataset columns, and an HF `datasets` cache.

- fill50k folder (lllyasviel/ControlNet training/fill50k): source/N.png (condition), target/N.png (image),
  prompt.json with one JSON object per line: {"source": "source/N.png", "target": "target/N.png",
  "prompt": "..."}.
- diffusers' train_controlnet.py columns: image, conditioning_image, text.
Both give the same sample dict as the procedural set: image in [-1,1], cond in [0,1], prompt.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...checks import check_positive, fail
from .fill50k import Fill50K, to_pil


def _to_tensor(img, size: int | None, unit: bool) -> torch.Tensor:
    """PIL image -> (3, H, W) float in [0,1] (unit) or [-1,1], resized to size x size if given."""
    img = img.convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0
    return x if unit else x * 2 - 1


def read_prompt_json(root: str | Path) -> list[dict]:
    """The lines of prompt.json, checked: each names an existing source and target and a string prompt."""
    root = Path(root)
    path = root / "prompt.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no prompt.json in the fill50k folder {root}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: expected a JSON object, received {line[:80]!r} ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, received {type(row).__name__}")
        for key in ("source", "target", "prompt"):
            if not isinstance(row.get(key), str):
                raise ValueError(f"{where}: expected a string field {key!r}, received {row.get(key)!r}")
        for key in ("source", "target"):
            if not (root / row[key]).is_file():
                raise ValueError(f"{where}: {key} file {root / row[key]} does not exist")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: expected at least one line, received an empty file")
    return rows


class Fill50KFolder(torch.utils.data.Dataset):
    """The real fill50k folder as (image, cond, prompt) samples, resized to `size` (cond: size * factor)."""

    def __init__(self, root: str | Path, size: int | None = None, cond_factor: int = 1):
        self.root, self.rows = Path(root), read_prompt_json(root)
        self.size, self.cond_factor = size, cond_factor

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        cs = self.size * self.cond_factor if self.size else None
        try:
            image = _to_tensor(Image.open(self.root / row["target"]), self.size, unit=False)
            cond = _to_tensor(Image.open(self.root / row["source"]), cs, unit=True)
        except OSError as e:
            raise ValueError(f"{self.root / 'prompt.json'}, line {i + 1}: cannot read image ({e})") from None
        return {"image": image, "cond": cond, "prompt": row["prompt"]}

    @property
    def n(self) -> int:
        """A finite set: `batch_at` visits it in a fresh permutation per epoch, as it does `n_train`."""
        return len(self.rows)

    def batch(self, indices) -> dict:
        """Samples stacked as the procedural sets' `batch` gives them (image, cond, prompt)."""
        items = [self[int(i)] for i in indices]
        return {"image": torch.stack([x["image"] for x in items]), "cond": torch.stack([x["cond"] for x in items]),
                "prompt": [x["prompt"] for x in items]}


class DiffusersColumns(torch.utils.data.Dataset):
    """A `datasets.Dataset` with diffusers' ControlNet columns (image, conditioning_image, text)."""

    def __init__(self, ds, size: int | None = None, cond_factor: int = 1, image_column: str = "image",
                 conditioning_image_column: str = "conditioning_image", caption_column: str = "text"):
        for arg, col in [("image_column", image_column), ("conditioning_image_column", conditioning_image_column),
                         ("caption_column", caption_column)]:
            if col not in ds.column_names:
                fail(arg, f"a column of the dataset {ds.column_names}", repr(col))
        self.ds, self.size, self.cond_factor = ds, size, cond_factor
        self.cols = (image_column, conditioning_image_column, caption_column)

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        row = self.ds[i]
        im, co, tx = (row[c] for c in self.cols)
        if not isinstance(tx, str):
            fail(f"dataset row {i}, column {self.cols[2]!r}", "a string caption", type(tx).__name__)
        cs = self.size * self.cond_factor if self.size else None
        return {"image": _to_tensor(im, self.size, unit=False), "cond": _to_tensor(co, cs, unit=True), "prompt": tx}


def to_hf_dataset(data: Fill50K, n: int, cache_dir: str | Path | None = None, chunk: int = 256):
    """A fixed-size procedural Fill50K as an Arrow-backed `datasets.Dataset` with diffusers' columns
    (image, conditioning_image, text) plus fill / background indices for the metrics."""
    import datasets      # deferred: an optional extra (pip install cnref[data])
    check_positive("n", n, integer=True)

    def gen():
        for start in range(0, n, chunk):
            b = data.batch(range(start, min(n, start + chunk)))
            for img, cond, p, f, g in zip(to_pil(b["image"]), to_pil(2 * b["cond"] - 1), b["prompt"],
                                          b["fill"].tolist(), b["background"].tolist()):
                yield {"image": img, "conditioning_image": cond, "text": p, "fill": f, "background": g}

    features = datasets.Features({"image": datasets.Image(), "conditioning_image": datasets.Image(),
                                  "text": datasets.Value("string"), "fill": datasets.Value("int64"),
                                  "background": datasets.Value("int64")})
    return datasets.Dataset.from_generator(gen, features=features,
                                           cache_dir=str(cache_dir) if cache_dir else None,
                                           gen_kwargs={}, keep_in_memory=cache_dir is None)


def write_fill50k_folder(data: Fill50K, n: int, root: str | Path) -> Path:
    """Write a procedural set in the official folder format (to test the loader, or to share a set)."""
    root = Path(root)
    (root / "source").mkdir(parents=True, exist_ok=True)
    (root / "target").mkdir(parents=True, exist_ok=True)
    b = data.batch(range(n))
    lines = []
    for i, (img, cond, p) in enumerate(zip(to_pil(b["image"]), to_pil(2 * b["cond"] - 1), b["prompt"])):
        cond.save(root / "source" / f"{i}.png")
        img.save(root / "target" / f"{i}.png")
        lines.append(json.dumps({"source": f"source/{i}.png", "target": f"target/{i}.png", "prompt": p}))
    (root / "prompt.json").write_text("\n".join(lines) + "\n")
    return root

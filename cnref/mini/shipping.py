"""How the base's weights are stored and shipped: safetensors in the package, one file per preset and dataset.

A shipped file stays <= 16 MiB. float32 fits at the smoke and cpu presets; the gpu base is compacted
(`compact_state`: float16, then int8 groups for its largest tensors) and upcast to float32 on loading.
`python -m cnref train base --preset <preset>` rebuilds a base.
"""
from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save, save_file

from .base import MiniSD
from ..checks import check_choice, fail
from .data import DATASETS
from .presets import NAMES, BaseConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHA256SUMS = WEIGHTS_DIR / "SHA256SUMS"     # `sha256sum` of every shipped file, checked by tests/test_shipping.py
SHIPPED_MAX_BYTES = 16 * 2 ** 20      # a shipped checkpoint stays <= 16 MiB
INT8_GROUP = 32


def save_base(model: MiniSD, path: str | Path, meta: dict | None = None, max_bytes: int | None = None) -> None:
    """float32 safetensors with the config in the metadata; with `max_bytes`, the smallest lossy storage that
    fits (see `compact_state`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.float() if v.is_floating_point() else v).detach().contiguous()
             for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(asdict(model.cfg)), **(meta or {})}
    if max_bytes is not None and _nbytes(state) > max_bytes:
        state, meta["stored_dtype"] = compact_state(state, max_bytes, meta)
    save_file(state, str(path), metadata={k: str(v) for k, v in meta.items()})


# Keys that older shipped files hold in their config and BaseConfig no longer has: the base never sees
# conditions, so the condition factor is the design's (`control.factor` of a run's config).
LEGACY_KEYS = ("cond_factor",)


def load_base_file(path: str | Path) -> MiniSD:
    """A base written by `save_base` (any storage), in float32."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no base weights at {path}; rebuild them with "
                                f"`python -m cnref train base --preset <preset> [--set data=scenes]` (see README)")
    with safe_open(str(path), "pt") as f:
        conf = json.loads(f.metadata()["config"])
    cfg = BaseConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in conf.items() if k not in LEGACY_KEYS})
    model = MiniSD(cfg)
    model.load_state_dict(expand_state(load_file(str(path))))
    return model


def base_path(preset: str, data: str = "fill50k") -> Path:
    check_choice("preset", preset, NAMES)
    check_choice("data", data, DATASETS)
    return WEIGHTS_DIR / (f"base_{preset}.safetensors" if data == "fill50k" else f"base_{preset}_{data}.safetensors")


@functools.cache
def base_sha256(preset: str, data: str = "fill50k") -> str:
    """The sha256 of a shipped base file: part of the key by which a finished run is reused as a baseline."""
    return hashlib.sha256(base_path(preset, data).read_bytes()).hexdigest()


def made_on_shipped_base(result: dict) -> bool:
    """Whether a result was made on the base shipped now: its recorded base_sha256, or for results from before
    it was recorded, whether the base file's last change of content (added or modified, through renames: the
    weights moved folders without changing) is an ancestor of the result's commit."""
    c = result["config"]
    path = base_path(c["preset"], c.get("data", "fill50k"))
    prov = result.get("provenance", {})
    if "base_sha256" in prov:
        return prov["base_sha256"] == base_sha256(c["preset"], c.get("data", "fill50k"))
    commit = prov.get("commit", "").split("+")[0].split(" ")[0]
    git = lambda *a: subprocess.run(["git", *a], cwd=WEIGHTS_DIR, capture_output=True, text=True, timeout=30)
    try:
        last = git("log", "-1", "--follow", "--diff-filter=AM", "--format=%H", "--", path.name).stdout.strip()
        return bool(commit and last) and git("merge-base", "--is-ancestor", last, commit).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def load_base(preset: str = "cpu", data: str = "fill50k") -> MiniSD:
    """The shipped, locked base of a preset and dataset (offline: read from the package)."""
    return load_base_file(base_path(preset, data)).lock()


def _nbytes(state: dict) -> int:
    return sum(v.numel() * v.element_size() for v in state.values())


def compact_state(state: dict, max_bytes: int, metadata: dict | None = None,
                  group: int = INT8_GROUP) -> tuple[dict, str]:
    """Fit a float32 state into a safetensors file of `max_bytes` (header and `metadata` included):
    everything in float16, then the largest weight tensors in int8 until it fits.

    int8 is symmetric per group of `group` consecutive weights, w ≈ q · s with s = max|w_group| / 127
    (s stored as float16 under `<name>.int8_scale`). Largest-first because the small tensors (embeddings,
    norms, time MLP) are the sensitive ones: on the gpu base, int8 for every weight raised the eps loss by
    4%, int8 for its ~30 largest tensors (about half the parameters) changed the eps prediction by an MSE
    of 3e-8 against a loss of 1.8e-3. Returns the state and a description for the file's metadata.
    """
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    out = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    header = len(save(out, meta)) - _nbytes(out) + 1024     # + room for the scales' entries and this note
    by_size = sorted((k for k, v in state.items() if v.dim() >= 2 and v.is_floating_point()),
                     key=lambda k: -state[k].numel())
    quantized = []
    for k in by_size:
        if _nbytes(out) + header + 96 * len(quantized) <= max_bytes:
            break
        w = state[k]
        rows = w.reshape(-1, group) if w.numel() % group == 0 else w.reshape(w.shape[0], -1)
        s = (rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-4) / 127).half().float()  # q from the stored s
        out[k] = torch.round(rows / s).clamp(-127, 127).to(torch.int8).reshape(w.shape)
        out[k + ".int8_scale"] = s.half()
        quantized.append(k)
    n = sum(state[k].numel() for k in quantized)
    note = (f"float16; int8 (groups of {group}, float16 scales) for the {len(quantized)} largest weight "
            f"tensors ({n} of {sum(v.numel() for v in state.values())} values); loading upcasts to float32")
    size = len(save(out, {**meta, "stored_dtype": note}))
    if size > max_bytes:
        fail("max_bytes", f"room for the compacted state ({size} bytes)", max_bytes)
    return out, note


def expand_state(state: dict) -> dict:
    """Inverse of `compact_state`: float32 tensors, int8 groups times their scales."""
    out = {}
    for k, v in state.items():
        if k.endswith(".int8_scale"):
            continue
        if k + ".int8_scale" in state:
            s = state[k + ".int8_scale"].float()
            v = (v.float().reshape(s.shape[0], -1) * s).reshape(v.shape)
        out[k] = v.float() if v.is_floating_point() else v
    return out

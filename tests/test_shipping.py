"""The shipped bases: they load offline, fit the size limit, and a compacted file round-trips."""
import pytest
import torch

from cnref.mini.presets import preset
from cnref.mini.shipping import SHIPPED_MAX_BYTES, base_path, compact_state, expand_state, load_base, load_base_file, save_base


def test_shipped_bases_load_offline():
    for name in ("smoke", "cpu", "gpu"):
        base = load_base(name)
        assert base.cfg == preset(name).base
        assert all(not p.requires_grad for p in base.parameters())
        assert base_path(name).stat().st_size <= SHIPPED_MAX_BYTES    # the shipping limit (gpu: compacted)


def test_compact_state_fits_and_bounds_the_rounding(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {"big.weight": torch.randn(64, 32, 3, 3, generator=g), "odd.weight": torch.randn(7, 5, generator=g),
             "small.weight": torch.randn(16, 4, generator=g), "norm.bias": torch.randn(64, generator=g)}
    float16_bytes = 2 * sum(v.numel() for v in state.values())
    small, note = compact_state(state, max_bytes=float16_bytes)          # float16 alone overflows the headroom
    assert small["big.weight"].dtype == torch.int8 and small["small.weight"].dtype == torch.float16
    assert "int8" in note and "1 largest" in note
    assert sum(v.numel() * v.element_size() for v in small.values()) <= float16_bytes
    back = expand_state(small)
    assert set(back) == set(state) and all(v.dtype == torch.float32 for v in back.values())
    # per group of 32: |w - q s| <= s / 2 = max|w_group| / 254 (plus the scale's float16 rounding)
    w = state["big.weight"].reshape(-1, 32)
    err = (back["big.weight"].reshape(-1, 32) - w).abs().amax(dim=1)
    assert torch.all(err <= w.abs().amax(dim=1) / 254 * 1.01)
    assert torch.allclose(back["small.weight"], state["small.weight"], atol=2e-3)   # float16 only
    with pytest.raises(ValueError, match="max_bytes"):
        compact_state(state, max_bytes=1000)


def test_save_with_a_size_limit_round_trips(tmp_path):
    base = load_base("smoke")
    full = sum(p.numel() for p in base.state_dict().values()) * 4
    save_base(base, tmp_path / "b.safetensors", max_bytes=full // 2)    # float16 alone does not fit
    assert (tmp_path / "b.safetensors").stat().st_size <= full // 2
    again = load_base_file(tmp_path / "b.safetensors")
    for (k, v), w in zip(base.state_dict().items(), again.state_dict().values()):
        assert torch.allclose(v, w, atol=0.02 * v.abs().max().item() + 1e-3), k


def test_missing_weights_say_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m cnref train base"):
        load_base_file(tmp_path / "nope.safetensors")


def test_shipped_files_match_their_recorded_sha256():
    from cnref.mini.shipping import SHA256SUMS, WEIGHTS_DIR, base_sha256
    sums = dict(reversed(line.split()) for line in SHA256SUMS.read_text().splitlines())
    assert set(sums) == {p.name for p in WEIGHTS_DIR.glob("*.safetensors")}
    import hashlib
    for name, digest in sums.items():
        assert hashlib.sha256((WEIGHTS_DIR / name).read_bytes()).hexdigest() == digest, name
    assert base_sha256("cpu") == sums["base_cpu.safetensors"]


def test_reuse_needs_the_shipped_base():
    """A baseline is reused only if it was made on the base shipped now: by its recorded hash, or (older
    results) by the base file's last change being an ancestor of the result's commit."""
    from cnref.lab.results import results_root
    from cnref.mini.shipping import base_sha256, made_on_shipped_base
    import json
    r = json.loads((results_root() / "sudden_convergence" / "cpu" / "controlnet" / "seed3.json").read_text())
    assert made_on_shipped_base(r)                                             # an older result, by ancestry
    assert made_on_shipped_base({**r, "provenance": {**r["provenance"], "base_sha256": base_sha256("cpu")}})
    assert not made_on_shipped_base({**r, "provenance": {**r["provenance"], "base_sha256": "0" * 64}})
    assert not made_on_shipped_base({**r, "provenance": {**r["provenance"], "commit": "0" * 40}})

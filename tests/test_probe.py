"""cnref.probe: the gate measurements on a smoke run, and the readout on synthetic cases with a known answer."""
from dataclasses import replace

import pytest
import torch

from cnref.presets import preset
from cnref.probe import ridge_readout
from cnref.train import train_controlnet


def test_readout_finds_a_mask_that_is_there_and_not_one_that_is_not():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centres = torch.rand(20, 2, generator=g) * 8 + 4
    mask = ((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2 < 16).float()[:, None]
    noise = torch.randn(20, 6, 16, 16, generator=g)
    train = torch.arange(20) % 2 == 0
    # one channel carries the mask (scaled, shifted, a little noise): the held-out discs are found exactly
    carries = torch.cat([noise, 3 * mask - 1 + 0.05 * torch.randn(20, 1, 16, 16, generator=g)], 1)
    assert ridge_readout(carries, mask, train) > 0.99
    # features that know nothing of the disc: the readout cannot place it
    assert ridge_readout(noise, mask, train) < 0.2


@pytest.mark.slow
def test_instrumented_run_records_the_gate_and_the_readout(tmp_path):
    cfg = replace(preset("smoke").train, steps=4, instrument=True)
    m = train_controlnet(cfg, tmp_path / "run")
    first, last = m.history[0], m.history[-1]
    assert len(first["gate"]["ratio"]) == 13 and len(first["gate"]["w_norm"]) == 14
    # zero convolutions: at step 0 nothing leaves the ControlNet and every Z2 weight is zero
    assert all(r == 0 for r in first["gate"]["ratio"]) and all(w == 0 for w in first["gate"]["w_norm"][1:])
    assert all(g is None for g in first["gate"]["g_norm"])                  # no step taken yet
    # after a few AdamW steps the gate has opened a little, and the gradients that opened it are recorded
    assert all(0 < r < 1 for r in last["gate"]["ratio"]) and all(w > 0 for w in last["gate"]["w_norm"])
    assert all(g is not None and g >= 0 for g in last["gate"]["g_norm"])
    assert 0 <= first["readout"]["copy"] <= 1 and first["readout"]["residual"] == 0.0   # a zero residual holds nothing

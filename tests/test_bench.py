"""The benchmarks cannot rot: tiny-width runs of both (ratios are measured for real, not asserted)."""
import json
import statistics

import pytest
import torch

from cnref.mini.base import build_unet
from cnref.measure.bench import bench_sample, bench_sd15, bench_train
from cnref.cli import plot_sd15
from cnref.mini.presets import preset
from cnref.provenance import provenance



def test_train_bench_ratios_are_the_measured_medians():
    """Each mode's speed ratio is recomputed from its own timed steps, and lies in sane bounds: the same
    UNet and batch, so a ratio beyond 5x either way would mean a mode that does not do the same work."""
    torch.manual_seed(0)
    res = bench_train(build_unet(preset("smoke").base), 1, batch=2, repeats=3, modes=["diffusers", "cnref", "plain"])
    assert set(res["modes"]) == {"diffusers", "cnref", "plain"}
    ref = statistics.median(res["modes"]["diffusers"]["step_s"])
    for k, v in res["modes"].items():
        assert len(v["step_s"]) == 3 and all(s > 0 for s in v["step_s"])
        assert v["speed_vs_diffusers"] == pytest.approx(ref / statistics.median(v["step_s"]), rel=2e-3, abs=2e-3)
        assert 0.2 < v["speed_vs_diffusers"] < 5, (k, v)
        assert v["img_per_s"] == pytest.approx(2 / statistics.median(v["step_s"]), rel=2e-3)


@pytest.mark.slow        # about a minute: SD1.5-shaped steps in fresh processes
def test_sd15_bench_smoke_runs_fresh_processes(tmp_path):
    res = bench_sd15(width=32, batch=1, repeats=1, device="cpu",
                     modes=["plain", "diffusers", "cnref", "cnref_mid", "cnref_ckpt"])
    rows = res["modes"]
    assert all(len(r["step_s"]) == 1 and len(r["speed_vs_diffusers_per_round"]) == 1 for r in rows.values())
    assert rows["cnref_ckpt"]["trainable_params"] == rows["cnref"]["trainable_params"]
    assert all("error" not in r for r in rows.values()), rows
    # SD1.5's topology at width 32: ControlNet training leaves the UNet's parameters untouched
    assert rows["plain"]["trainable_params"] == rows["plain"]["unet_params"]
    assert 0 < rows["cnref"]["trainable_params"] < rows["plain"]["trainable_params"]
    assert rows["cnref"]["trainable_params"] == rows["diffusers"]["trainable_params"]
    assert rows["cnref_mid"]["trainable_params"] < rows["cnref"]["trainable_params"]
    assert rows["cnref"]["peak_memory_gib"] > 0 and "time_vs_plain" in rows["cnref"]
    # the committed figure is drawn by the same code from the JSON
    path = tmp_path / "sd15_smoke.json"
    path.write_text(json.dumps({"provenance": provenance(), "runs": [res]}))
    plot_sd15(path)
    assert path.with_suffix(".png").stat().st_size > 10_000


def test_sd15_rounds_pool_each_modes_steps_and_keep_one_ratio_per_round(monkeypatch):
    """Rounds repeat the sequence of modes (A B A B), each in its own process; here each process is a stand-in that
    reports known step times, so the pooling is checked against medians worked by hand."""
    import subprocess
    from types import SimpleNamespace
    times = {("diffusers", 0): [2.0, 4.0], ("cnref", 0): [1.0, 3.0], ("diffusers", 1): [6.0, 6.0], ("cnref", 1): [2.0, 2.0]}
    calls = []

    def fake_run(cmd, **kw):
        mode = cmd[cmd.index("--mode") + 1]
        rnd = sum(c == mode for c in calls)
        calls.append(mode)
        st = times[mode, rnd]
        row = {"mode": mode, "step_s": list(st), "median_step_s": statistics.median(st), "peak_memory_gib": 1.0 + rnd}
        return SimpleNamespace(returncode=0, stdout="progress\n" + json.dumps(row), stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    res = bench_sd15(width=32, batch=2, repeats=2, device="cpu", modes=["diffusers", "cnref"], rounds=2)
    assert calls == ["diffusers", "cnref", "diffusers", "cnref"]
    d, c = res["modes"]["diffusers"], res["modes"]["cnref"]
    assert d["step_s"] == [2.0, 4.0, 6.0, 6.0] and c["step_s"] == [1.0, 3.0, 2.0, 2.0]
    assert d["round_median_s"] == [3.0, 6.0] and c["round_median_s"] == [2.0, 2.0]
    assert d["median_step_s"] == 5.0 and c["median_step_s"] == 2.0         # medians of the pooled steps
    assert c["speed_vs_diffusers_per_round"] == [1.5, 3.0] and c["speed_vs_diffusers"] == 2.5
    assert c["img_per_s"] == 1.0 and c["peak_memory_gib"] == 2.0           # batch 2 / 2 s; the larger peak


def test_sample_bench_smoke_matches_the_pipeline_loop():
    res = bench_sample("smoke", n=4, steps=3, repeats=1)
    assert set(res["modes"]) == {"cnref", "diffusers_pipeline_loop"}
    # the same weights, noise and schedule: cnref's sampler and the pipeline's loop give the same images
    assert res["max_abs_pixel_diff"] < 1e-4


@pytest.mark.slow        # times whole instrumented smoke runs
def test_instrument_bench_counts_the_validations_a_run_makes(tmp_path):
    """The overhead's validation count is the one a real run with the same schedule records (its history)."""
    from dataclasses import replace

    from cnref.measure.costs import bench_instrument
    from cnref.mini.train import train_controlnet
    cfg = replace(preset("smoke").train, steps=4, val_every=2, instrument=True)
    res = bench_instrument(cfg, {"smoke": (cfg.steps, cfg.val_every)}, repeats=1)
    run = train_controlnet(cfg, tmp_path / "run")
    assert res["runs"]["smoke"]["validations"] == len(run.history)
    assert all(k in run.history[-1] for k in ("gate", "readout"))
    assert all(v > 0 for v in res["median_s"].values()) and 0 < res["runs"]["smoke"]["overhead"] < 1


def test_successors_bench_smoke_measures_every_kind_against_the_controlnet(tmp_path):
    from cnref.measure.costs import bench_successors
    from cnref.measure.costs import KINDS
    res = bench_successors("smoke", batch=2, n=2, steps=2, repeats=1)
    assert set(res["kinds"]) == set(KINDS)
    cn = res["kinds"]["controlnet"]
    for k, v in res["kinds"].items():
        assert v["trainable_params"] > 0 and len(v["s"]["train"]) == len(v["s"]["sample"]) == 1
        # each ratio is the kind's own median against the ControlNet's, from the times it reports
        assert v["sample_cost_vs_controlnet"] == pytest.approx(v["s"]["sample"][0] / cn["s"]["sample"][0], rel=1e-2)
        assert v["train_speed_vs_controlnet"] == pytest.approx(cn["s"]["train"][0] / v["s"]["train"][0], rel=1e-2)
    # a speed claim reads one median per kind and fresh process (here the same process twice)
    from cnref.measure.costs import process_row
    from cnref.lab.claims import CLAIMS, runs_of, value
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "successors_smoke_processes.json").write_text(json.dumps({"processes": [process_row(res)] * 2}))
    c = next(c for c in CLAIMS if c.a == "bench:successors:t2i_adapter")
    assert [value(r, c.key, c.setting) for r in runs_of(c.a, {}, "smoke", tmp_path)] == \
        [statistics.median(res["kinds"]["t2i_adapter"]["s"]["sample"])] * 2



def test_flops_are_counted_on_shapes_alone_and_add_up():
    """count_flops at the cpu preset's shape (meta device: nothing computed): the base's share is the plain UNet's
    forward counted here, twice per DDIM step; every design costs at least the base; the adapter, which reads the
    condition once per image, adds almost nothing per image; the ControlNet adds its trainable copy at every step."""
    from torch.utils.flop_counter import FlopCounterMode
    from cnref.measure.costs import count_flops
    from cnref.mini.base import build_unet
    from cnref.mini.presets import preset
    res = count_flops("cpu", steps=4)
    cfg = preset("cpu").base
    with torch.device("meta"):
        unet = build_unet(cfg)
        with FlopCounterMode(display=False) as fc:
            unet(torch.randn(2, 3, cfg.size, cfg.size), torch.tensor([1, 1]), torch.randn(2, cfg.max_tokens, cfg.text_width))
    assert res["base_image_gflop"] == pytest.approx(4 * fc.get_total_flops() / 1e9, rel=1e-3)
    k = res["kinds"]
    assert all(v["image_gflop"] >= res["base_image_gflop"] for v in k.values())
    assert k["t2i_adapter"]["image_gflop"] < 1.05 * res["base_image_gflop"] < k["controlnet"]["image_gflop"]
    assert k["controlnet"]["image_vs_controlnet"] == 1.0 and k["controlnet"]["trainable_params"] > 1e6
    with pytest.raises(ValueError, match="`shape`: expected 'cpu' or 'sd15'"):
        count_flops("sd21")


def test_interleaving_times_each_mode_in_turn_against_a_known_clock():
    """The benches' timer against sleeps of known length: each mode's repeats after the warm-up, in turn, and a
    mode that sleeps twice as long measured about twice as long (an independent clock, not the bench's own)."""
    import time
    from cnref.measure.bench import interleaved
    order = []
    fns = {"a": lambda _: (order.append("a"), time.sleep(0.02)), "b": lambda _: (order.append("b"), time.sleep(0.04))}
    t = interleaved(fns, None, repeats=3, warmup=1)
    assert order == ["a", "b"] * 4 and [len(v) for v in t.values()] == [3, 3]
    assert all(x >= 0.02 for x in t["a"]) and all(x >= 0.04 for x in t["b"])
    assert 1.5 < statistics.median(t["b"]) / statistics.median(t["a"]) < 2.5

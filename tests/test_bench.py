"""The benchmarks cannot rot: tiny-width runs of both (ratios are measured for real, not asserted)."""
import torch

from cnref.base import BaseConfig, build_unet
from cnref.bench import bench_sd15, bench_train


def test_train_bench_smoke():
    torch.manual_seed(0)
    res = bench_train(build_unet(BaseConfig.smoke()), 1, batch=2, repeats=1, modes=["diffusers", "cnref", "plain"])
    assert set(res["modes"]) == {"diffusers", "cnref", "plain"}
    assert res["modes"]["diffusers"]["speed_vs_diffusers"] == 1.0
    assert all(v["img_per_s"] > 0 for v in res["modes"].values())


def test_sd15_bench_smoke_runs_fresh_processes(tmp_path):
    import json
    from cnref.bench import plot_sd15
    from cnref.provenance import provenance
    res = bench_sd15(width=32, batch=1, repeats=1, device="cpu",
                     modes=["plain", "diffusers", "cnref", "cnref_mid", "cnref_ckpt"], rounds=2)
    rows = res["modes"]
    # two rounds of fresh processes: each mode's step times pool, with one median and ratio per round
    assert all(len(r["step_s"]) == 2 and len(r["speed_vs_diffusers_per_round"]) == 2 for r in rows.values())
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
    assert plot_sd15(path).stat().st_size > 10_000


def test_sample_bench_smoke_matches_the_pipeline_loop():
    from cnref.bench import bench_sample
    res = bench_sample("smoke", n=4, steps=3, repeats=1)
    assert set(res["modes"]) == {"cnref", "diffusers_pipeline_loop"}
    # the same weights, noise and schedule: cnref's sampler and the pipeline's loop give the same images
    assert res["max_abs_pixel_diff"] < 1e-4

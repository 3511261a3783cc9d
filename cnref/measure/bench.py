"""Training-step benchmarks, always as ratios measured in one run (modes interleaved, same process).

`python -m cnref bench train --preset cpu` compares, on the base architecture of a preset:
- `plain`: optimising the whole UNet without ControlNet (the paper's baseline);
- `diffusers`: diffusers' `ControlNetModel.from_unet` + frozen UNet, in the loop of diffusers'
  examples/controlnet/train_controlnet.py (the peer);
- `cnref`: cnref's ControlNet + `controlled_unet` + fused AdamW (what `cnref.mini.train` runs);
- `cnref_adamw_loop`: the same with the per-tensor AdamW loop the peer uses (what fusing gains);
- `cnref_compile`: the same under torch.compile (compile time excluded: warm-up steps);
- `cnref_mid`: cnref with middle-block-only connections (small-scale training);
- `cnref_ckpt`: cnref with gradient checkpointing in the ControlNet and the locked UNet (memory for time).
Steps of the modes alternate (A B C D A B C D ...), so machine noise hits all alike; the median step time
of each mode and its ratio to the peer are reported.
"""
from __future__ import annotations

import copy
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from diffusers import ControlNetModel
from tqdm import tqdm
from torch.nn import functional as F

from ..mini.base import sample_scheduler, sd15_unet
from ..paper.control import controlled_unet
from ..paper.controlnet import ControlNet, ControlNetConfig, set_gradient_checkpointing
from ..mini.data import VAL_SEED, Fill50K
from ..paper.hint import official_channels
from ..mini.sample import generate
from ..mini.shipping import load_base
from ..mini.engine import controlnet_optimizer


def make_batch(unet, batch: int, factor: int, text_len: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    s, c = unet.config.sample_size, unet.config.in_channels
    return {"z_t": torch.randn(batch, c, s, s, generator=g), "eps": torch.randn(batch, c, s, s, generator=g),
            "t": torch.randint(0, 1000, (batch,), generator=g),
            "c_t": torch.randn(batch, text_len, unet.config.cross_attention_dim, generator=g),
            "cond": torch.rand(batch, 3, s * factor, s * factor, generator=g)}


def step_fns(unet, factor: int, modes: list[str], copy_plain: bool = True) -> dict:
    """One training-step closure per mode, each with its own AdamW. `plain` trains a copy of the UNet when
    other modes share it (interleaved runs); alone in a process it trains the UNet itself, so that no
    second 859.5M-parameter copy inflates its peak memory."""
    fns = {}
    for mode in modes:
        if mode == "plain":
            u = (copy.deepcopy(unet) if copy_plain else unet).requires_grad_(True).train()
            opt = torch.optim.AdamW(u.parameters(), lr=1e-5)

            def f(b, u=u, opt=opt):
                loss = F.mse_loss(u(b["z_t"], b["t"], b["c_t"]).sample.float(), b["eps"].float())
                loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        elif mode == "diffusers":
            net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=official_channels(factor)).train()
            opt = torch.optim.AdamW(net.parameters(), lr=1e-5)

            def f(b, net=net, opt=opt):      # examples/controlnet/train_controlnet.py
                down, mid = net(b["z_t"], b["t"], encoder_hidden_states=b["c_t"], controlnet_cond=b["cond"],
                                return_dict=False)
                pred = unet(b["z_t"], b["t"], encoder_hidden_states=b["c_t"],
                            down_block_additional_residuals=[s for s in down],
                            mid_block_additional_residual=mid).sample
                loss = F.mse_loss(pred.float(), b["eps"].float(), reduction="mean")
                loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        elif mode in ("cnref", "cnref_mid", "cnref_adamw_loop", "cnref_compile", "cnref_ckpt"):
            net = ControlNet(unet, ControlNetConfig(factor=factor, connections="mid_only" if mode == "cnref_mid"
                                                    else "full")).train()
            if mode == "cnref_ckpt":
                set_gradient_checkpointing(net)
            # cnref's training optimizer (fused AdamW); cnref_adamw_loop: the peer's default, for the gain
            opt = torch.optim.AdamW(net.parameters(), lr=1e-5) if mode == "cnref_adamw_loop" \
                else controlnet_optimizer(net.parameters(), 1e-5)
            u, fwd = unet, net
            if mode == "cnref_compile":
                u, fwd = torch.compile(unet), torch.compile(net)

            def f(b, net=net, opt=opt, u=u, fwd=fwd, ckpt=mode == "cnref_ckpt"):
                if ckpt:       # the UNet may be shared with other modes: checkpoint it only for this step
                    set_gradient_checkpointing(unet, True)
                pred = controlled_unet(u, b["z_t"], b["t"], b["c_t"], fwd(b["z_t"], b["t"], b["c_t"], b["cond"]))
                loss = F.mse_loss(pred.float(), b["eps"].float())
                loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
                if ckpt:
                    set_gradient_checkpointing(unet, False)
        else:
            raise ValueError(f"`modes`: expected plain, diffusers, cnref, cnref_mid, cnref_adamw_loop, cnref_compile "
                             f"or cnref_ckpt, received {mode!r}")
        fns[mode] = f
    return fns


def interleaved(fns: dict, batch: dict, repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    times = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f(batch)
            if r >= warmup:
                times[k].append(time.perf_counter() - t0)
    return times


def bench_train(unet, factor: int, batch: int, repeats: int, modes: list[str], text_len: int = 16) -> dict:
    unet = unet.requires_grad_(False).train()
    b = make_batch(unet, batch, factor, text_len)
    times = interleaved(step_fns(unet, factor, modes), b, repeats)
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med.get("diffusers")
    return {"batch": batch, "repeats": repeats,
            "modes": {k: {"median_step_s": round(med[k], 5), "img_per_s": round(batch / med[k], 2),
                          "speed_vs_diffusers": round(ref / med[k], 3) if ref else None,
                          "step_s": [round(x, 5) for x in times[k]]} for k in times}}


def fresh_processes(args: list[str], processes: int, out_dir, row) -> list[dict]:
    """`python -m cnref bench <args> --out <file>` in `processes` fresh processes, one after the other. Each
    interleaves its modes and gives one median time per mode, so a ratio between modes has one value per
    process, the unit a speed claim counts (timings within one process drift together). row: a process's
    result -> what is kept of it."""
    out = []
    for i in tqdm(range(processes), desc="fresh processes", unit="process"):
        path = Path(out_dir) / f"process{i}.json"
        subprocess.run([sys.executable, "-m", "cnref", "bench", *args, "--out", str(path)],
                       check=True, capture_output=True, text=True)
        out.append(row(json.loads(path.read_text())))
    return out


def bench_train_processes(preset: str, modes: list[str], batch: int, repeats: int, processes: int,
                          out_dir) -> list[dict]:
    """`bench_train` in fresh processes (`fresh_processes`): per process and mode, the median step time."""
    return fresh_processes(["train", "--preset", preset, "--modes", *modes, "--batch", str(batch),
                            "--repeats", str(repeats)], processes, out_dir,
                           lambda res: {m: {"median_step_s": v["median_step_s"], "step_s": v["step_s"]}
                                        for m, v in res["modes"].items()})


# ------------------------------------------------------------------------ SD1.5 scale
SD15_MODES = ["plain", "diffusers", "cnref", "cnref_fast", "cnref_mid", "cnref_ckpt"]


def _peak_memory_gib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20      # kB -> GiB (Linux)


def sd15_mode(mode: str, width: int, batch: int, repeats: int, device: str, warmup: int = 1) -> dict:
    """Time one mode in this (fresh) process: median step time, images/s, peak memory, trainable params."""
    dev = torch.device(device)
    torch.manual_seed(0)
    unet = sd15_unet(width=width).to(dev)
    fast = mode == "cnref_fast"
    # fastest settings: fused AdamW; torch.compile on GPU (on a 2-core CPU compiling an 860M UNet costs
    # more than the few steps it would speed up)
    fn_mode = ("cnref_compile" if device.startswith("cuda") else "cnref") if fast else mode
    if fast:   # the locked UNet needs no fp32 master weights: keep it in bf16 on GPU; channels_last everywhere
        if dev.type == "cuda":
            unet = unet.to(torch.bfloat16)
        unet = unet.to(memory_format=torch.channels_last)
    b = {k: v.to(dev) for k, v in make_batch(unet, batch, 8, 77).items()}
    if fast:
        b = {k: v.to(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in b.items()}
    unet.requires_grad_(False).train()
    f = step_fns(unet, 8, [fn_mode], copy_plain=False)[fn_mode]
    params = sum(p.numel() for p in unet.parameters())
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    times = []
    for r in range(warmup + repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            f(b)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if r >= warmup:
            times.append(time.perf_counter() - t0)
    params_of = {id(p): p for m in (f.__defaults__ or ()) if isinstance(m, torch.nn.Module)
                 for p in m.parameters() if p.requires_grad}      # by id: a compiled module shares its params
    trainable = sum(p.numel() for p in params_of.values())
    med = statistics.median(times)
    return {"mode": mode, "width": width, "batch": batch, "unet_params": params, "trainable_params": trainable,
            "median_step_s": round(med, 4), "img_per_s": round(batch / med, 4),
            "peak_memory_gib": round(_peak_memory_gib(dev), 3), "step_s": [round(t, 4) for t in times]}


def bench_sd15(width: int, batch: int, repeats: int, device: str, modes=SD15_MODES, timeout: int = 1800,
               rounds: int = 1) -> dict:
    """Each mode in a fresh process (clean peak memory), one after another, in this one command; with
    rounds > 1 the whole sequence repeats (A B C A B C ...), so that a slow spell of the machine hits every
    mode, and each mode's step times pool over its rounds (per-round medians kept, with the ratio to the
    peer in each round)."""
    rows: dict = {}
    for r in range(rounds):
        for mode in modes:
            cmd = [sys.executable, "-m", "cnref", "bench", "sd15-mode", "--mode", mode, "--width", str(width),
                   "--batch", str(batch), "--repeats", str(repeats), "--device", device]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if p.returncode == 0:
                row = json.loads(p.stdout.strip().splitlines()[-1])
            else:   # killed for memory (-9) or failed: say so
                row = {"mode": mode, "error": f"exit {p.returncode}: {p.stderr.strip()[-300:]}"}
            print(f"round {r} {mode}", row.get("img_per_s", row.get("error")), flush=True)
            if mode not in rows or "error" in rows[mode]:
                rows[mode] = {**row, "round_median_s": [row["median_step_s"]] if "error" not in row else []}
            elif "error" not in row:
                old = rows[mode]
                old["step_s"] += row["step_s"]
                old["round_median_s"].append(row["median_step_s"])
                old["peak_memory_gib"] = max(old["peak_memory_gib"], row["peak_memory_gib"])
    for row in rows.values():
        if "step_s" in row:
            row["median_step_s"] = round(statistics.median(row["step_s"]), 4)
            row["img_per_s"] = round(batch / row["median_step_s"], 4)
    ref_rounds = rows.get("diffusers", {}).get("round_median_s", [])
    for row in rows.values():
        if row.get("round_median_s") and len(row["round_median_s"]) == len(ref_rounds):
            row["speed_vs_diffusers_per_round"] = [round(a / b, 3) for a, b in zip(ref_rounds, row["round_median_s"])]
    ref = rows.get("diffusers", {}).get("median_step_s")
    plain = rows.get("plain", {})
    for r in rows.values():
        if "median_step_s" in r and ref:
            r["speed_vs_diffusers"] = round(ref / r["median_step_s"], 3)
        if "median_step_s" in r and "median_step_s" in plain:
            r["time_vs_plain"] = round(r["median_step_s"] / plain["median_step_s"], 3)
            r["memory_vs_plain"] = round(r["peak_memory_gib"] / plain["peak_memory_gib"], 3)
    return {"width": width, "batch": batch, "repeats": repeats, "rounds": rounds, "device_kind": device,
            "modes": rows}


# ------------------------------------------------------------------------ sampling
@torch.no_grad()
def pipeline_loop(base, controlnet, cond: torch.Tensor, prompts: list[str], steps: int, beta: float,
                  seed: int) -> torch.Tensor:
    """The denoising loop of diffusers' StableDiffusionControlNetPipeline.__call__, op for op, on our
    pixel-space base (the pipeline itself needs a VAE): CFG by batch doubling, the ControlNet on both
    halves with the hint repeated, residuals into the UNet, guidance, scheduler.step. `controlnet` is a
    diffusers ControlNetModel."""
    sched = sample_scheduler(base.cfg)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    s = base.cfg.size
    latents = torch.randn(len(prompts), base.unet.config.in_channels, s, s, generator=g) * sched.init_noise_sigma
    prompt_embeds = torch.cat([base.encode_prompt([""] * len(prompts)), base.encode_prompt(prompts)])
    image = torch.cat([cond] * 2)
    for t in sched.timesteps:
        x_in = sched.scale_model_input(torch.cat([latents] * 2), t)
        down, mid = controlnet(x_in, t, encoder_hidden_states=prompt_embeds, controlnet_cond=image,
                               conditioning_scale=1.0, guess_mode=False, return_dict=False)
        noise_pred = base.unet(x_in, t, encoder_hidden_states=prompt_embeds, down_block_additional_residuals=down,
                               mid_block_additional_residual=mid, return_dict=False)[0]
        uncond, text = noise_pred.chunk(2)
        latents = sched.step(uncond + beta * (text - uncond), t, latents, return_dict=False)[0]
    return latents.clamp(-1, 1)


def bench_sample(preset: str = "cpu", n: int = 64, steps: int = 20, beta: float = 9.0, repeats: int = 3,
                 factor: int = 1) -> dict:
    """cnref.mini.sample.generate vs the pipeline's loop (same weights, exported to diffusers), interleaved;
    also the largest pixel difference between their images (the same noise and schedule)."""
    base = load_base(preset)
    net = ControlNet(base.unet, ControlNetConfig(factor=factor)).eval()
    with torch.no_grad():
        for p in net.parameters():          # an untrained ControlNet adds zero: give it weights that act
            if p.abs().sum() == 0:
                p.normal_(0, 0.01, generator=torch.Generator().manual_seed(p.numel()))
    peer = net.diffusers_model(base.unet).eval()
    b = Fill50K(size=base.cfg.size, cond_factor=factor, seed=VAL_SEED).batch(range(n))
    fns = {"diffusers_pipeline_loop": lambda _: pipeline_loop(base, peer, b["cond"], b["prompt"], steps, beta, 0),
           "cnref": lambda _: generate(base, b["prompt"], [(net, b["cond"])], steps=steps, beta=beta, seed=0)}
    times = interleaved(fns, None, repeats, warmup=1)
    diff = float((fns["cnref"](None) - fns["diffusers_pipeline_loop"](None)).abs().max())
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med["diffusers_pipeline_loop"]
    return {"preset": preset, "n": n, "ddim_steps": steps, "beta": beta, "repeats": repeats,
            "max_abs_pixel_diff": diff,
            "modes": {k: {"median_s": round(med[k], 4), "img_per_s": round(n / med[k], 2),
                          "speed_vs_pipeline_loop": round(ref / med[k], 3), "s": [round(x, 4) for x in times[k]]}
                      for k in times}}

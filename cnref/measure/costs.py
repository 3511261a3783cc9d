"""What a variant costs, measured in one process with its parts interleaved (ratios, never absolute budgets):

- `python -m cnref bench instrument --preset cpu`: what the why-sudden study's instruments (cnref.mini.probe at each
  validation) add to a run's time, from a step, a validation and a probe timed in turn;
- `python -m cnref bench successors --preset cpu`: ControlNet's successors (cnref.successors) against the
  ControlNet: trainable parameters, training images/s, sampling cost per generated image; with `--processes 5`,
  once per fresh process (the n of the sampling-cost claims);
- `python -m cnref bench flops`: the arithmetic behind those ratios, counted rather than timed
  (`count_flops`), at the cpu preset's shape and at SD1.5's, so that overhead can be told from arithmetic.
"""
from __future__ import annotations

import statistics
import time
import warnings

import torch
from torch.nn import functional as F

from ..checks import fail
from .bench import fresh_processes, interleaved
from ..successors import design_config
from ..mini.data import VAL_SEED, Fill50K
from ..mini.base import build_unet, sd15_unet
from ..mini.presets import preset as get_preset
from ..mini.sample import generate
from ..mini.shipping import load_base
from ..mini.train import ControlNetTraining


KINDS = ("controlnet", "t2i_adapter", "controlnet_xs", "controlnext")     # the designs the bench compares


def bench_instrument(cfg, schedules: dict[str, tuple[int, int]], repeats: int = 5) -> dict:
    """What recording cnref.mini.probe at each validation adds to an instrumented run (`cfg`, instrument=True),
    measured in one process: the median time of a training step, of a validation without the probe and of the
    probe itself, interleaved (step, validation, probe, step, ...), combined for each run's (steps, val_every)
    in `schedules`: validations x probe / (steps x step + validations x validation)."""
    module = ControlNetTraining(cfg)
    opt = torch.optim.AdamW(module.controlnet.trainable(), lr=cfg.lr)
    batch = module.data.batch(range(cfg.batch_size))
    g = torch.Generator().manual_seed(0)

    def step():
        opt.zero_grad()
        module.loss_on(batch, g).backward()
        opt.step()

    probe = module.probe
    fns = {"training step": step, "validation": module.validate, "probe": module.instrumentation}
    times = {k: [] for k in fns}
    with warnings.catch_warnings():
        # validate() logs to Lightning, which warns outside a Trainer: the values are in module.history anyway
        warnings.filterwarnings("ignore", message=".*self.trainer. reference is not registered")
        for r in range(1 + repeats):                           # the first round warms up
            for k, f in fns.items():
                module.history.clear()                          # validate() skips a step it has already seen
                module.probe = probe if k == "probe" else None
                t0 = time.perf_counter()
                f()
                if r:
                    times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    runs = {}
    for name, (steps, every) in schedules.items():
        n_val = steps // every + 1
        bare = steps * med["training step"] + n_val * med["validation"]
        runs[name] = {"steps": steps, "val_every": every, "validations": n_val,
                      "overhead": round(n_val * med["probe"] / bare, 4)}
    return {"repeats": repeats, "median_s": {k: round(x, 4) for k, x in med.items()},
            "seconds": {k: [round(x, 4) for x in v] for k, v in times.items()}, "runs": runs}


def bench_successors(preset: str = "cpu", kinds=KINDS, batch: int = 64, n: int = 16, steps: int = 20,
                     beta: float = 9.0, repeats: int = 3) -> dict:
    """ControlNet and its successors over one locked base, interleaved in one process (kind A's training step,
    its n-image generation with `steps` DDIM steps and CFG, then kind B's, ...): trainable parameters, training
    images/s and seconds per generated image, each as a ratio to the ControlNet's. A T2I-Adapter runs once per
    generation, the others at every step: the sampling ratio shows what that buys."""
    base = load_base(preset)
    b = Fill50K(size=base.cfg.size, seed=VAL_SEED).batch(range(batch))
    c_t = base.encode_prompt(b["prompt"])
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(b["image"].shape, generator=g)
    t = torch.randint(0, base.cfg.num_train_timesteps, (batch,), generator=g)
    a = base.alpha_bar[t].view(-1, 1, 1, 1)
    z_t = a.sqrt() * b["image"] + (1 - a).sqrt() * eps
    nets, fns = {}, {}
    for k in kinds:
        net = nets[k] = design_config(k).build(base.unet).train()
        opt = torch.optim.AdamW(net.trainable(), lr=1e-4)

        def step(_, net=net, opt=opt):
            opt.zero_grad()
            F.mse_loss(net.eps(base.unet, z_t, t, c_t, b["cond"]), eps).backward()
            opt.step()

        def sample(_, net=net):
            with torch.no_grad():
                generate(base, b["prompt"][:n], [(net.eval(), b["cond"][:n])], steps=steps, beta=beta, seed=0)
            net.train()
        fns[f"{k}/train"], fns[f"{k}/sample"] = step, sample
    times = interleaved(fns, None, repeats, warmup=1)
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = {"train": med["controlnet/train"], "sample": med["controlnet/sample"]}
    out = {}
    for k in kinds:
        out[k] = {"trainable_params": sum(p.numel() for p in nets[k].trainable()),
                  "train_img_per_s": round(batch / med[f"{k}/train"], 2),
                  "train_speed_vs_controlnet": round(ref["train"] / med[f"{k}/train"], 3),
                  "sample_s_per_image": round(med[f"{k}/sample"] / n, 4),
                  "sample_cost_vs_controlnet": round(med[f"{k}/sample"] / ref["sample"], 3),
                  "s": {m: [round(x, 4) for x in times[f"{k}/{m}"]] for m in ("train", "sample")}}
    return {"preset": preset, "batch": batch, "n": n, "ddim_steps": steps, "beta": beta, "repeats": repeats,
            "kinds": out}


def bench_successors_processes(preset: str, repeats: int, processes: int, out_dir) -> list[dict]:
    """`bench_successors` in fresh processes (`cnref.measure.bench.fresh_processes`): per process and kind, the median
    training-step time and the median time of one n-image generation."""
    return fresh_processes(["successors", "--preset", preset, "--repeats", str(repeats)], processes, out_dir,
                           process_row)


def process_row(res: dict) -> dict:
    """What a speed claim reads of one process's `bench_successors`: per kind, its medians and timings."""
    return {k: {"median_step_s": statistics.median(v["s"]["train"]),
                "median_sample_s": statistics.median(v["s"]["sample"]), **v["s"]} for k, v in res["kinds"].items()}


def count_flops(shape: str = "cpu", kinds=KINDS, steps: int = 20) -> dict:
    """Floating-point operations per design, counted by torch.utils.flop_counter on a model built on the meta
    device (shapes only: nothing is computed, so SD1.5's 860M parameters cost no memory). shape "cpu": the cpu
    preset's base, condition at the image's size; "sd15": SD1.5's UNet over 64x64 latents, a 512x512 condition
    (factor 8), 77 tokens of width 768. Per design: trainable parameters, one training step (forward and backward,
    one image) and one generated image (`steps` DDIM steps, each through both branches of CFG, plus what the
    design computes once per generation), each also as a ratio to the ControlNet's."""
    from torch.utils.flop_counter import FlopCounterMode      # deferred: only this count needs it
    if shape not in ("cpu", "sd15"):
        fail("shape", "'cpu' or 'sd15'", repr(shape))
    with torch.device("meta"):
        if shape == "sd15":
            unet, factor, tokens = sd15_unet(), 8, 77
        else:
            cfg = get_preset("cpu").base
            unet, factor, tokens = build_unet(cfg), 1, cfg.max_tokens
        unet.requires_grad_(False)
        s, ch = unet.config.sample_size, unet.config.in_channels
        z_t, t = torch.randn(1, ch, s, s), torch.tensor([500])
        c_t, cond = torch.randn(1, tokens, unet.config.cross_attention_dim), torch.randn(1, 3, s * factor, s * factor)

        def counted(fn) -> int:
            with FlopCounterMode(display=False) as fc:
                fn()
            return fc.get_total_flops()

        out = {}
        for k in kinds:
            net = design_config(k, factor=factor).build(unet)
            once = counted(lambda: net.once(cond))
            f = net.once(cond)
            step = counted(lambda: net.eps(unet, z_t, t, c_t, f).float().pow(2).mean().backward())
            z2, t2, c2 = torch.cat([z_t, z_t]), t.repeat(2), torch.cat([c_t, c_t])
            per_step = counted(lambda: net.eps(unet, z2, t2, c2, f))
            out[k] = {"trainable_params": sum(p.numel() for p in net.trainable()),
                      "train_step_gflop": round((once + step) / 1e9, 3),
                      "image_gflop": round((once + steps * per_step) / 1e9, 3)}
        plain = counted(lambda: unet(torch.cat([z_t, z_t]), t.repeat(2), torch.cat([c_t, c_t])))
    ref = out["controlnet"] if "controlnet" in out else None
    for v in out.values():
        if ref:
            v["train_vs_controlnet"] = round(v["train_step_gflop"] / ref["train_step_gflop"], 3)
            v["image_vs_controlnet"] = round(v["image_gflop"] / ref["image_gflop"], 3)
    return {"shape": shape, "ddim_steps": steps, "cfg_branches": 2, "factor": factor,
            "base_image_gflop": round(steps * plain / 1e9, 3), "kinds": out}

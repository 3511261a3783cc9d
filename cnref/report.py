"""Ablation reports: the tables, curves, sample grids and verdicts that the notebooks and the README print.

Every claim of the paper that an ablation tests is one `Claim` below: a metric compared between two groups
of runs (variants, each over seeds) in an expected direction. The verdict rule is stated once, here:

- "a > b" (or "a < b"): **confirmed** when the seeds separate completely in the expected direction (every
  seed of one group beyond every seed of the other: with 3 vs 3 seeds the one-sided Mann-Whitney p is then
  1/20 = 0.05, the smallest it can be); **refuted** when they separate the other way; otherwise
  **unclear** (the seeds overlap), with both means shown.
- "a = b" within a stated tolerance: **confirmed** when the means differ by at most the tolerance,
  **refuted** when they differ by more and the seeds separate, otherwise **unclear**.

A claim with `same_steps` compares runs of different lengths over the steps they share: each run's validation
curve is cut at the shorter run's last step (the lr is constant, so a longer run's first steps are what a run of
that length would have taken) and judged on it: IoU of that last validation (the validation prompt, 32 held-out
conditions) or the convergence step of the cut curve.

A run whose IoU never rose (no convergence step) counts as converging after its last step, and that figure
is a lower bound (censored): it can put its group above the other, never below, so a comparison that rests
on it (a shorter run "converging later" than a longer run's convergence step) is **unclear**, not refuted.
`python -m cnref.report readme --preset cpu` prints the README's claims table from the committed results.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checks import fail
from .experiments import (ABLATIONS, RESULTS, compute_report, convergence_step, final_key, load_results, result_path,
                          run)

HELD_OUT = ("held_out/perfect", "held_out/insufficient", "held_out/conflicting", "held_out/none")
SETTINGS = (*HELD_OUT, "train/perfect")
METRICS = ("iou", "fill_ok", "bg_ok", "fid")


# ---------------------------------------------------------------------------------------------- loading
def smoke_mode() -> bool:
    return os.environ.get("CNREF_SMOKE") == "1"


def load(ablation: str, preset: str | None = None) -> tuple[dict[str, list[dict]], Path, str]:
    """Results of an ablation grouped by variant (in the ablation's order), their root, and the preset.
    Smoke mode (CNREF_SMOKE=1) trains the ablation on the tiny smoke base into a temporary folder first."""
    preset = preset or os.environ.get("CNREF_PRESET", "cpu")
    root = RESULTS
    if smoke_mode():
        root, preset = Path(tempfile.mkdtemp()), "smoke"
        run(ablation, "smoke", seeds=[0, 1], root=root)
    by = group(load_results(ablation, preset, root), ablation, preset)
    if not by:
        raise FileNotFoundError(f"no results under {root / ablation / preset}: run "
                                f"`python -m cnref.experiments run {ablation} --preset {preset}` first")
    return by, root, preset


def group(results: list[dict], ablation: str, preset: str) -> dict[str, list[dict]]:
    order = [v.name for v in ABLATIONS[ablation](preset)]
    by: dict[str, list[dict]] = {}
    for r in sorted(results, key=lambda r: (order.index(r["variant"]) if r["variant"] in order else 99, r["seed"])):
        by.setdefault(r["variant"], []).append(r)
    return by


def load_bounds(preset: str, root: Path = RESULTS, data: str = "fill50k") -> dict | None:
    """Table 2's calibration rows (python -m cnref.evaluate bounds [--data scenes]); in smoke mode computed
    on the spot."""
    path = root / "bounds" / preset / ("bounds.json" if data == "fill50k" else f"bounds_{data}.json")
    if not path.exists() and preset == "smoke":
        from .base import load_base
        from .evaluate import bounds
        from .train import ControlNetTrainConfig
        import torch
        cfg = ControlNetTrainConfig.preset_default("smoke")
        with torch.no_grad():
            res = bounds(load_base("smoke", data), cfg.final_n, steps=cfg.val_steps, beta=cfg.val_beta)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res))
    return json.loads(path.read_text()) if path.exists() else None


def history_from_lightning_csv(path: Path, val_every: int) -> list[dict]:
    """The validation history of a run whose result file was never written, from the metrics.csv that
    Lightning's CSVLogger kept. A validation at step s (a multiple of val_every) is logged from that step's
    training_step and appears in the rows of the next logging steps, so a new value of val/elapsed_s marks
    it: its step is (row step + 1) rounded down to val_every. `loss` is the mean training loss logged since
    the previous validation (None at the first)."""
    import csv
    out, prev, losses = [], None, []
    for row in csv.DictReader(path.open()):
        if row.get("val/elapsed_s") and row["val/elapsed_s"] != prev:
            prev = row["val/elapsed_s"]
            out.append({"step": (int(row["step"]) + 1) // val_every * val_every,
                        **{k[4:]: float(v) for k, v in row.items() if k.startswith("val/") and v},
                        "loss": round(sum(losses) / len(losses), 6) if out and losses else None})
            losses = []
        if row.get("train/loss"):
            losses.append(float(row["train/loss"]))
    return out


def load_cut_short(folder: Path) -> list[dict]:
    """Runs stopped before they wrote their results (a GPU lease that ended, a CPU run out of session time):
    one pseudo-result per seed<k>.metrics.csv in the folder, with its history and the folder's provenance.json
    (experiments/leases/<date>_<kind>/, experiments/cut_short/<date>_<ablation>_<variant>_<preset>/)."""
    prov = json.loads((folder / "provenance.json").read_text())
    return [{"seed": int(p.name[4:].split(".")[0]), "complete": False, "provenance": prov, "config": prov["config"],
             "history": history_from_lightning_csv(p, prov["config"]["val_every"])}
            for p in sorted(folder.glob("seed*.metrics.csv"))]


def runs_of(ref: str, by: dict[str, list[dict]], preset: str, root: Path) -> list[dict]:
    """The runs a claim names: "variant" (this ablation), "ablation:variant", or "bounds:base" /
    "bounds:base_scenes" (the Fill50K / scenes base alone, one pseudo-run per sampling seed, final_eval only)."""
    if ref.startswith("bench:"):       # one pseudo-run per timed step of a mode of the interleaved bench
        path = root / "bench" / f"train_{preset}.json"
        mode = json.loads(path.read_text())["modes"].get(ref[6:], {}) if path.exists() else {}
        return [{"step_s": t} for t in mode.get("step_s", [])]
    if ref in ("bounds:base", "bounds:base_scenes"):
        b = load_bounds(preset, root, "scenes" if ref.endswith("_scenes") else "fill50k")
        return [{"final_eval": rows, "seed": s} for s, rows in (b or {}).get("base", {}).items()]
    if ":" in ref:
        abl, var = ref.split(":")
        return [r for r in load_results(abl, preset, root) if r["variant"] == var]
    return by.get(ref, [])


def value(r: dict, key: str, setting: str | None) -> float:
    """A run's number: a final-evaluation metric (setting "held_out/*" = mean over the four held-out prompt
    settings), or a top-level figure such as convergence_step (None = never: after the last step)."""
    if key == "step_s":          # a bench pseudo-run: one timed training step
        return float(r["step_s"])
    if key == "s_per_step":      # wall seconds per step over the run, validation included
        h = r["history"]
        return (h[-1]["elapsed_s"] - h[0]["elapsed_s"]) / max(1, h[-1]["step"] - h[0]["step"])
    if setting is None:
        v = r.get(key)
        if v is None and key == "convergence_step":
            return float(r["config"]["steps"] + 1)
        return float(v)
    if setting == "held_out/*":
        return float(np.mean([r["final_eval"][s][key] for s in HELD_OUT]))
    return float(r["final_eval"][setting][key])


# ---------------------------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claim:
    ablation: str              # the notebook / result folder it belongs to
    text: str                  # the paper's (or official docs') claim, in a few words
    paper: str                 # the paper's figure
    a: str                     # run groups (see runs_of)
    b: str
    expect: str                # ">" | "<" | "="
    key: str = "iou"
    setting: str | None = "held_out/perfect"
    tol: float = 0.0           # for "="
    same_steps: bool = False   # judge both groups on their validation curves up to the shorter run's last step


CLAIMS = [
    Claim("zero_init", "Zero convs beat Gaussian-initialised convs (std 0.02)", "Fig. 8b (images)",
          "zero", "gaussian_0.02", ">", setting="held_out/*"),
    Claim("zero_init", "Zero convs beat Gaussian-initialised convs (std 0.2)", "Fig. 8b (images)",
          "zero", "gaussian_0.2", ">", setting="held_out/*"),
    Claim("zero_init", "Zero convs converge earlier than Gaussian-initialised convs (std 0.02)",
          "Sec. 3.1 (no harmful noise at the start)", "zero", "gaussian_0.02", "<", key="convergence_step",
          setting=None),
    Claim("zero_init", "Gaussian init drops to about lite's level (IoU within 0.05)", "Fig. 8b vs 8c",
          "gaussian_0.02", "lite:lite", "=", setting="held_out/*", tol=0.05),
    Claim("lite", "Lite fails with no prompt: ControlNet > lite", "Fig. 8c (images)",
          "controlnet", "lite", ">", setting="held_out/none"),
    Claim("lite", "Lite fails with an insufficient prompt: ControlNet > lite", "Fig. 8c (images)",
          "controlnet", "lite", ">", setting="held_out/insufficient"),
    Claim("lite", "ControlNet > lite on condition fidelity (perfect prompt)", "Table 2: IoU 0.35 vs 0.32",
          "controlnet", "lite", ">", setting="held_out/perfect"),
    Claim("lite", "ControlNet < lite on FID (perfect prompt)", "Table 3: FID 15.27 vs 17.92",
          "controlnet", "lite", "<", key="fid", setting="held_out/perfect"),
    Claim("lite", "With a perfect prompt lite still learns the condition: above the base alone (500 steps)",
          "Fig. 8c (images)", "lite", "bounds:base", ">", setting="held_out/perfect"),
    Claim("lite", "... and with 4x the steps (2000)", "Fig. 8c (images)",
          "lite_x4", "bounds:base", ">", setting="held_out/perfect"),
    Claim("lite", "Lite fails with no prompt even with 4x the steps: ControlNet (500 steps) > lite_x4 (2000)",
          "Fig. 8c (images)", "controlnet", "lite_x4", ">", setting="held_out/none"),
    Claim("lite", "Lite is slower, not unable: ControlNet converges in fewer steps than lite_x4", "-",
          "controlnet", "lite_x4", "<", key="convergence_step", setting=None),
    Claim("dataset_size", "1k training images already work: above the base alone", "Fig. 10 (images)",
          "n_1000", "bounds:base", ">", setting="held_out/perfect"),
    Claim("dataset_size", "1k images reach the unbounded set's fidelity (within 0.05)", "Fig. 10: 1k < 50k < 3m",
          "n_1000", "n_unbounded", "=", setting="held_out/perfect", tol=0.05),
    Claim("prompt_dropout", "50% prompt dropout helps with no prompt", "Sec. 3.3 (motivation)",
          "dropout_0.5", "dropout_0", ">", setting="held_out/none"),
    Claim("prompt_dropout", "50% prompt dropout costs nothing with the perfect prompt (within 0.05)", "-",
          "dropout_0.5", "dropout_0", "=", setting="held_out/perfect", tol=0.05),
    Claim("mid_only", "Middle-block-only ControlNet still learns the condition: above the base alone",
          "v1 Sec. 4 (small-scale training)", "mid_only", "bounds:base", ">", setting="held_out/perfect"),
    Claim("mid_only", "Middle-only is faster per training step (step times interleaved with full in one "
          "process: python -m cnref.bench train)", "v1: about 1.6x faster", "bench:cnref_mid", "bench:cnref", "<",
          key="step_s", setting=None),
    Claim("mid_only", "Full connections beat middle-only on condition fidelity", "-",
          "full", "mid_only", ">", setting="held_out/perfect"),
    Claim("batch_vs_steps", "The convergence step does not depend on batch size: 16 vs 64 (within 25 steps)",
          "docs/train.md", "batch_16", "batch_64", "=", key="convergence_step", setting=None, tol=25),
    Claim("batch_vs_steps", "The convergence step does not depend on batch size: 256 vs 64 (within 25 steps; "
          "both 500 steps)", "docs/train.md", "batch_256_long", "batch_64", "=", key="convergence_step",
          setting=None, tol=25),
    Claim("batch_vs_steps", "At equal compute, a larger batch beats more steps: 256 x 125 > 16 x 2000",
          "docs/train.md", "batch_256", "batch_16", ">", setting="held_out/perfect"),
    Claim("batch_vs_steps", "A batch above 256 brings little: 1024 converges at the step 256 does (within 25 steps; "
          "curves cut at 1024's last step)", "docs/train.md", "batch_1024", "batch_256_long", "=",
          key="convergence_step", setting=None, tol=25, same_steps=True),
    Claim("batch_vs_steps", "A batch above 256 brings little: 1024's IoU at its last step within 0.05 of 256's at "
          "that step", "docs/train.md", "batch_1024", "batch_256_long", "=", setting=None, tol=0.05,
          same_steps=True),
    Claim("timestep_sampling", "High-t-biased timesteps converge earlier than uniform",
          "ControlNet issue #628", "high_t", "uniform", "<", key="convergence_step", setting=None),
    Claim("hint_encoders", "The paper's hint encoder (4x4, ReLU) works as well as the code's (within 0.05)",
          "text vs code", "paper", "official", "=", setting="held_out/perfect", tol=0.05),
    # diagnostics of the gpu preset's failure to converge (notebook 04): what differs from the cpu preset
    Claim("precision", "bf16 autocast converges at the step fp32 does (within 25 steps)",
          "- (diagnostic: the gpu preset trains in bf16)", "bf16", "fp32", "=", key="convergence_step",
          setting=None, tol=25),
    Claim("cond_factor", "Conditions at the image's resolution converge earlier than at 4x (official hint encoder)",
          "- (diagnostic: SD's conditions are at 8x)", "factor_1", "factor_4", "<", key="convergence_step",
          setting=None),
    Claim("cond_factor", "... and earlier than at 8x (SD's factor, the gpu preset's)",
          "- (diagnostic: SD's conditions are at 8x)", "factor_1", "factor_8", "<", key="convergence_step",
          setting=None),
    Claim("scenes", "A ControlNet learns scene outlines: edge F1 above the scenes base alone (perfect prompt)",
          "Fig. 7 (Canny, HED)", "outline", "bounds:base_scenes", ">", key="edge_f1"),
    Claim("scenes", "A ControlNet learns segmentation maps: edge F1 above the scenes base alone (perfect prompt)",
          "Fig. 7 (segmentation)", "segmentation", "bounds:base_scenes", ">", key="edge_f1"),
]


def stats(xs: list[float]) -> dict:
    a = np.asarray(xs, dtype=float)
    return {"n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "values": [round(float(x), 4) for x in a]}


def judge(c: Claim, xa: list[float], xb: list[float], censored_a=(), censored_b=()) -> dict:
    """The verdict rule of the module docstring, on the per-seed values of the two groups. censored_*: which
    values are only lower bounds (a run that never converged: its steps + 1)."""
    from scipy.stats import mannwhitneyu
    if not xa or not xb:
        return {"verdict": "pending (no results)", "a": None, "b": None}
    sa, sb = stats(xa), stats(xb)
    ca, cb = sum(map(bool, censored_a)), sum(map(bool, censored_b))
    if ca:
        sa["censored"] = ca
    if cb:
        sb["censored"] = cb
    # a group's minimum is a valid lower bound even when censored; its maximum only when nothing is
    above, below = sa["min"] > sb["max"] and not cb, sa["max"] < sb["min"] and not ca
    out = {"a": sa, "b": sb, "diff": sa["mean"] - sb["mean"]}
    if len(xa) > 1 and len(xb) > 1:
        alt = {">": "greater", "<": "less"}.get(c.expect, "two-sided")
        out["p_mannwhitney"] = float(mannwhitneyu(xa, xb, alternative=alt).pvalue)
    if c.expect in (">", "<"):
        good, bad = (above, below) if c.expect == ">" else (below, above)
        out["verdict"] = "confirmed" if good else "refuted" if bad else "unclear (seeds overlap)"
    else:
        close = abs(out["diff"]) <= c.tol and not (ca or cb)
        out["verdict"] = "confirmed" if close else "refuted" if (above or below) and abs(out["diff"]) > c.tol \
            else "unclear (seeds overlap)"
    if out["verdict"].startswith("unclear") and (ca or cb):
        out["verdict"] = "unclear (censored: runs that never converged within their steps)"
    if min(len(xa), len(xb)) < 3:
        out["verdict"] += f" [only {min(len(xa), len(xb))} seed(s)]"
    return out


def cut(r: dict, last: int) -> dict:
    """A run as its first `last` steps would have left it: the validation curve up to `last`, its last IoU and
    its convergence step (see the module docstring, same_steps)."""
    h = [x for x in r["history"] if x["step"] <= last]
    if h[-1]["step"] != last:
        fail("last", f"a validated step of run {r['variant']} seed {r['seed']}", last)
    return {**r, "config": {**r["config"], "steps": last}, "history": h, "iou": h[-1]["iou"],
            "convergence_step": convergence_step(h)}


def evaluate_claim(c: Claim, preset: str, root: Path = RESULTS, by: dict | None = None) -> dict:
    by = by if by is not None else group(load_results(c.ablation, preset, root), c.ablation, preset)
    ra, rb = runs_of(c.a, by, preset, root), runs_of(c.b, by, preset, root)
    if not (ra and rb):
        return judge(c, [], [])
    if c.same_steps:
        last = min(r["config"]["steps"] for r in ra + rb)
        ra, rb = [cut(r, last) for r in ra], [cut(r, last) for r in rb]
    never = lambda rs: [c.key == "convergence_step" and c.setting is None and r.get(c.key) is None for r in rs]
    return judge(c, [value(r, c.key, c.setting) for r in ra], [value(r, c.key, c.setting) for r in rb],
                 never(ra), never(rb))


def fmt(s: dict | None, key: str) -> str:
    if s is None:
        return "-"
    if key == "max_abs_diff":
        return f"{s['max']:.1e} (max of n={s['n']})"
    d = 0 if key == "convergence_step" else 2 if key == "fid" else 3
    never = f", {s['censored']} never converged: >= steps+1" if s.get("censored") else ""
    return f"{s['mean']:.{d}f} ± {s['std']:.{d}f} (n={s['n']}{never})"


def measured(c, j: dict, where: str | None = None) -> str:
    """Both groups' figures of a judged claim (an ablation's Claim or a studies.StudyClaim)."""
    return f"{c.key}" + (f" [{where}]" if where else "") + f": {c.a} {fmt(j['a'], c.key)} vs {c.b} {fmt(j['b'], c.key)}"


def source_of(c) -> str:
    """What a claim's figures are taken from, for its printed line."""
    return c.setting or ("per run, curves cut at the shorter run's end" if c.same_steps else "per run")


def print_claim(c, j: dict, where: str | None = None) -> None:
    """The verdict cell's text for one claim: the claim, what we measured, p, the verdict."""
    p = f"; one-sided Mann-Whitney p = {j['p_mannwhitney']:.3f}" if "p_mannwhitney" in j and c.expect != "=" else ""
    print(f"Claim ({c.paper}): {c.text}.\n  measured {measured(c, j, where)}{p}\n  -> {j['verdict'].upper()}\n")


def readme_row(c, j: dict, where: str | None, notebook: str, results: str) -> str:
    return f"| {c.text} | {c.paper} | {measured(c, j, where)} | **{j['verdict']}** | " \
           f"[{notebook}](notebooks/{notebook}), [results]({results}) |"


def print_verdicts(ablation: str, preset: str, root: Path = RESULTS, by: dict | None = None) -> list[dict]:
    """The verdict cell of an ablation's notebook: every claim of it, both groups' figures, p and verdict."""
    out = []
    for c in (c for c in CLAIMS if c.ablation == ablation):
        j = evaluate_claim(c, preset, root, by)
        print_claim(c, j, source_of(c))
        out.append({"claim": c, **j})
    return out


# ---------------------------------------------------------------------------------------------- tables
def table(by: dict[str, list[dict]], bnd: dict | None, key: str = "iou", settings=SETTINGS) -> str:
    """Table 2 analogue for one metric: a row per variant (mean ± std over seeds), then the calibration rows
    (ground truth: upper bound; the base alone: lower bound) from the same held-out set and sampler."""
    w = 17
    short = lambda s: s.replace("held_out/", "").replace("train/", "train ")
    lines = [f"{key:<22}" + "".join(f"{short(s):>{w}}" for s in settings)]
    cell = lambda xs: f"{np.mean(xs):.3f} ± {np.std(xs, ddof=1) if len(xs) > 1 else 0:.3f}".rjust(w)
    for name, rs in by.items():
        lines.append(f"{name + f' ({len(rs)} seeds)':<22}" + "".join(cell([value(r, key, s) for r in rs])
                                                                      for s in settings))
    if bnd:
        gt = bnd["ground_truth"]
        lines.append(f"{'ground truth (upper)':<22}" + "".join(
            (f"{gt[s][key]:.3f}".rjust(w) if s in gt else "-".rjust(w)) for s in settings))
        rows = list(bnd["base"].values())
        lines.append(f"{'base alone (lower)':<22}" + "".join(
            (cell([r[s][key] for r in rows]) if s in rows[0] else "-".rjust(w)) for s in settings))
    return "\n".join(lines)


def print_tables(by, bnd, keys=METRICS, settings=SETTINGS):
    names = {"iou": "condition fidelity: IoU (higher is better)",
             "edge_f1": "condition fidelity: edge F1 vs the exact visible outline (higher is better)",
             "color_ok": "prompt fidelity: shape colours right (share)",
             "fill_ok": "prompt fidelity: fill colour right (share)",
             "bg_ok": "prompt fidelity: background colour right (share)",
             "fid": "image quality: FID_64, base-UNet features (lower is better)"}
    for k in keys:
        print(names.get(k, k))
        print(table(by, bnd, k, settings), end="\n\n")


def print_runs(by: dict[str, list[dict]]):
    """One line per run: where it came from, its convergence step, final IoU and its training time."""
    from .metrics import fidelity_fn
    key = fidelity_fn(next(iter(by.values()))[0]["config"].get("data", "fill50k"))[1]
    print(f"{'variant':<16}{'seed':>5}{'conv. step':>11}{key + '@end':>11}{'wall s':>8}{'s/step':>8}  commit / reuse")
    for name, rs in by.items():
        for r in rs:
            hist = r["history"]
            rate = value(r, "s_per_step", None)
            src = r.get("reused_from") or r["provenance"]["commit"][:12]
            print(f"{name:<16}{r['seed']:>5}{str(r['convergence_step']):>11}{r['final'][key]:>11.3f}"
                  f"{hist[-1]['elapsed_s']:>8.0f}{rate:>8.3f}  {src}")
    r0 = next(iter(by.values()))[0]
    print(f"device: {r0['provenance']['device']}; preset {r0['preset']}")


# ---------------------------------------------------------------------------------------------- figures
def plot_curves(axes, by: dict[str, list[dict]], keys=("iou", "loss")):
    """Validation curves per variant: mean over seeds with the min-max band."""
    from .plots import plot_spread
    for ax, key in zip(np.atleast_1d(axes), keys):
        for name, rs in by.items():
            hs = [[h for h in r["history"] if h.get(key) is not None] for r in rs]
            plot_spread(ax, [([h["step"] for h in hist], [h[key] for h in hist]) for hist in hs], name)
        ax.set_xlabel("step"); ax.set_title(key); ax.legend(fontsize=8)


def plot_final(ax, by: dict[str, list[dict]], key: str = "iou", settings=HELD_OUT, bnd: dict | None = None):
    """Final metric per prompt setting: one dot per seed, a bar at the mean; the bounds as lines."""
    n = len(by)
    for i, (name, rs) in enumerate(by.items()):
        xs = np.arange(len(settings)) + (i - (n - 1) / 2) * 0.8 / n
        vals = np.array([[value(r, key, s) for s in settings] for r in rs])
        ax.bar(xs, vals.mean(0), width=0.8 / n, alpha=0.5, label=name)
        for v in vals:
            ax.plot(xs, v, "k.", ms=4)
    if bnd:
        for j, s in enumerate(settings):
            if s in bnd["ground_truth"]:
                ax.hlines(bnd["ground_truth"][s][key], j - 0.45, j + 0.45, colors="green", lw=1)
            rows = [r[s][key] for r in bnd["base"].values() if s in r]
            if rows:
                ax.hlines(np.mean(rows), j - 0.45, j + 0.45, colors="red", lw=1, linestyles="--")
    ax.set_xticks(range(len(settings)), [s.split("/")[1] for s in settings])
    ax.set_title(f"final {key} (dots: seeds; green: ground truth; red dashed: base alone)")
    ax.legend(fontsize=8)


def final_images(r: dict, setting: str, root: Path = RESULTS) -> np.ndarray | None:
    """The uint8 images of one final-evaluation set of a run (None for runs made before they were kept)."""
    npz = np.load(result_path(r["ablation"], r["preset"], r["variant"], r["seed"], root).with_suffix(".npz"))
    return npz[final_key(setting)] if final_key(setting) in npz.files else None


def show_final_grid(by: dict[str, list[dict]], root: Path, settings=HELD_OUT, k: int = 8, seed: int = 0):
    """Rows: variants x prompt settings, k held-out conditions each (the first row: the conditions)."""
    import matplotlib.pyplot as plt
    from .data import VAL_SEED, dataset
    from .plots import show_images
    rows = []
    for name, rs in by.items():
        r = next((r for r in rs if r["seed"] == seed), rs[0])
        rows += [(f"{name} / {s.split('/')[1]}", final_images(r, s, root)) for s in settings]
    rows = [(t, x[:k]) for t, x in rows if x is not None]
    if not rows:
        print("no final images in these results")
        return
    size = rows[0][1].shape[-1]
    kinds = dict.fromkeys((rs[0]["config"].get("data", "fill50k"), rs[0]["config"].get("condition", "outline"))
                          for rs in by.values())
    conds = []
    for data, cond in kinds:
        c = dataset(data, size=size, cond_factor=1, seed=VAL_SEED, condition=cond).batch(range(k))["cond"]
        conds.append((f"held-out conditions ({cond})", c * 2 - 1))
    rows = conds + rows
    fig, axes = plt.subplots(len(rows), 1, figsize=(k * 0.8, 0.95 * len(rows)))
    for ax, (t, x) in zip(np.atleast_1d(axes), rows):
        show_images(ax, x, nrow=k, title=t)
    plt.tight_layout()
    plt.show()


# ---------------------------------------------------------------------------------------------- README
def readme_rows(preset: str, root: Path = RESULTS) -> str:
    """The README's claims table (markdown), from the committed results."""
    lines = ["| claim | paper | ours (mean ± std over seeds) | verdict | notebook, results |",
             "|---|---|---|---|---|"]
    nb = {p.stem.split("_", 1)[1]: p.name for p in (root.parent / "notebooks").glob("*.py")}
    nb |= {a: nb["sudden_convergence"] for a in ("precision", "cond_factor")}    # its diagnostics section
    for c in CLAIMS:
        j = evaluate_claim(c, preset, root)
        lines.append(readme_row(c, j, source_of(c), nb.get(c.ablation, c.ablation),
                                f"experiments/{c.ablation}/{preset}/"))
    from .studies import STUDY_CLAIMS, evaluate_study_claim
    for c in STUDY_CLAIMS:
        j = evaluate_study_claim(c, preset, root)
        lines.append(readme_row(c, j, None, nb.get(c.study, c.study), f"experiments/studies/{preset}/{c.study}/"))
    return "\n".join(lines)


def compute_lines(preset: str, root: Path = RESULTS) -> str:
    """The README's compute summary under the table (from `experiments.compute_report`)."""
    c = compute_report(preset, root)
    lines = [f"**Compute so far** (`python -m cnref.experiments compute --preset {preset}`): {c['runs']} trained "
             f"runs and study seeds, {c['total_s'] / 3600:.2f} h of wall time in all ({c['reused']} results reused "
             f"from identical configs); issue 8's suite: {c['suite_runs']} runs, {c['suite_s'] / 3600:.2f} h "
             f"(target <= 4 h), of which {c['long']['runs']} runs, {c['long']['wall_s'] / 3600:.2f} h, are the "
             f"follow-ups that see more images than a default run ({', '.join(c['long']['variants']) or 'none'})"]
    ex = c["extra_seeds"]
    if ex["runs"]:
        lines[0] += (f"; outside the suite, {ex['runs']} runs on seeds {', '.join(map(str, ex['seeds']))} of its "
                     f"ablations, {ex['wall_s'] / 3600:.2f} h, added where 3 seeds left a verdict unclear")
    lines[0] += ":"
    for d, v in c["devices"].items():
        lines.append(f"- {d}: {v['runs']} runs, {v['wall_s'] / 60:.0f} min ({v['wall_s'] / 60 / v['runs']:.1f} min a run)")
    for a, v in sorted(c["by_ablation"].items()):
        lines.append(f"- `{a}`: {v['runs']} runs, {v['wall_s'] / 60:.0f} min")
    return "\n".join(lines)


MARKS = ("<!-- claims-table:start -->", "<!-- claims-table:end -->")


def write_readme(path: Path, preset: str = "cpu", root: Path = RESULTS) -> None:
    """Replace what lies between the README's two MARKS with the claims table and the compute summary."""
    s = path.read_text()
    if not all(m in s for m in MARKS):
        fail("path", f"a README holding {MARKS[0]} ... {MARKS[1]}", str(path))
    a, b = s.index(MARKS[0]) + len(MARKS[0]), s.index(MARKS[1])
    path.write_text(s[:a] + "\n" + readme_rows(preset, root) + "\n\n" + compute_lines(preset, root) + "\n" + s[b:])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cnref.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("readme", help="print the README's claims table (--write: put it and the compute "
                                      "summary into README.md between its markers)")
    r.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    r.add_argument("--write", type=Path, metavar="README")
    v = sub.add_parser("verdicts", help="print every claim's figures and verdict")
    v.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    a = ap.parse_args(argv)
    if a.what == "readme" and a.write:
        write_readme(a.write, a.preset)
    elif a.what == "readme":
        print(readme_rows(a.preset))
    else:
        for abl in dict.fromkeys(c.ablation for c in CLAIMS):
            print_verdicts(abl, a.preset)
        from .studies import STUDIES, print_study_verdicts
        for study in STUDIES:
            print_study_verdicts(study, a.preset)


if __name__ == "__main__":
    main()

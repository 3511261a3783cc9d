"""Text views: the final evaluation's tables, one line per run, and the verdict lines of claims."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..measure.evaluate import QUALITY_SET
from ..lab.claims import CLAIMS, HELD_OUT, SETTINGS, STUDY_CLAIMS, evaluate_claim, evaluate_study_claim, value
from ..lab.verdict import p_of
from ..mini.metrics import fidelity_fn

METRICS = ("iou", "fill_ok", "bg_ok", "fid")


def lr_text(lr: float) -> str:
    """A learning rate as the papers write it: 1e-3, 3e-4 (Python's :g writes 0.001 and 0.0003)."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def mean_std(xs, d: int = 3) -> str:
    """mean ± sample std of some seeds' numbers; one number alone has no spread to show."""
    return f"{np.mean(xs):.{d}f}" + (f" ± {np.std(xs, ddof=1):.{d}f}" if len(xs) > 1 else "")


def table(by: dict[str, list[dict]], bnd: dict | None, key: str = "iou", settings=SETTINGS) -> str:
    """The final evaluation's table for one metric: a row per variant (mean ± std over seeds), then the calibration rows
    (ground truth: upper bound; the base alone: lower bound) from the same held-out set and sampler."""
    w = 17
    short = lambda s: s.replace("held_out/", "").replace("train/", "train ")
    lines = [f"{key:<22}" + "".join(f"{short(s):>{w}}" for s in settings)]
    cell = lambda xs: mean_std(xs).rjust(w)
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
    key = fidelity_fn(next(iter(by.values()))[0]["config"].get("data", "fill50k"))[1]
    w = max(16, *(len(n) + 2 for n in by))        # the longest variant name and two spaces
    print(f"{'variant':<{w}}{'seed':>5}{'conv. step':>11}{key + '@end':>11}{'wall s':>8}{'s/step':>8}  commit / reuse")
    for name, rs in by.items():
        for r in rs:
            hist = r["history"]
            rate = value(r, "s_per_step", None)
            src = r.get("reused_from") or r["provenance"]["commit"][:12]
            cs = r["convergence_step"]
            print(f"{name:<{w}}{r['seed']:>5}{'-' if cs is None else f'{cs:.0f}':>11}{r['final'][key]:>11.3f}"
                  f"{hist[-1]['elapsed_s']:>8.0f}{rate:>8.3f}  {src}")
    r0 = next(iter(by.values()))[0]
    print(f"device: {r0['provenance']['device']}; preset {r0['preset']}")


def study_table(results: list[dict], keys=("edge_f1", "color_ok", "bg_ok"), names=None) -> str:
    """A row per setting: mean ± std over the trained seeds of each metric."""
    names = names or list(results[0]["results"])
    w = 16
    lines = [f"{'setting (' + str(len(results)) + ' seeds)':<34}" + "".join(f"{k:>{w}}" for k in keys)]
    for n in names:
        cells = []
        for k in keys:
            xs = [r["results"][n][k] for r in results if k in r["results"][n]]
            cells.append((mean_std(xs) if xs else "-").rjust(w))
        lines.append(f"{n:<34}" + "".join(cells))
    return "\n".join(lines)


def fmt(s: dict | None, key: str) -> str:
    if s is None:
        return "-"
    d = digits(key)
    never = f", {s['censored']} never reached the level: >= last step" if s.get("censored") else ""
    never += f", {s['head_start']} at the level from step 0 (head start)" if s.get("head_start") else ""
    sd = f" ± {s['std']:.{d}f}" if s["n"] > 1 else ""
    return f"{s['mean']:.{d}f}{sd} (n={s['n']}{never})"


def measured(c, j: dict, where: str | None = None) -> str:
    """Both groups' figures of a judged claim (a Claim or a StudyClaim)."""
    kb = getattr(c, "key_b", None)
    if c.b == "ramp":
        return f"{c.key}: {c.a} {fmt(j['a'], c.key)} vs a steady ramp's 95th percentile {fmt(j['b'], c.key)}"
    if kb:
        return f"{c.a} {c.key} {fmt(j['a'], c.key)} vs {kb} {fmt(j['b'], kb)}" + (f" [{where}]" if where else "")
    return f"{c.key}" + (f" [{where}]" if where else "") + f": {c.a} {fmt(j['a'], c.key)} vs {c.b} {fmt(j['b'], c.key)}"


def evidence(c, j: dict) -> str:
    """What the verdict rests on: the one-sided Mann-Whitney p of an ordered claim, the 90% interval of the
    difference (against the tolerance) of an equality."""
    if "p_ramp" in j:
        return f"ramp test, Fisher's combined {p_text(j['p_ramp'])} (per seed: {', '.join(f'{p:.4f}' for p in j['p_seeds'])})"
    if "ratio_ci90" in j:
        lo, hi = j["ratio_ci90"]
        return f"90% CI of the ratio a/b [{lo:.3f}, {hi:.3f}] vs 1"
    if c.expect == "=" and "ci90" in j:
        lo, hi = j["ci90"]
        d = 0 if abs(c.tol) >= 1 else 4 if abs(c.tol) < 0.01 else 3
        return f"90% CI of a-b [{lo:.{d}f}, {hi:.{d}f}] vs ±{c.tol:g}"
    return p_text(j["p_mannwhitney"]) if "p_mannwhitney" in j else "-"


def p_value(p: float) -> str:
    """A p as a reader should see it: three decimals, and never "0.000" (a p is not zero)."""
    return "< 0.001" if p < 0.0005 else f"{p:.3f}"


def p_text(p: float) -> str:
    """"p = 0.050", "p < 0.001"."""
    v = p_value(p)
    return f"p {v}" if v.startswith("<") else f"p = {v}"


def digits(key: str, tol: float = 0.0) -> int:
    """Decimals a figure of `key` is shown with."""
    if tol:
        return 0 if abs(tol) >= 1 else 4 if abs(tol) < 0.01 else 3
    return 0 if key == "convergence_step" else 2 if key in ("fid", "kid") or key.startswith("rise_share") else \
        4 if key == "step_x_lr" else 3


def effect(c, j: dict) -> str:
    """The effect beside a verdict with its 90% interval: mean(a) - mean(b) (Welch, or paired on the same seeds),
    the mean speed ratio a/b, or a ramp test's mean excess over the ramps' 95th percentile."""
    if "ratio_ci90" in j:
        lo, hi = j["ratio_ci90"]
        return f"a/b = {j['ratio']:.3f} [{lo:.3f}, {hi:.3f}]"
    if "ci90" not in j:
        return "-"
    lo, hi = j["ci90"]
    d = digits(c.key, getattr(c, "tol", 0.0))
    what = "share - ramp q95" if "p_ramp" in j else "a-b"
    return f"{what} = {j['diff']:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def p_cell(j: dict) -> str:
    """The p beside a verdict, with its test (`lab.verdict.p_of`)."""
    p = p_of(j)
    return "-" if p is None else f"{p_value(p[0])} ({p[1]})"


def verdict_cell(j: dict) -> str:
    """The verdict in bold, then what weakens it: written after its data, or hanging on the convergence level."""
    notes = [n for n, on in (("post hoc", j.get("post_hoc")), ("depends on the level", j.get("depends_on_level"))) if on]
    return f"**{j['verdict']}**" + "".join(f"; {n}" for n in notes)


def bh_cell(j: dict) -> str:
    return {True: "yes", False: "no"}.get(j.get("bh"), "-")


def source_of(c) -> str:
    """What a claim's figures are taken from, for its printed line."""
    return c.setting or ("per run, curves cut at the shorter run's end" if c.same_steps else "per run")


def print_claim(c, j: dict, where: str | None = None) -> None:
    """The verdict cell's text for one claim: the claim, what we measured, p, the verdict."""
    ev = evidence(c, j)
    p = "" if ev == "-" else f"; {'one-sided Mann-Whitney ' if ev.startswith('p') else ''}{ev}"
    print(f"Claim ({c.paper}): {c.text}.\n  measured {measured(c, j, where)}{p}\n  -> {j['verdict'].upper()}\n")


def verdict_word(verdict: str) -> str:
    """A verdict without its reason or flags: "unclear (seeds overlap)" -> "unclear"."""
    return verdict.split(" (")[0].split(";")[0]


class Verdict(dict):
    """One judged claim, for a notebook's reading, named by its id: `{v[high_t].verdict}` (with its reason),
    `.word` (confirmed, refuted, unclear, pending), `.evidence` (p or the interval), `.a`, `.b` (each group's
    figure with its spread), `.measured` (both, as in the verdict cell)."""

    def __init__(self, c, j: dict):
        kb = getattr(c, "key_b", None) or c.key
        super().__init__(verdict=j["verdict"], word=verdict_word(j["verdict"]),
                         evidence=evidence(c, j), a=fmt(j.get("a"), c.key), b=fmt(j.get("b"), kb),
                         measured=measured(c, j))

    __getattr__ = dict.__getitem__


class Verdicts(dict):
    """A notebook's claims, judged, by id. A claim is named, never taken by position: any other key is an error
    that lists the ids there are."""

    def __init__(self, claims, judge):
        super().__init__({c.id: Verdict(c, judge(c)) for c in claims})

    def __missing__(self, key):
        raise KeyError(f"{key!r} (claims are named by id: {', '.join(self)})")


def print_verdicts(ablation: str, preset: str, root: Path | None = None, by: dict | None = None) -> list[dict]:
    """The verdict cell of an ablation's notebook: every claim of it, both groups' figures, p and verdict."""
    out = []
    for c in (c for c in CLAIMS if c.ablation == ablation):
        j = evaluate_claim(c, preset, root, by)
        print_claim(c, j, source_of(c))
        out.append({"claim": c, **j})
    return out


def print_study_verdicts(study: str, preset: str, root: Path | None = None) -> list[dict]:
    out = []
    for c in (c for c in STUDY_CLAIMS if c.study == study):
        j = evaluate_study_claim(c, preset, root)
        print_claim(c, j)
        out.append({"claim": c, **j})
    return out


def ratios(costs: dict, processes: list[dict] | None) -> dict[str, dict[str, list[float]]]:
    """Per kind of control, its training speed and sampling cost as ratios to the ControlNet's: one per fresh
    process of the successors bench when there are some, else the one process of `costs`."""
    if processes:
        return {k: {"train": [p["controlnet"]["median_step_s"] / p[k]["median_step_s"] for p in processes],
                    "sample": [p[k]["median_sample_s"] / p["controlnet"]["median_sample_s"] for p in processes]}
                for k in processes[0]}
    return {k: {"train": [v["train_speed_vs_controlnet"]], "sample": [v["sample_cost_vs_controlnet"]]}
            for k, v in costs["kinds"].items()}


def design_table(by: dict[str, list[dict]], kinds: dict[str, str], costs: dict, processes: list[dict] | None = None
                 ) -> str:
    """ControlNet and its successors side by side, as a markdown table: what each costs (trainable parameters,
    training images/s and sampling cost per image as ratios to the ControlNet's, from the successors bench) and
    what it buys (mean ± std over seeds: convergence step, IoU under the four prompt settings, fill colour right
    with the perfect prompt, KID x 1e3 of (image, condition) pairs). kinds: variant -> kind of control; a variant
    without runs shows its costs only."""
    ms = lambda xs, d: mean_std(xs, d) if xs else "-"
    r = ratios(costs, processes)
    head = (["design", "trainable params", "training img/s (x ControlNet)", "sampling cost / image (x ControlNet)",
             "seeds", "convergence step"] + [f"IoU, {s.split('/')[1].replace('none', 'no')} prompt" for s in HELD_OUT]
            + ["fill colour right (perfect)", "KID x1e3 (perfect prompt)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, kind in kinds.items():
        rs = by.get(name, [])
        per = lambda key, setting: [value(x, key, setting) for x in rs if setting is None or setting in x["final_eval"]]
        cells = [name, f"{costs['kinds'][kind]['trainable_params']:,}", ms(r[kind]["train"], 2), ms(r[kind]["sample"], 2),
                 str(len(rs)), ms(per("convergence_step", None), 0)]
        cells += [ms(per("iou", s), 3) for s in HELD_OUT] + [ms(per("fill_ok", "held_out/perfect"), 2),
                                                           ms(per("kid", QUALITY_SET), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""ControlNet and its successors in notebook 21: the one table of what each design costs and buys under one recipe
(`successors`), and the comparison on fair terms (`successors_fair`: each design at its own learning rate, trained
until the plateau rule stops it), with each paper's claims judged both ways side by side."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import matplotlib.pyplot as plt

from ..measure.costs import bench_successors
from ..measure.evaluate import QUALITY_SET
from ..lab.ablations import ABLATIONS, EQUAL_TRAIN_S, RETESTS, SWEPT
from ..lab.claims import CLAIMS, evaluate_claim, value
from ..lab.convergence import LEVEL, SENSITIVITY, fidelity_key, half_rise_step
from ..lab.results import load_bench
from .figures import plot_against_time, plot_curves
from .notebook import AblationReport, Declared, spread
from .tables import design_table, evidence, lr_text, mean_std, ratios, verdict_word

COLUMNS = ("design", "lr", "seeds", "stopped at step", "training s to the stop", "IoU at step 0", "convergence step",
           "half-rise step", f"IoU after {EQUAL_TRAIN_S:g} s", "final IoU (perfect prompt)", "KID x1e3 (perfect prompt)")


def fair_row(r: dict) -> list[float | None]:
    """One run's figures in COLUMNS' order from "stopped at step" on (None: never reached)."""
    h, key = r["history"], fidelity_key(r)
    return [h[-1]["step"], h[-1]["train_s"], h[0][key], r["convergence_step"], half_rise_step(h, key),
            value(r, f"iou_at_train_s:{EQUAL_TRAIN_S:g}", None), value(r, "iou", "held_out/perfect"),
            value(r, "kid", QUALITY_SET) if QUALITY_SET in r["final_eval"] else None]


def fair_table(by: dict[str, list[dict]]) -> str:
    """The fair comparison as a markdown table, one row per design: mean ± std over its seeds of where the plateau
    rule stopped it (the step, and the seconds of training to it), its validation IoU before any update, the step at
    which it reached the convergence level, the step at which it closed half of its own rise (from its step-0 IoU:
    the time to the level for a design that does not start at the base's), its validation IoU after EQUAL_TRAIN_S
    seconds of training (a run stopped before then: its last validation's), and at the stop its final IoU and KID
    on held-out conditions with the perfect prompt. A figure some seed never reached is counted in brackets."""
    digits = (0, 0, 3, 0, 0, 3, 3, 2)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, rs in by.items():
        cols = list(zip(*[fair_row(r) for r in rs]))
        cells = []
        for xs, d in zip(cols, digits):
            got = [x for x in xs if x is not None]
            cells.append((mean_std(got, d) if got else "-") + (f" ({len(xs) - len(got)} never)" if len(got) < len(xs)
                                                               else ""))
        lines.append(f"| {name} | {lr_text(rs[0]['config']['lr'])} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def design_of(c) -> str:
    """The successor a claim of the two successors ablations is about: its group a's design."""
    a = c.a.split(":")[-1]
    return next(d for d in SWEPT[1:] if a.startswith(d))


def retest_rows(preset: str, root: Path | None = None) -> list[dict]:
    """Per successor (SWEPT's order), each claim judged under one recipe (`successors`: lr 1e-4, 500 steps) beside
    the claim that retests it on fair terms (RETESTS), or alone where it has no counterpart: {design, paper, equal,
    fair}, paper the fair claim's label where there is one, equal / fair each (claim, judgement) or None; both:
    whether both sides are judged (neither pending nor short of seeds), and changed: whether then the verdict's
    word moved."""
    claims = {(c.ablation, c.id): c for c in CLAIMS if c.ablation in ("successors", "successors_fair")}
    judged = lambda c: None if c is None else (c, evaluate_claim(c, preset, root))
    rows = [(claims["successors", RETESTS[i]] if i in RETESTS else None, c)
            for (a, i), c in claims.items() if a == "successors_fair"]
    rows += [(c, None) for (a, i), c in claims.items() if a == "successors" and i not in RETESTS.values()]
    out = []
    for eq, fa in sorted(rows, key=lambda p: SWEPT.index(design_of(p[0] or p[1]))):
        e, f = judged(eq), judged(fa)
        words = [verdict_word(x[1]["verdict"]) for x in (e, f) if x]
        both = len(words) == 2 and not any(w in ("pending", "too few seeds") for w in words)
        out.append({"design": design_of(eq or fa), "paper": (fa or eq).paper, "equal": e, "fair": f,
                    "both": both, "changed": both and words[0] != words[1]})
    return out


def retest_table(rows: list[dict]) -> str:
    """`retest_rows` as a markdown table: each side's claim, its verdict in bold and what it rests on."""
    side = lambda x: "-" if x is None else f"{x[0].text}: **{verdict_word(x[1]['verdict'])}** ({evidence(*x)})"
    lines = ["| design | the paper's claim | one recipe (lr 1e-4, 500 steps) | own lr, trained to the plateau | "
             "verdict moved |", "|---|---|---|---|---|"]
    for r in rows:
        moved = ("yes" if r["changed"] else "no") if r["both"] else "-"
        lines.append(f"| {r['design']} | {r['paper']} | {side(r['equal'])} | {side(r['fair'])} | {moved} |")
    return "\n".join(lines)


def level_words(c, preset: str, root: Path | None = None) -> str:
    """A convergence claim's verdict at the two other levels every convergence verdict is also shown under, each a
    share of the way from the base alone to ground truth: "confirmed at 0.125, unclear at 0.5 (stated: 0.25)"."""
    words = [f"{verdict_word(evaluate_claim(c, preset, root, share=s)['verdict'])} at {s:g}" for s in SENSITIVITY]
    return f"{', '.join(words)} (stated: {LEVEL:g})"


def retest_summary(rows: list[dict]) -> dict[str, str]:
    """Of `retest_rows` judged on both sides, the papers' claims whose verdict moved on fair terms and those whose
    verdict held, each as "paper (one recipe's word -> fair word)", joined by "; " ("none" when there is none)."""
    say = lambda r: (f"{r['paper']} ({verdict_word(r['equal'][1]['verdict'])} -> "
                     f"{verdict_word(r['fair'][1]['verdict'])})")
    return {k: "; ".join(say(r) for r in rows if r["both"] and r["changed"] == moved) or "none"
            for k, moved in (("moved", True), ("held", False))}


class Designs:
    """ControlNet and its successors (the `successors` ablation): the runs, when there are some, beside the
    successors bench (committed at cpu; measured now, tiny, at smoke)."""

    def __init__(self, preset: str = "cpu"):
        self.preset = preset
        self.kinds = {v.name: v.cfg.control.design for v in ABLATIONS["successors"].variants(preset)}
        if preset == "smoke":
            self.costs, self.processes = bench_successors("smoke", batch=2, n=2, steps=2, repeats=1), None
            # two successors, enough for every cell
            self.rep = AblationReport.smoke("successors", ["t2i_adapter", "controlnet_xs"])
            self.fair = AblationReport.smoke("successors_fair", ["controlnet", "controlnext"])
        else:
            self.costs = load_bench(f"successors_{preset}")
            self.processes = (load_bench(f"successors_{preset}_processes") or {}).get("processes")
            self.rep = AblationReport.committed("successors", preset)
            self.fair = AblationReport.committed("successors_fair", preset)

    def table(self) -> str:
        """The one table (views.tables.design_table), shown as markdown and returned."""
        from IPython.display import Markdown, display   # deferred: only a notebook kernel has IPython
        text = design_table(self.rep.by if self.rep else {}, self.kinds, self.costs, self.processes)
        n = len(self.processes) if self.processes else 1
        text += (f"\n\nCosts: {n} process{'es' if n > 1 else ''} of `python -m cnref bench successors` (batch "
                 f"{self.costs['batch']}, {self.costs['n']} images per generation, {self.costs['ddim_steps']} DDIM steps, "
                 f"CFG {self.costs['beta']:g}); the rest: mean ± std over seeds.")
        display(Markdown(text))
        return text

    def flops(self) -> str:
        """Counted against measured: each design's FLOPs per training step and per generated image as a ratio to the
        ControlNet's (`python -m cnref bench flops`, committed), beside the CPU time ratios of the same table, at the
        cpu preset's shape, and the counts at SD1.5's shape. Shown as markdown and returned."""
        from IPython.display import Markdown, display   # deferred: only a notebook kernel has IPython
        counted = load_bench("flops")
        if not counted:
            print("no FLOP count committed: python -m cnref bench flops")
            return ""
        cpu, sd = (r["kinds"] for r in counted["shapes"])
        r = ratios(self.costs, self.processes)
        rows = ["| design | trainable (cpu) | training step: FLOPs / time, vs ControlNet (cpu) | generated image: "
                "FLOPs / time, vs ControlNet (cpu) | trainable (SD1.5) | training step, image: FLOPs vs ControlNet "
                "(SD1.5) |", "|---|---|---|---|---|---|"]
        for k in cpu:
            time_train = mean_std([1 / x for x in r[k]["train"]], 2) if k in r else "-"
            time_image = mean_std(r[k]["sample"], 2) if k in r else "-"
            rows.append(f"| {k} | {cpu[k]['trainable_params'] / 1e6:.2f}M | {cpu[k]['train_vs_controlnet']:.2f} / "
                        f"{time_train} | {cpu[k]['image_vs_controlnet']:.2f} / {time_image} | "
                        f"{sd[k]['trainable_params'] / 1e6:.1f}M | {sd[k]['train_vs_controlnet']:.2f}, "
                        f"{sd[k]['image_vs_controlnet']:.2f} |")
        text = "\n".join(rows) + (f"\n\nFLOPs counted by torch.utils.flop_counter on the designs' shapes (one image; "
                                  f"{counted['shapes'][0]['ddim_steps']} DDIM steps through both CFG branches per "
                                  "generated image); times: the table above's measured ratios.")
        display(Markdown(text))
        return text

    def fair_table(self) -> str:
        """The fair comparison's table (`fair_table` above), shown as markdown and returned."""
        from IPython.display import Markdown, display   # deferred: only a notebook kernel has IPython
        text = fair_table(self.fair.by) + ("\n\nmean ± std over seeds; the steps and seconds where the plateau rule "
                                           "stopped each run; IoU at step 0 and after the seconds named: the validation "
                                           "curve's; final IoU and KID: the evaluation at the stop.")
        display(Markdown(text))
        return text

    def fair_curves(self):
        """The fair runs' validation IoU against the step (mean over seeds, band = min-max) and against the seconds
        of training, with the equal-compute mark."""
        refs = self.fair.references()
        fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
        plot_curves(axes[:1], self.fair.by, ("iou",), refs)
        plot_against_time(axes[1], self.fair.by, "iou", EQUAL_TRAIN_S, refs.get("iou"))
        plt.tight_layout()
        plt.show()

    @cached_property
    def retest_rows(self) -> list[dict]:
        """`retest_rows` of these results, judged once for the table and the reading."""
        return retest_rows(self.preset, self.fair.root if self.preset == "smoke" else None)

    def retests(self) -> str:
        """Each paper's claims under one recipe beside the same on fair terms (`retest_table` above)."""
        from IPython.display import Markdown, display   # deferred: only a notebook kernel has IPython
        text = retest_table(self.retest_rows)
        display(Markdown(text))
        return text

    def fair_facts(self) -> dict:
        """The fair reading's own fields, per variant of `successors_fair`: lr, stop (step) and stop_s (seconds of
        training) where the plateau rule stopped it, half (half-rise step), at_equal (IoU after EQUAL_TRAIN_S s),
        kid (x 1e3, perfect prompt); equal_iou[design]: the final IoU (perfect prompt) under one recipe; moved and
        held: `retest_summary` of the retest table; levels[claim id]: a convergence claim's `level_words`."""
        by, declared = self.fair.by, [v.name for v in ABLATIONS["successors_fair"].variants(self.preset)]
        col = lambda i, d: Declared({n: spread([fair_row(r)[i] for r in rs], d) for n, rs in by.items()}, declared)
        eq = self.rep.by if self.rep else {}
        root = self.fair.root if self.preset == "smoke" else None
        return {"lr": Declared({n: lr_text(rs[0]['config']['lr']) for n, rs in by.items()}, declared),
                "stop": col(0, 0), "stop_s": col(1, 0), "half": col(4, 0), "at_equal": col(5, 3), "kid": col(7, 2),
                "equal_s": f"{EQUAL_TRAIN_S:g}",
                **retest_summary(self.retest_rows),
                "levels": {c.id: level_words(c, self.preset, root) for c in CLAIMS
                           if c.ablation == "successors_fair" and c.key == "convergence_step"},
                "equal_iou": Declared({n: spread([value(r, "iou", "held_out/perfect") for r in rs]) for n, rs in eq.items()},
                                      list(self.kinds))}

    def facts(self) -> dict:
        """The reading's cost fields: params[kind], train[kind], sample[kind] (ratios to the ControlNet's), and
        flops[shape][kind][train|image] (counted FLOPs, ratios to the ControlNet's; shape cpu or sd15)."""
        r = ratios(self.costs, self.processes)
        counted = {c["shape"]: c["kinds"] for c in (load_bench("flops") or {}).get("shapes", [])}
        return {"params": {k: f"{v['trainable_params'] / 1e3:.0f}k" for k, v in self.costs["kinds"].items()},
                "train": {k: spread(v["train"]) for k, v in r.items()},
                "sample": {k: spread(v["sample"]) for k, v in r.items()},
                "flops": {shape: {k: {"train": f"{v['train_vs_controlnet']:.2f}", "image": f"{v['image_vs_controlnet']:.2f}"}
                                  for k, v in kinds.items()} for shape, kinds in counted.items()}}

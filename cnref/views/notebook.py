"""One helper object per notebook: the notebooks tell the story and draw; what they show comes from here.

    rep = AblationReport.smoke("zero_init") if smoke_mode() else AblationReport("zero_init", "cpu")
    rep.training(); rep.final(); rep.grid(); rep.verdicts()

Full mode reads the committed results; smoke mode (CNREF_SMOKE=1, CI) first makes tiny ones, by an explicit
call (`lab.runner.prepare_smoke`), in a temporary folder.
"""
from __future__ import annotations

import inspect
import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..lab.ablations import ABLATIONS
from ..lab.claims import CLAIMS, HELD_OUT, STUDY_CLAIMS, evaluate_claim, evaluate_study_claim, group, value
from ..lab.convergence import calibrations, judged, level_range
from ..lab.results import load_bounds, load_results, load_study, results_root
from ..lab.runner import prepare_smoke
from ..lab.studies import STUDIES, run_study
from ..mini.metrics import fidelity_fn
from .figures import REF_STYLES, plot_curves, plot_final
from .images import show_final_grid
from .tables import (Verdicts, mean_std, print_runs, print_study_verdicts, print_tables, print_verdicts,
                     verdict_word)


def show_reading(template: str, **facts) -> str:
    """A notebook's closing reading: markdown whose every figure is a {field} filled from the results, shown as
    markdown (in the executed notebook and the book) and returned. A field the results lack is a one-line error."""
    try:
        text = template.format(**facts)
    except (KeyError, IndexError, AttributeError) as e:
        raise KeyError(f"reading: no fact {e} in the results (have: {', '.join(facts)})") from None
    from IPython.display import Markdown, display   # deferred: only a notebook kernel has IPython
    display(Markdown(text))
    return text


def listing(*objects) -> None:
    """The source of functions or classes, shown as one Python listing: where a notebook teaches an equation or
    a measure, the reader sees the lines that compute it, read from the package (never a copy that can drift)."""
    from IPython.display import Markdown, display   # deferred: only a notebook kernel has IPython
    text = "\n\n".join(textwrap.dedent(inspect.getsource(o)).rstrip() for o in objects)
    display(Markdown(f"```python\n{text}\n```"))


def references(by: dict[str, list[dict]], preset: str, root, data: str = "fill50k", key: str = "iou") -> dict:
    """The reference lines of a fidelity curve, from the validation calibration of the runs' seeds: the ground
    truth, the base alone and the convergence level (means over the seeds); {} without a calibration."""
    cal = calibrations(preset, root).get(data)
    runs = [r for rs in by.values() for r in rs]
    if not cal:
        return {}
    base = np.mean([cal["base"][str(r["seed"])] for r in runs if str(r["seed"]) in cal["base"]] or [np.nan])
    levels = [r["level"] for r in runs if r.get("level") is not None]
    lines = [(cal["ground_truth"], "ground truth"), (base, "base alone")]
    lines += [(float(np.mean(levels)), "convergence level")] if levels else []
    return {key: [(y, label, REF_STYLES[label]) for y, label in lines if np.isfinite(y)]}


class Declared(dict):
    """Per-variant facts: a declared variant without results reads "(no runs yet)"; any other name is an error."""

    def __init__(self, facts: dict, declared: list[str]):
        super().__init__(facts)
        self.declared = declared

    def __missing__(self, name):
        if name in self.declared:
            return "(no runs yet)"
        raise KeyError(name)


def spread(xs, digits: int = 2) -> str:
    """mean ± std (n) of a list of numbers, as a reading writes it (one number has no spread to show)."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "none"
    return f"{mean_std(xs, digits)} (n = {len(xs)})"


def smoke_mode() -> bool:
    """The one switch a notebook reads: CNREF_SMOKE=1 runs it in seconds on tiny runs (CI)."""
    return os.environ.get("CNREF_SMOKE") == "1"


class AblationReport:
    """An ablation's runs at a preset, grouped by variant (in the ablation's order), with its calibration rows."""

    def __init__(self, ablation: str, preset: str = "cpu", root: Path | None = None):
        self.ablation, self.preset, self.root = ablation, preset, results_root(root)
        self.by = group(judged(load_results(ablation, preset, self.root), preset, self.root), ablation, preset)
        if not self.by:
            raise FileNotFoundError(f"no results under {self.root / ablation / preset}: run "
                                    f"`python -m cnref run {ablation} --preset {preset}` first")
        self.data = next(iter(self.by.values()))[0]["config"].get("data", "fill50k")
        self.bounds = load_bounds(preset, self.root, self.data)
        self.key = fidelity_fn(self.data)[1]       # the condition-fidelity metric: iou (fill50k), edge_f1 (scenes)

    @classmethod
    def smoke(cls, ablation: str, variants: list[str] | None = None) -> "AblationReport":
        """The ablation (or some of its variants) trained for a few steps on the smoke base
        (`lab.runner.prepare_smoke`)."""
        return cls(ablation, "smoke", prepare_smoke(ablation, names=variants))

    @classmethod
    def committed(cls, ablation: str, preset: str) -> "AblationReport | None":
        """The report on the committed results, or None (said in one line) while the ablation has none."""
        try:
            return cls(ablation, preset)
        except FileNotFoundError as e:
            print(f"runs pending: {e}")
            return None

    def references(self) -> dict:
        """The fidelity curves' reference lines (`references`)."""
        return references(self.by, self.preset, self.root, self.data, self.key)

    def finding(self, claim_id: str) -> str:
        """A figure's title that states what it shows: the claim of that id, as declared before the runs, and its
        verdict as judged now (never a sentence typed for the figure)."""
        c = next((c for c in CLAIMS if c.ablation == self.ablation and c.id == claim_id), None)
        if c is None:
            raise KeyError(f"{claim_id!r} (claims of {self.ablation}: "
                           f"{', '.join(c.id for c in CLAIMS if c.ablation == self.ablation)})")
        word = verdict_word(evaluate_claim(c, self.preset, self.root, self.by)["verdict"])
        return textwrap.fill(f"{c.text}: {word}", 70)

    def training(self, keys=None, finding: str | None = None):
        """One line per run, then the validation curves (mean over seeds, band = min-max) of condition fidelity,
        with the base alone, the ground truth and the convergence level, and of the training loss. finding: the
        id of the claim the curves answer, stated with its verdict as the fidelity panel's title."""
        keys = keys or (self.key, "loss")
        print_runs(self.by)
        fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 3.6 + 0.4 * bool(finding)), squeeze=False)
        plot_curves(axes[0], self.by, keys, self.references())
        if finding:
            axes[0][0].set_title(self.finding(finding), fontsize=9)
        plt.tight_layout()
        plt.show()

    def final(self, keys=None, settings=HELD_OUT, tables=None, table_settings=None, finding: str | None = None):
        """The final evaluation per prompt setting (one panel per key; by default condition fidelity alone), then
        its table with the bounds. Every metric of every run: the result files, linked in the notebook. finding:
        as `training`'s."""
        keys, tables = keys or (self.key,), tables or (self.key,)
        cfg = next(iter(self.by.values()))[0]["config"]
        print(f"protocol: {cfg['final_n']} held-out conditions per prompt setting, DDIM {cfg['val_steps']} steps, "
              f"CFG scale {cfg['val_beta']:g}")
        fig, axes = plt.subplots(1, len(keys), figsize=(7 * len(keys), 3.8 + 0.4 * bool(finding)), squeeze=False)
        for ax, k in zip(axes[0], keys):
            plot_final(ax, self.by, k, settings=settings, bnd=self.bounds)
        if finding:
            axes[0][0].set_title(f"{self.finding(finding)}\n(dots: seeds; solid: ground truth; dashed: base alone)",
                                 fontsize=9)
        plt.tight_layout()
        plt.show()
        print_tables(self.by, self.bounds, tables, **({"settings": table_settings} if table_settings else {}))

    def grid(self, settings=("held_out/perfect", "held_out/none")):
        """Samples of seed 0 under each setting (by default the perfect prompt and none), the same noise in
        every row."""
        show_final_grid(self.by, self.root, settings=settings)

    def verdicts(self) -> list[dict]:
        return print_verdicts(self.ablation, self.preset, self.root, self.by)

    def reading(self, template: str, **facts) -> str:
        """The closing reading. Fields: v[id] (the ablation's claim of that id: .verdict .word .evidence .a .b
        .measured),
        step[variant] (convergence step, mean ± std), iou[variant] / iou_none[variant] (final condition fidelity,
        IoU or edge F1, with the perfect / no prompt), start[variant] (the same metric at the step-0 validation,
        before any update), level (the convergence level it is judged at), n[variant] (seeds), and any `facts` the
        notebook adds."""
        v = Verdicts([c for c in CLAIMS if c.ablation == self.ablation],
                     lambda c: evaluate_claim(c, self.preset, self.root, self.by))
        declared = [x.name for x in ABLATIONS[self.ablation].variants(self.preset)]
        per = lambda f: Declared({name: f(rs) for name, rs in self.by.items()}, declared)
        return show_reading(
            template, v=v, n=per(len),
            step=per(lambda rs: spread([r["convergence_step"] for r in rs], 0)),
            # the final condition fidelity (IoU on fill50k, edge F1 on scenes) with the perfect / no prompt
            iou=per(lambda rs: spread([value(r, self.key, "held_out/perfect") for r in rs])),
            iou_none=per(lambda rs: spread([value(r, self.key, "held_out/none") for r in rs])),
            start=per(lambda rs: spread([next((h[self.key] for h in r["history"] if h["step"] == 0), None)
                                         for r in rs])),
            level=level_range(calibrations(self.preset, self.root)[self.data],
                              sorted({r["seed"] for rs in self.by.values() for r in rs})), **facts)


class StudyReport:
    """A study's results: one per trained seed of the scene ControlNets."""

    def __init__(self, study: str, preset: str = "cpu", root: Path | None = None):
        self.study, self.preset, self.root = study, preset, results_root(root)
        self.results = load_study(study, preset, self.root)
        if not self.results:
            raise FileNotFoundError(f"no results under {self.root / 'studies' / preset / study}: run "
                                    f"`python -m cnref study {study} --preset {preset}` first")

    @classmethod
    def smoke(cls, study: str) -> "StudyReport":
        """The ControlNets it samples (the scene nets; for `gain`, the before-jump ones) trained for a few steps on
        the smoke base, and the study run on them."""
        root = prepare_smoke("before_jump" if study == "gain" else "scenes")
        run_study(study, "smoke", 0, root)
        return cls(study, "smoke", root)

    def describe(self):
        r0 = self.results[0]
        prov = r0["provenance"]
        nets = r0["controlnets"]
        print(f"{len(self.results)} trained seeds; seed 0's ControlNets: {nets}; device: "
              f"{prov['device']}, commit {prov['commit'][:10]}")

    def verdicts(self) -> list[dict]:
        return print_study_verdicts(self.study, self.preset, self.root)

    def reading(self, template: str) -> str:
        """The closing reading. Fields: v[id] (the study's claim of that id: .verdict .word .evidence .a .b
        .measured), m[setting][key] (mean ± std over the trained seeds), seeds."""
        v = Verdicts([c for c in STUDY_CLAIMS if c.study == self.study],
                     lambda c: evaluate_study_claim(c, self.preset, self.root))
        digits = lambda k: 1 if k == "fid" else 2 if k == "kid" else 5 if k == "use_loss_gap" else 3   # its 1e-4s
        m = {n: {k: spread([r["results"][n][k] for r in self.results], digits(k))
                 for k in self.results[0]["results"][n]} for n in self.results[0]["results"]}
        return show_reading(template, v=v, m=m, seeds=len(self.results))


__all__ = ["AblationReport", "STUDIES", "StudyReport", "listing", "show_reading", "smoke_mode", "spread"]

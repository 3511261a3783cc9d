"""One helper object per notebook: the notebooks tell the story and draw; what they show comes from here.

    rep = AblationReport.smoke("zero_init") if smoke_mode() else AblationReport("zero_init", "cpu")
    rep.training(); rep.final(); rep.grid(); rep.verdicts()

Full mode reads the committed results; smoke mode (CNREF_SMOKE=1, CI) first makes tiny ones, by an explicit
call (`lab.runner.prepare_smoke`), in a temporary folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

from ..lab.claims import HELD_OUT, group
from ..lab.convergence import judged
from ..lab.results import load_bounds, load_results, load_study, results_root
from ..lab.runner import prepare_smoke
from ..lab.studies import STUDIES, run_study
from .figures import plot_curves, plot_final, show_final_grid
from .tables import print_runs, print_study_verdicts, print_tables, print_verdicts


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

    @classmethod
    def smoke(cls, ablation: str, variants: list[str] | None = None) -> "AblationReport":
        """The ablation (or some of its variants) trained for a few steps on the smoke base
        (`lab.runner.prepare_smoke`)."""
        return cls(ablation, "smoke", prepare_smoke(ablation, names=variants))

    def training(self, keys=("iou", "loss")):
        """One line per run, then the validation curves (mean over seeds, band = min-max)."""
        print_runs(self.by)
        fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 3.6))
        plot_curves(axes, self.by, keys)
        plt.tight_layout()
        plt.show()

    def final(self, keys=("iou", "fid"), settings=HELD_OUT, tables=("iou", "fill_ok", "bg_ok", "fid"),
              table_settings=None):
        """The final evaluation per prompt setting (one panel per key), then its tables with the bounds."""
        fig, axes = plt.subplots(1, len(keys), figsize=(7 * len(keys), 3.6), squeeze=False)
        for ax, k in zip(axes[0], keys):
            plot_final(ax, self.by, k, settings=settings, bnd=self.bounds)
        plt.tight_layout()
        plt.show()
        print_tables(self.by, self.bounds, tables, **({"settings": table_settings} if table_settings else {}))

    def grid(self, settings=HELD_OUT):
        """Samples of seed 0 under each setting, the same noise in every row."""
        show_final_grid(self.by, self.root, settings=settings)

    def verdicts(self) -> list[dict]:
        return print_verdicts(self.ablation, self.preset, self.root, self.by)


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
        """The scene ControlNets trained for a few steps on the smoke base and the study run on them."""
        root = prepare_smoke("scenes")
        run_study(study, "smoke", 0, root)
        return cls(study, "smoke", root)

    def describe(self):
        r0 = self.results[0]
        prov = r0["provenance"]
        print(f"{len(self.results)} trained seeds; seed 0's ControlNets: {r0['controlnets']}; device: "
              f"{prov['device']}, commit {prov['commit'][:10]}")

    def verdicts(self) -> list[dict]:
        return print_study_verdicts(self.study, self.preset, self.root)


__all__ = ["AblationReport", "STUDIES", "StudyReport", "smoke_mode"]

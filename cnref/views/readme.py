"""The README's generated part: the claims table and the compute summary, written between two markers
(`python -m cnref report readme --preset cpu --write README.md`)."""
from __future__ import annotations

from pathlib import Path

from ..checks import fail
from ..lab.claims import CLAIMS, STUDY_CLAIMS, evaluate_claim, evaluate_study_claim
from ..lab.convergence import LEVEL, SENSITIVITY, levels
from ..lab.compute import compute_report
from ..lab.results import results_root
from .tables import evidence, measured, source_of


def readme_row(c, j: dict, where: str | None, notebook: str, results: str) -> str:
    return f"| {c.text} | {c.paper} | {measured(c, j, where)} | **{j['verdict']}** | {evidence(c, j)} | " \
           f"[{notebook}](notebooks/{notebook}), [results]({results}) |"


CONVERGENCE_KEYS = ("convergence_step", "step_x_lr")


def sensitivity_rows(preset: str, root: Path | None = None) -> str:
    """Every convergence verdict at the stated level and at the two other levels (claims.SENSITIVITY)."""
    shares = sorted({LEVEL, *SENSITIVITY})
    lv = [levels(preset, root, s)["fill50k"] for s in shares]
    head = " | ".join(f"level {s:g} (IoU {v:.2f})" if v is not None else f"level {s:g}" for s, v in zip(shares, lv))
    lines = [f"| convergence claim | {head} |", "|---" * (1 + len(shares)) + "|"]
    for c in (c for c in CLAIMS if c.key in CONVERGENCE_KEYS):
        cells = []
        for s in shares:
            j = evaluate_claim(c, preset, root, share=s)
            cells.append(f"{'**' if s == LEVEL else ''}{j['verdict']}{'**' if s == LEVEL else ''} ({evidence(c, j)})")
        lines.append(f"| {c.text} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme_rows(preset: str, root: Path | None = None) -> str:
    """The README's claims table (markdown), from the committed results."""
    lines = ["| claim | paper | ours (mean ± std over seeds) | verdict | p or 90% CI | notebook, results |",
             "|---|---|---|---|---|---|"]
    nb = {p.stem.split("_", 1)[1]: p.name for p in (results_root(root).parent / "notebooks").glob("*.py")}
    # the diagnostics and the why-sudden studies are read in the sudden-convergence notebook
    nb |= {a: nb["sudden_convergence"] for a in ("precision", "cond_factor", "learning_rate", "injection",
                                                 "hint_embedder")}
    for c in CLAIMS:
        j = evaluate_claim(c, preset, root)
        lines.append(readme_row(c, j, source_of(c), nb.get(c.ablation, c.ablation),
                                f"experiments/{c.ablation}/{preset}/"))
    for c in STUDY_CLAIMS:
        j = evaluate_study_claim(c, preset, root)
        lines.append(readme_row(c, j, None, nb.get(c.study, c.study), f"experiments/studies/{preset}/{c.study}/"))
    return "\n".join(lines)


def compute_lines(preset: str, root: Path | None = None) -> str:
    """The README's compute summary under the table (from `experiments.compute_report`)."""
    c = compute_report(preset, root)
    lines = [f"**Compute so far** (`python -m cnref compute --preset {preset}`): {c['runs']} trained "
             f"runs and study seeds, {c['total_s'] / 3600:.2f} h of wall time in all ({c['reused']} results reused "
             f"from identical configs); the paper's ablation suite: {c['suite_runs']} runs, {c['suite_s'] / 3600:.2f} h "
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


def write_readme(path: Path, preset: str = "cpu", root: Path | None = None) -> None:
    """Replace what lies between the README's two MARKS with the claims table and the compute summary."""
    s = path.read_text()
    if not all(m in s for m in MARKS):
        fail("path", f"a README holding {MARKS[0]} ... {MARKS[1]}", str(path))
    a, b = s.index(MARKS[0]) + len(MARKS[0]), s.index(MARKS[1])
    sens = ("**The convergence verdicts at three levels** (the stated level in bold; the verdict should not hang on "
            "the level's choice):\n\n" + sensitivity_rows(preset, root))
    path.write_text(s[:a] + "\n" + readme_rows(preset, root) + "\n\n" + sens + "\n\n" + compute_lines(preset, root)
                    + "\n" + s[b:])

"""The README's generated parts: the claims table and the compute summary, and the gpu command's recipe, each
written between two markers (`python -m cnref report readme --preset cpu --write README.md`)."""
from __future__ import annotations

import re
from pathlib import Path

from ..checks import fail
from ..lab.claims import (CLAIMS, REVISED, STUDY_CLAIMS, evaluate_claim, evaluate_study_claim, gpu_recipe, group,
                          runs_of, why_changed)
from ..lab.verdict import benjamini_hochberg, p_of
from ..lab.declare import Claim
from ..lab.history import first_written, post_hoc
from ..lab.convergence import LEVEL, SENSITIVITY, calibrations, level_range
from ..lab.ablations import ABLATIONS, LR_TOL, PLATEAU
from ..lab.compute import LAUNCH_S, compute_report, gpu_seconds
from ..lab.results import load_results, load_study, results_root
from ..lab.studies import STUDIES
from ..mini.presets import preset as get_preset
from .tables import bh_cell, effect, evidence, lr_text, measured, p_cell, source_of, verdict_cell


def cell(text: str) -> str:
    """Text for a markdown table cell: a "|" of its own would end the cell."""
    return text.replace("|", "\\|")


COLUMNS = "| claim | paper | ours (mean ± std over seeds) | verdict | effect, 90% CI | p (test) | BH 0.05 |"


def evidence_cells(c, j: dict, where: str | None = None) -> str:
    """The cells every row carries: the measured figures with n, the verdict and what weakens it, the effect with
    its interval, p and its test, and whether it survives Benjamini-Hochberg over the whole table."""
    return f"{measured(c, j, where)} | {verdict_cell(j)} | {effect(c, j)} | {p_cell(j)} | {bh_cell(j)}"


def readme_row(c, j: dict, where: str | None, notebook: str, results: str, up: str = "") -> str:
    """One row of the full table; `up` leads the links back to the repository's root (a page under docs/)."""
    nb = f"[{notebook}]({up}notebooks/{notebook})" if notebook.endswith(".py") else "no notebook yet"
    res = f"[results]({up}{results})" if results else "no results yet"
    return f"| {cell(c.text)} | {c.paper} | {evidence_cells(c, j, where)} | {nb}, {res} |"


CONVERGENCE_KEYS = ("convergence_step", "step_x_lr", "log_gate_at_step")


def sensitivity_rows(rows: list[tuple], preset: str, root: Path | None = None) -> str:
    """Every convergence verdict at the stated level and at the two other levels (claims.SENSITIVITY), from the
    judged claims' `at_levels` (`strength`)."""
    shares = sorted({LEVEL, *SENSITIVITY})
    cal = calibrations(preset, root)["fill50k"]
    seeds = sorted(cal["base"], key=int) if cal else []
    head = " | ".join(f"level {s:g} (IoU {level_range(cal, seeds, s)} by seed)" for s in shares)
    lines = [f"| convergence claim | {head} |", "|---" * (1 + len(shares)) + "|"]
    for c, judged, *_ in rows:
        if not isinstance(c, Claim) or c.key not in CONVERGENCE_KEYS:
            continue
        cells = []
        for s in shares:
            j = judged if s == LEVEL else judged["at_levels"][s]
            cells.append(f"{'**' if s == LEVEL else ''}{j['verdict']}{'**' if s == LEVEL else ''} ({evidence(c, j)})")
        lines.append(f"| {c.text} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def judged_claims(preset: str, root: Path | None = None) -> list[tuple]:
    """Every claim judged on the committed results: (claim, judgement, source, notebook, results folder)."""
    root_dir = results_root(root)
    made = lambda folder: folder if (root_dir.parent / folder).is_dir() else None
    out = [(c, evaluate_claim(c, preset, root), source_of(c), ABLATIONS[c.ablation].notebook,
            made(f"experiments/{c.ablation}/{preset}/")) for c in CLAIMS]
    out += [(c, evaluate_study_claim(c, preset, root), None, STUDIES[c.study].notebook,
             f"experiments/studies/{preset}/{c.study}/") for c in STUDY_CLAIMS]
    return strength(out, preset, root)


def strength(rows: list[tuple], preset: str, root: Path | None = None) -> list[tuple]:
    """Each judged claim's evidence strength, into its judgement: whether its p survives Benjamini-Hochberg at 0.05
    across the whole table (`bh`), whether it was written after its runs (`post_hoc`, from git history) and,
    for a convergence claim, whether its verdict changes between the three levels (`depends_on_level`)."""
    judged = [not j["verdict"].startswith(("pending", "too few")) for _, j, *_ in rows]
    ps = [p_of(j)[0] if ok and p_of(j) else None for ok, (_, j, *_) in zip(judged, rows)]
    written = first_written([c.text for c, *_ in rows], results_root(root).parent)
    by = {}
    for ok, keep, (c, j, *_) in zip(judged, benjamini_hochberg(ps), rows):
        j["bh"] = keep
        if isinstance(c, Claim):
            if c.ablation not in by:
                by[c.ablation] = group(load_results(c.ablation, preset, root), c.ablation, preset)
            groups = [runs_of(ref, by[c.ablation], preset, root) for ref in (c.a, c.b) if ref != "ramp"]
        else:
            groups = [load_study(c.study, preset, root)]
        j["post_hoc"] = post_hoc(written[c.text], groups)
        if getattr(c, "key", None) in CONVERGENCE_KEYS:
            j["at_levels"] = {s: evaluate_claim(c, preset, root, share=s) for s in SENSITIVITY}
            j["depends_on_level"] = ok and any(v["verdict"].split()[0] != j["verdict"].split()[0]
                                               for v in j["at_levels"].values())
    return rows


def readme_rows(preset: str, root: Path | None = None, rows: list[tuple] | None = None, up: str = "") -> str:
    """The full claims table (markdown): the measured figures of both groups with their spread, the verdict, p or
    the interval, and where to look."""
    lines = [COLUMNS + " notebook, results |", "|---" * 8 + "|"]
    lines += [readme_row(*row, up=up) for row in (rows or judged_claims(preset, root))]
    return "\n".join(lines)


def headline_rows(rows: list[tuple]) -> str:
    """The README's short table: the headline claims (`headline=True` in `lab.claims`), each with its source, both
    groups' figures with their spread, the verdict with its evidence, and the executed notebook."""
    lines = [COLUMNS + " notebook |", "|---" * 8 + "|"]
    lines += [f"| {cell(c.text)} | {c.paper} | {evidence_cells(c, j)} | [{Path(n).stem}](book/{Path(n).stem}.ipynb) |"
              for c, j, _, n, _ in rows if c.headline]
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
GPU_MARKS = ("<!-- gpu-recipe:start -->", "<!-- gpu-recipe:end -->")


GPU_CALL_S = 600     # one command on a lent GPU runs at most 10 minutes


def unreached_words(recipe: dict, lr: float) -> str:
    """The seeds of `factor8_lr` at `lr` that ended without reaching the convergence level, and why they ended: a
    seed that stopped before the declared steps was stopped by the plateau rule, which from its first reading
    (step 2 x window) takes a curve still flat at its start for a plateau."""
    stops = recipe["unreached"][lr]
    steps = next(v.cfg.steps for v in ABLATIONS["factor8_lr"].variants("cpu") if v.cfg.lr == lr)
    early = [s for s in stops if s < steps]
    if len(early) == len(stops):
        who = "it was" if len(stops) == 1 else "each was"
    else:
        who = f"{len(early)} {'was' if len(early) == 1 else 'were'}"
    return (f"{len(stops)} of 3 seeds ended without reaching the level (at step {', '.join(map(str, stops))}"
            + (f"; {who} stopped by the plateau rule, which from step {2 * PLATEAU['plateau_window']} takes a flat "
               "start for a plateau" if early else "") + ")")


def gpu_recipe_text(root: Path | None = None) -> str:
    """The README's paragraph on `bash run.sh gpu`: the recipe `gpu_recipe` chooses from `factor8_lr`'s cpu runs,
    the figures it chose from, and its time on an H100 by `gpu_seconds` (from the lease's measured seconds a step)."""
    train = get_preset("gpu").train
    text = ("**On one GPU.** `bash run.sh gpu` trains three seeds of the gpu preset's default experiment (64x64 "
            "samples, conditions at 8x, the official 8x hint encoder) sharing one GPU, and evaluates them.")
    r = gpu_recipe("cpu", root)
    if r is None:
        return text + (f" Its recipe (lr {lr_text(train.lr)}, {train.steps} steps) did not converge on the one GPU "
                       "lease so far; the recipe that replaces it is chosen at the cpu scale by the rule `factor8_lr` "
                       "states before its runs (notebook 19), once seeds 0-2 of both its learning rates have run: "
                       "pending.")
    chose = "; ".join(f"lr {lr_text(lr)}: " + (f"{unreached_words(r, lr)}, so no mean convergence step" if step is None
                                               else f"mean convergence step {step:.0f}")
                      + f", plateau IoU {level:.2f}" for lr, (step, level) in sorted(r["runs"].items()))
    text += (f" Its recipe is chosen at the cpu scale by the rule `factor8_lr` states before its runs (conditions "
             f"at 8x, seeds 0-2, notebook 19: {chose}; the earlier convergence among plateau levels within "
             f"{LR_TOL} of the best): lr {lr_text(r['lr'])}")
    if r["steps"] is None:
        return text + (", but a seed of it did not reach the level at the cpu scale, so the rule gives no step count: "
                       "pending.")
    g = gpu_seconds(r["steps"], root)
    return text + (f", {r['steps']} steps (twice its mean convergence step), validated every {train.val_every}. On an "
                   f"H100 that is about {g['total_s'] / 60:.0f} minutes: {g['train_s']} s of training at the GPU "
                   f"lease's {g['per_step_s']} s a step for three seeds sharing the GPU (validations every 50 steps "
                   f"included), {g['eval_s']:.0f} s for the final evaluations (bounded by the lease's bounds run) and "
                   f"{LAUNCH_S:.0f} s of start-up allowed (`cnref.lab.compute.gpu_seconds`). "
                   + ("That fits one 10-minute GPU call." if g["total_s"] <= GPU_CALL_S else
                      f"That is past one 10-minute GPU call by about {(g['total_s'] - GPU_CALL_S) / 60:.0f} minutes: "
                      "the command needs a longer call, or two (a run resumes from its last checkpoint)."))


CLAIMS_PAGE = Path("docs") / "claims.md"
BEFORE = Path("verdicts") / "before_revision.txt"     # `report verdicts` as printed before the rules were revised


def verdict_changes(rows: list[tuple], root: Path | None = None) -> list[tuple[str, str, str, str]]:
    """Every claim whose verdict differs from the one printed before the rules were revised (BEFORE): (claim as
    worded then, old verdict, new verdict, why), the claims reworded since followed through claims.REVISED."""
    path = results_root(root) / BEFORE
    if not path.is_file():
        return []
    old = re.findall(r"^Claim \(.*?\): (.*?)\.\n(?:.*\n)*?  -> (.*)$", path.read_text(), re.M)
    now = {c.text: (c, j["verdict"]) for c, j, *_ in rows}
    out = []
    for text, was in old:
        new_text, why = REVISED.get(text, (text, None))
        if new_text is None:
            out.append((text, was.lower(), "no longer a claim", why))
        elif new_text in now:
            c, verdict = now[new_text]
            if verdict.lower() != was.lower() or why:
                out.append((text, was.lower(), verdict, why or why_changed(c, was, verdict)))
    return out


def change_categories(changes: list[tuple]) -> str:
    """How the revised rules moved the verdicts, by kind: a verdict of another category (confirmed, refuted,
    unclear, ...), the same category reworded, a pending row judged, a claim dropped."""
    kind = lambda was, now: ("dropped" if now == "no longer a claim" else "pending to judged" if was.startswith("pending")
                             else "same category" if was.split()[0] == now.split()[0] else "category changed")
    n = {k: 0 for k in ("category changed", "same category", "pending to judged", "dropped")}
    for _, was, now, _ in changes:
        n[kind(was.lower(), now.lower())] += 1
    return ", ".join(f"{v} {k}" for k, v in n.items() if v)


def changes_table(changes: list[tuple]) -> str:
    lines = ["| claim (as worded before) | verdict before | verdict now | why |", "|---|---|---|---|"]
    return "\n".join(lines + [f"| {t} | {a} | **{b}** | {w} |" for t, a, b, w in changes])


def write_readme(path: Path, preset: str = "cpu", root: Path | None = None) -> None:
    """Replace what lies between the README's two MARKS with the short claims table and what lies between its
    GPU_MARKS with `gpu_recipe_text`, and write the full table (with the measured figures, the sensitivity table
    and the compute summary) to docs/claims.md beside it."""
    s = path.read_text()
    if not all(m in s for m in (*MARKS, *GPU_MARKS)):
        fail("path", f"a README holding {MARKS[0]} ... {MARKS[1]} and {GPU_MARKS[0]} ... {GPU_MARKS[1]}", str(path))
    a, b = s.index(GPU_MARKS[0]) + len(GPU_MARKS[0]), s.index(GPU_MARKS[1])
    s = s[:a] + "\n" + gpu_recipe_text(root) + "\n" + s[b:]
    rows = judged_claims(preset, root)
    changes = verdict_changes(rows, root)
    a, b = s.index(MARKS[0]) + len(MARKS[0]), s.index(MARKS[1])
    n = sum(1 for c, *_ in rows if c.headline)
    path.write_text(s[:a] + "\n" + headline_rows(rows) + f"\n\n{n} headline findings of {len(rows)} claims; every "
                    f"claim, the convergence verdicts at two other levels, the compute they cost and the "
                    f"{len(changes)} verdicts the revised rules changed ({change_categories(changes)}; old -> new, "
                    f"with the reason): [{CLAIMS_PAGE}]({CLAIMS_PAGE}).\n" + s[b:])
    sens = ("**The convergence verdicts at three levels** (the stated level in bold; the verdict should not hang on "
            "the level's choice):\n\n" + sensitivity_rows(rows, preset, root))
    page = path.parent / CLAIMS_PAGE
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"# Every claim, measured (`{preset}` preset)\n\nGenerated from the committed results by "
                    f"`python -m cnref report readme --preset {preset} --write README.md`; the verdict rule is in "
                    "[verdict-rule.md](verdict-rule.md) and in `cnref.lab.verdict`.\n\n"
                    + readme_rows(preset, root, rows, up="../") + "\n\n" + sens + "\n\n" + compute_lines(preset, root)
                    + f"\n\n## Verdicts changed by the revised rules\n\nAgainst `experiments/{BEFORE}` (the verdicts as "
                    "printed before the rules above replaced a run-length-dependent convergence step, equality on the "
                    "means, and FID), with the rule that moved each:\n\n" + changes_table(changes)
                    + "\n")

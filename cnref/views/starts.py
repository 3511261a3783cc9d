"""How a design's training starts: whether the condition reaches its output before the first update, and how far its
validation fidelity has risen by a few fixed steps. A description of committed runs (written after the runs it
reads), not a test: it shows which curves start flat and which rise from step 0, beside what sets that apart.

The condition reaches the output at step 0 when the run's condition use (`cnref.mini.use`: the loss gap the
condition makes, measured at every validation) is not exactly zero at its step-0 validation. A zero-initialised
gate on the condition's path (ControlNet's zero convs, ControlNet-XS's, or a zero Z1 ahead of random output convs)
makes it exactly zero: the condition cannot change the prediction at all.
"""
from __future__ import annotations

from ..lab.convergence import half_rise_step
from .tables import lr_text, mean_std

STEPS = (0, 20, 50, 100)       # each read at the run's first validation from that step on


def value_from(r: dict, step: int, key: str) -> float | None:
    """`key` at the run's first validation at or after `step` (None when it validated no later)."""
    return next((h[key] for h in r["history"] if h["step"] >= step and h.get(key) is not None), None)


def start_row(rs: list[dict], key: str = "iou") -> dict:
    """One group of runs (one per seed): its lr, how many seeds' condition reached the output at step 0, the
    condition use there and the fidelity at STEPS (mean ± std over seeds), and the half-rise step."""
    cell = lambda xs, d: mean_std(xs, d) if xs else "-"
    use0 = [r["history"][0].get("use_loss_gap") for r in rs]
    measured = [u for u in use0 if u is not None]
    halves = [h for h in (half_rise_step(r["history"], key) for r in rs) if h is not None]
    return {"lr": lr_text(rs[0]["config"]["lr"]), "n": len(rs),
            "reaches": f"{sum(u != 0 for u in measured)} of {len(measured)}" if measured else "not measured",
            "use0": cell(measured, 5),
            "at": {s: cell([v for v in (value_from(r, s, key) for r in rs) if v is not None], 2) for s in STEPS},
            "half": cell(halves, 0)}


def start_table(groups: dict[str, list[dict]], key: str = "iou") -> str:
    """`start_row` of each group as a markdown table, in the order given."""
    head = ("| run | lr | seeds | condition reaches the output at step 0 | condition use at step 0 | "
            + " | ".join(f"{key} from step {s}" for s in STEPS) + " | half-rise step |")
    lines = [head, "|" + "---|" * (6 + len(STEPS))]
    for name, rs in groups.items():
        row = start_row(rs, key)
        lines.append(f"| {name} | {row['lr']} | {row['n']} | {row['reaches']} | {row['use0']} | "
                     + " | ".join(row["at"][s] for s in STEPS) + f" | {row['half']} |")
    return "\n".join(lines)

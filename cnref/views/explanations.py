"""Which explanations of the sudden convergence survive: each explanation with the claims that carry its
predictions (every claim, of an ablation or a study, that names it as its source), their verdicts, and a standing
derived from them by one stated rule."""
from __future__ import annotations

from ..lab.claims import CLAIMS, STUDY_CLAIMS, evaluate_claim, evaluate_study_claim
from ..lab.declare import StudyClaim
from .tables import evidence, verdict_word


# Each explanation, and the sources whose claims carry its predictions: every claim (of an ablation or a study) that
# names one of them as its source, each stated before its runs. Part one's four explanations, then the experiments
# of part two, which ask which part of the ControlNet holds the jump back.
EXPLANATIONS = {
    "the gate opens at a rate set by the optimiser (Adam moves a weight by about lr per step; this project's "
    "hypothesis)": ("this project's hypothesis (gate opening)",),
    "zero convolutions slow the start (ControlNeXt)": ("ControlNeXt (zero convs slow the start)",),
    "a randomly initialised condition embedder (CtrLoRA)": ("CtrLoRA (pretrained embedder)",),
    "uniform timesteps waste the early steps (ControlNet issue #628, T2I-Adapter)":
        ("ControlNet issue #628", "T2I-Adapter (training note)"),
    "the zero-conv gate is the bottleneck (this project's hypothesis)":
        ("this project's hypothesis (the gate is the bottleneck)",),
    "the trainable copy must learn first (rival)": ("rival hypothesis (the copy must learn first)",),
    "the condition's effect starts as a product of two zeros, Z1 then Z2 (this project's hypothesis)":
        ("this project's hypothesis (a product of two zeros)",),
    "the locked decoder must adapt to the residuals (the paper's unlocked-decoder option)":
        ("official docs/train.md (sd_locked)",),
    "the embedder's layers and input scaling, not its pretrained weights (rival to CtrLoRA)":
        ("rival hypothesis (the embedder's architecture, not its weights)",),
    "the copy is ready before the jump; the residuals' size delays the images (this project's hypothesis)":
        ("this project's hypothesis (the copy is ready; the residuals' size delays the images)",),
}


def explanation_claims(sources: tuple[str, ...]) -> list:
    """The claims that carry an explanation's predictions: those of the ablations, then the studies', whose
    source is one of `sources`."""
    return [c for c in (*CLAIMS, *STUDY_CLAIMS) if c.paper in sources]


def judged_explanations(preset: str, root=None) -> dict[str, list[tuple]]:
    """Each explanation's claims with their verdicts, `(claim, judgement)` in `explanation_claims`' order: judged
    once here, read by the table (`explanations`) and by the step factors (`cnref.views.sudden.step_factors`)."""
    judge = lambda c: (evaluate_study_claim(c, preset, root) if isinstance(c, StudyClaim)
                       else evaluate_claim(c, preset, root))
    return {text: [(c, judge(c)) for c in explanation_claims(sources)] for text, sources in EXPLANATIONS.items()}


def leans_against(c, j: dict) -> bool:
    """An unclear verdict whose evidence points against the prediction: an equality whose 90% interval excludes
    0, or an order whose groups' means lie the other way."""
    if not j["verdict"].startswith("unclear") or j.get("a") is None:
        return False
    if c.expect == "=":
        lo, hi = j["ci90"]
        return lo > 0 or hi < 0
    return (j["diff"] < 0) if c.expect == ">" else (j["diff"] > 0)


def standing(cs: list, js: list[dict]) -> str:
    """An explanation's standing from its predictions' verdicts: **survives** when some are confirmed and none
    refuted or leaning against (`leans_against`), **refuted** when some are refuted or lean against and none are
    confirmed, **mixed** when both, else **undecided**."""
    yes = any(j["verdict"] == "confirmed" for j in js)
    no = any(j["verdict"] == "refuted" or leans_against(c, j) for c, j in zip(cs, js))
    return "mixed" if yes and no else "survives" if yes else "refuted" if no else "undecided"


def explanations(judged: dict[str, list[tuple]]) -> str:
    """The reading's table, from `judged_explanations`: each explanation, its predictions' verdicts (with p or
    interval) and its standing."""
    lines, left = ["| explanation | prediction: verdict (evidence) | standing |", "|---|---|---|"], []
    for text, pairs in judged.items():
        cs, js = [c for c, _ in pairs], [j for _, j in pairs]
        ev = lambda c, j: "" if evidence(c, j) == "-" else f" ({evidence(c, j)})"
        # each prediction by its claim's id (its text: docs/claims.md), one per line of the cell
        rows = "<br>".join(f"`{c.id}`: **{verdict_word(j['verdict'])}**{ev(c, j)}" for c, j in zip(cs, js))
        st = standing(cs, js)
        lines.append(f"| {text} | {rows} | **{st}** |")
        if st != "refuted":
            left.append(f"{text} ({st})")
    return "\n".join(lines) + ("\n\nWhat the data leave: " + "; ".join(left) + "." if left else
                              "\n\nThe data leave none of these explanations.")

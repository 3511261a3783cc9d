"""The vocabulary an ablation or a study is declared in: its variants, and its claims, each a metric compared
between two groups of runs in an expected direction (judged by the one rule of cnref.lab.verdict)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ..mini.presets import ControlNetTrainConfig


@dataclass(frozen=True)
class Variant:
    name: str
    cfg: ControlNetTrainConfig


@dataclass(frozen=True)
class Claim:
    text: str                  # the paper's (or official docs') claim, in a few words
    paper: str                 # the paper's figure
    a: str                     # run groups (cnref.lab.claims.runs_of)
    b: str
    expect: str                # ">" | "<" | "="
    key: str = "iou"
    setting: str | None = "held_out/perfect"
    tol: float = 0.0           # for "="
    same_steps: bool = False   # judge both groups on their validation curves up to the shorter run's last step
    key_b: str | None = None   # group b's figure, where it is another than a's (the same runs, two curves)
    headline: bool = False     # one of the README's short table of findings
    timing: bool = False       # a speed claim: a and b are the same fresh processes' median step times
    ablation: str = ""         # the ablation that declares it (its result folder), filled in by `Ablation`
    id: str = ""               # its name within the ablation (the key it is declared under), filled in likewise


@dataclass(frozen=True)
class StudyClaim:
    """A claim about two settings of a study, judged per trained seed by the same rule.
    a / b: setting names."""
    text: str
    paper: str
    a: str
    b: str
    expect: str
    key: str = "edge_f1"
    tol: float = 0.0
    headline: bool = False
    study: str = ""            # the study that declares it, filled in by `Study`
    id: str = ""               # its name within the study (the key it is declared under), filled in likewise


@dataclass(frozen=True)
class Ablation:
    """A training ablation: its variants (a function of the preset), the claims they test, each under its id (a
    reading names a claim by it), and the notebook that reads them (a file of notebooks/)."""
    name: str
    variants: Callable[[str], list[Variant]]
    claims: dict[str, Claim] | tuple[Claim, ...]   # declared {id: claim}, held as a tuple with the ids filled in
    notebook: str

    def __post_init__(self):
        object.__setattr__(self, "claims", tuple(replace(c, ablation=self.name, id=k) for k, c in self.claims.items()))


@dataclass(frozen=True)
class Study:
    """An inference-time study over trained ControlNets: what it sweeps, its claims (each under its id) and its
    notebook."""
    name: str
    title: str
    claims: dict[str, StudyClaim] | tuple[StudyClaim, ...]   # declared {id: claim}, held as a tuple with the ids filled in
    notebook: str

    def __post_init__(self):
        object.__setattr__(self, "claims", tuple(replace(c, study=self.name, id=k) for k, c in self.claims.items()))

"""The procedural data sets, each a pure function of (seed, index), and loaders for real folders.

- `fill50k`: the official tutorial's toy set (a disc, its outline, a colour prompt), exact masks.
- `scenes`: 1-3 shapes with occlusion, five condition types with exact ground truth.
- `io`: the real fill50k folder layout and diffusers-style dataset columns.
"""
from __future__ import annotations

from ...checks import check_choice
from .fill50k import (COLOR_NAMES, COLORS, PALETTE, PROMPT_SETTINGS, SCENE_SETTINGS, TRAIN_SEED, VAL_SEED, Fill50K,
                      batch_at, conflicting_colors, disc_alpha, grid, prompt_for, prompts_for_setting, sample_indices,
                      to_pil, to_uint8, with_setting)
from .fill50k import vocabulary as fill50k_vocabulary
from .scenes import CONDITIONS, Scenes, scene_vocabulary

DATASETS = {"fill50k", "scenes"}


def vocabulary(data: str = "fill50k") -> list[str]:
    """Every word a prompt of the dataset can contain."""
    check_choice("data", data, DATASETS)
    return scene_vocabulary() if data == "scenes" else fill50k_vocabulary()


def dataset(data: str, *, size: int, cond_factor: int, seed: int, n: int | None = None,
            condition: str = "outline"):
    """The procedural set by name: Fill50K (its condition is the outline) or Scenes (any condition type)."""
    check_choice("data", data, DATASETS)
    if data == "fill50k":
        check_choice("condition", condition, {"outline"})
        return Fill50K(size=size, cond_factor=cond_factor, seed=seed, n=n)
    return Scenes(size=size, cond_factor=cond_factor, condition=condition, seed=seed, n=n)


__all__ = ["COLOR_NAMES", "COLORS", "CONDITIONS", "DATASETS", "PALETTE", "PROMPT_SETTINGS", "SCENE_SETTINGS",
           "TRAIN_SEED", "VAL_SEED", "Fill50K", "Scenes", "batch_at", "conflicting_colors", "dataset", "disc_alpha",
           "grid", "prompt_for", "prompts_for_setting", "sample_indices", "to_pil", "to_uint8", "vocabulary", "with_setting"]

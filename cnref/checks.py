"""Input validation: every error names the argument, what was expected and what was received."""
from __future__ import annotations

import torch


def fail(name: str, expected: str, received) -> None:
    raise ValueError(f"`{name}`: expected {expected}, received {received}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        fail(name, f"one of {sorted(choices)}", repr(value))


def check_tensor(name: str, x, *, ndim: int | None = None, channels: int | None = None,
                 batch: int | None = None, size: tuple[int, int] | None = None,
                 floating: bool = True, finite: bool = True) -> None:
    """Raise ValueError if `x` is not a tensor of the expected layout (B, C, H, W for ndim=4)."""
    if not torch.is_tensor(x):
        fail(name, "a torch.Tensor", type(x).__name__)
    if ndim is not None and x.ndim != ndim:
        fail(name, f"a {ndim}-d tensor", f"shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        fail(name, "a floating-point tensor", f"dtype {x.dtype}")
    if batch is not None and x.shape[0] != batch:
        fail(name, f"batch size {batch}", f"batch size {x.shape[0]} (shape {tuple(x.shape)})")
    if channels is not None and x.shape[1] != channels:
        fail(name, f"{channels} channels", f"{x.shape[1]} channels (shape {tuple(x.shape)})")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        fail(name, f"spatial size {tuple(size)}", f"{tuple(x.shape[-2:])} (shape {tuple(x.shape)})")
    if finite and x.is_floating_point() and not torch.isfinite(x).all():
        fail(name, "finite values", "NaN or inf")


def check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value < 0 or (value == 0 and not allow_zero):
        kind = "integer" if integer else "number"
        fail(name, f"a {'non-negative' if allow_zero else 'positive'} {kind}", repr(value))


def check_probability(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        fail(name, "a probability in [0, 1]", repr(value))

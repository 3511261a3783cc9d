"""Input validation: every error names the argument, what was expected and what was received.

Shape, dtype and type checks are always on (they read metadata only). Value checks (finite values, timesteps
in range) read the data: on the CPU that is one pass over it, on a GPU a host sync per call and a graph
break under torch.compile. So by default they run on CPU tensors only; `value_checks(True)` turns them on
everywhere (debugging a GPU run), `value_checks(False)` off.
"""
from __future__ import annotations

import torch

_VALUES: dict[str, bool | None] = {"on": None}      # None: CPU tensors only


def value_checks(enabled: bool | None) -> None:
    """Whether checks look at values: True always, False never, None on CPU tensors only (the default)."""
    _VALUES["on"] = enabled


def looks_at_values(x: torch.Tensor) -> bool:
    if torch.compiler.is_compiling():
        return False
    return x.device.type == "cpu" if _VALUES["on"] is None else bool(_VALUES["on"])


def fail(name: str, expected: str, received) -> None:
    raise ValueError(f"`{name}`: expected {expected}, received {received}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        fail(name, f"one of {sorted(choices)}", repr(value))


def check_tensor(name: str, x, *, ndim: int | None = None, channels: int | None = None,
                 batch: int | None = None, size: tuple[int, int] | None = None,
                 floating: bool = True, finite: bool = True, dtype: torch.dtype | None = None) -> None:
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
    if dtype is not None and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        fail(name, f"dtype {dtype} (the model's; or run under torch.autocast)", f"dtype {x.dtype}")
    if finite and x.is_floating_point() and looks_at_values(x) and not torch.isfinite(x).all():
        fail(name, "finite values", "NaN or inf")


def check_power_of_two(name: str, value, top: int | None = None, why: str = "") -> None:
    """`value` is 1, 2, 4, ... (at most `top` when given): a resolution factor made of stride-2 stages."""
    check_positive(name, value, integer=True)
    if value & (value - 1) or (top is not None and value > top):
        fail(name, "a power of two" + (f" <= {top}" if top is not None else "") + (f" ({why})" if why else ""), value)


def check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value < 0 or (value == 0 and not allow_zero):
        kind = "integer" if integer else "number"
        fail(name, f"a {'non-negative' if allow_zero else 'positive'} {kind}", repr(value))


def check_probability(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        fail(name, "a probability in [0, 1]", repr(value))


def check_timesteps(name: str, t, batch: int, T: int) -> torch.Tensor:
    """t as a (batch,) tensor: a scalar or one timestep per sample, in [0, T) (values checked as above)."""
    t = torch.as_tensor(t)
    if t.dtype == torch.bool or t.is_complex():
        fail(name, "integer or float timesteps", f"dtype {t.dtype}")
    t = t.expand(batch) if t.ndim <= 1 and t.numel() == 1 else t
    if t.shape != (batch,):
        fail(name, f"a scalar or {batch} timesteps", f"shape {tuple(t.shape)}")
    if looks_at_values(t) and not ((t >= 0) & (t < T)).all():       # NaN fails both comparisons
        bad = t[~((t >= 0) & (t < T))][0].item()
        fail(name, f"timesteps in [0, {T})", bad)
    return t

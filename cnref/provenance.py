"""What produced a result: command, commit, device, versions. Written next to every result file."""
from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch


def git_commit() -> str:
    """HEAD (+dirty if cnref/ has changes). A copy without .git (the working tree a GPU machine gets) has
    no commit of its own: CNREF_COMMIT, set by whoever copied it, names the one it came from."""
    if "CNREF_COMMIT" in os.environ:
        return os.environ["CNREF_COMMIT"] + " (copy, per CNREF_COMMIT)"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "cnref"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def uncommitted_diff() -> str:
    """`git diff HEAD -- cnref` of this checkout: what a +dirty result ran beyond its commit."""
    root = Path(__file__).resolve().parent.parent
    try:
        return subprocess.run(["git", "diff", "HEAD", "--", "cnref"], cwd=root, capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "diffusers", "transformers", "lightning", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _program() -> str:
    """`python -m cnref.x` for a module of this package run as a script, else argv[0]."""
    prog = Path(sys.argv[0])
    pkg = Path(__file__).resolve().parent
    if prog.suffix == ".py" and prog.resolve().parent == pkg:
        return "python -m cnref" if prog.stem == "__main__" else f"python -m cnref.{prog.stem}"
    return sys.argv[0]


def provenance(**extra) -> dict:
    return {"command": " ".join([_program()] + sys.argv[1:]),
            "commit": git_commit(), "device": device_name(), "versions": versions(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}

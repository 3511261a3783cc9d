"""Which claims were written after their data, read from git history: a claim's text against the times its runs
were made. A row whose claim first appeared in the package's source after the first of its runs had started is
*post hoc*: its verdict may have shaped its wording, so it is evidence of a weaker kind than one stated before.
"""
from __future__ import annotations

import calendar
import re
import subprocess
import time
from pathlib import Path

from ..checks import fail

LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')      # a double-quoted string literal's contents


def first_written(texts: list[str], repo: Path) -> dict[str, float | None]:
    """The commit time (Unix seconds) at which each text first stood whole in the package's source: the first
    commit with a diff hunk under cnref/ whose string literals, joined in order as Python joins adjacent ones,
    hold it (a hunk keeps three lines of context, so a claim split over lines is found whichever line changed).
    A rewording counts from the rewording. None where the text is not in the history (not yet committed)."""
    try:
        log = subprocess.run(["git", "log", "--reverse", "--format=@@%ct", "-p", "--unified=3", "--", "cnref"],
                             cwd=repo, capture_output=True, text=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        fail("repo", "a git checkout with its history (post hoc rows are read from it)", f"{repo}: {e}")
    found: dict[str, float | None] = {t: None for t in texts}
    todo, when, hunk = set(texts), 0.0, []

    def close():
        joined = "".join(hunk)
        for t in [t for t in todo if t in joined]:
            found[t] = when
            todo.discard(t)
        hunk.clear()

    for line in log.splitlines():
        if line.startswith("@@") and line[2:].isdigit():
            close()
            when = float(line[2:])
        elif line.startswith(("@@ ", "diff ")):
            close()
        elif line.startswith((" ", "+")) and not line.startswith("+++"):
            hunk.extend(LITERAL.findall(line))
    close()
    return found


def run_time(r: dict) -> float | None:
    """When a run started (its provenance's time_utc), in Unix seconds; None for pseudo-runs (benches, bounds)."""
    t = r.get("provenance", {}).get("time_utc")
    return float(calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ"))) if t else None


def post_hoc(written: float | None, groups: list[list[dict]]) -> bool:
    """Whether a claim written at `written` came after its outcome could be seen: after the first run of every
    group it compares had started (a baseline reused from earlier runs alone does not make it post hoc, nor does a
    claim whose runs have not been made)."""
    if any(not runs for runs in groups):
        return False
    starts = [min(ts) for ts in ([t for t in map(run_time, runs) if t is not None] for runs in groups) if ts]
    return bool(starts) and (written is None or written > max(starts))

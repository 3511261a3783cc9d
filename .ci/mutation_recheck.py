"""Rerun chosen mutants of a finished `mutmut run`, each in a fresh pytest process, and record the outcome where
`mutmut results` reads it.

Why: inside mutmut's fork server some mutants hit its wall-clock limit although their tests, run plainly, fail
within seconds (the limit is a few times the tests' own time, and a test that trains a few steps with Lightning
runs much slower in a forked worker). And a survivor is only a survivor of the tests as they were when the run
started: after new tests are written, its verdict is stale. Here each mutant runs in its own
`python -m pytest -x` (MUTANT_UNDER_TEST names it, as mutmut's trampolines expect) over the fast tests of the test
files that exercise its function (from mutmut's own stats) and of the files named for it on the command line, with
a generous limit. Exit 1 (a test failed): killed; 0: survived; past the limit: timeout, as mutmut counts them.

    python .ci/mutation_recheck.py FOLDER --status timeout survived [--files tests/test_x.py ...] [--sample N] [-j 2]

FOLDER is where `mutmut run` ran (it holds mutants/). Copy the current tests into FOLDER/mutants/tests first.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CODES = {"killed": 1, "survived": 0, "timeout": -24, "no tests": 33}


def mutants(folder: Path, statuses: set[int]) -> list[tuple[Path, str]]:
    out = []
    for meta in sorted((folder / "mutants").rglob("*.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        out += [(meta, name) for name, code in codes.items() if code in statuses]
    return out


def test_files(tests_by_function: dict[str, list[str]], name: str, extra: list[str], only: bool) -> list[str]:
    """The test files of the mutated function (mutmut's stats) and `extra`; `extra` alone with `only`."""
    if only:
        return sorted(extra)
    files = {t.split("::")[0] for t in tests_by_function.get(name.rsplit("__mutmut_", 1)[0], [])}
    return sorted(files | set(extra))


def pytest(folder: Path, files: list[str], mutant: str, limit: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUTANT_UNDER_TEST": mutant, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                           *files], cwd=folder / "mutants", env=env, capture_output=True, timeout=limit)


def check_baseline(folder: Path, files: list[str], limit: float) -> None:
    """The tests must pass on the unmutated code where they run (a test that needs a file mutants/ lacks would
    otherwise 'kill' every mutant)."""
    r = pytest(folder, files, "", limit)
    if r.returncode != 0:
        raise SystemExit(f"the tests fail without any mutant in {folder / 'mutants'}: {' '.join(files)}\n"
                         + r.stdout.decode()[-2000:])


def run_one(folder: Path, name: str, files: list[str], limit: float) -> tuple[int, float]:
    t0 = time.time()
    try:
        r = pytest(folder, files, name, limit)
        code = {0: 0, 1: 1}.get(r.returncode)
        if code is None:
            raise RuntimeError(f"{name}: pytest exited {r.returncode}\n{r.stdout.decode()[-2000:]}")
    except subprocess.TimeoutExpired:
        code = -24
    return code, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--status", nargs="+", choices=sorted(CODES), default=["timeout"])
    ap.add_argument("--files", nargs="*", default=[], help="test files (or test ids) every mutant also runs against")
    ap.add_argument("--only-files", action="store_true",
                    help="run --files alone: for survivors, whose other tests already passed them, the tests written since")
    ap.add_argument("--only", default="", help="only mutants whose name starts with this")
    ap.add_argument("--limit", type=float, default=180.0, help="seconds a mutant's tests may take")
    ap.add_argument("--sample", type=int, default=0, help="rerun this many of them, drawn at random (seed 0)")
    ap.add_argument("-j", type=int, default=2)
    a = ap.parse_args()
    todo = [(m, n) for m, n in mutants(a.folder, {CODES[s] for s in a.status}) if n.startswith(a.only)]
    if a.sample:
        todo = sorted(random.Random(0).sample(todo, min(a.sample, len(todo))), key=lambda x: x[1])
    print(f"{len(todo)} mutants to rerun", flush=True)

    stats = json.loads((a.folder / "mutants" / "mutmut-stats.json").read_text())
    files = {n: test_files(stats["tests_by_mangled_function_name"], n, a.files, a.only_files) for _, n in todo}
    for fs in sorted({tuple(fs) for fs in files.values()}):
        check_baseline(a.folder, list(fs), a.limit)
    print("the tests pass without a mutant", flush=True)

    def job(item):
        meta, name = item
        return meta, name, *run_one(a.folder, name, files[name], a.limit)

    with ThreadPoolExecutor(a.j) as pool:
        for k, (meta, name, code, secs) in enumerate(pool.map(job, todo), 1):
            d = json.loads(meta.read_text())      # one writer: results come back to this thread in order
            d["exit_code_by_key"][name] = code
            meta.write_text(json.dumps(d, indent=4))
            word = {c: w for w, c in CODES.items()}[code]
            print(f"[{k}/{len(todo)}] {name}: {word} ({secs:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

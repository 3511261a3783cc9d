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
import itertools
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CODES = {"killed": 1, "survived": 0, "timeout": -24, "no tests": 33, "not checked": None}


def mutants(folder: Path, statuses: set[int]) -> list[tuple[Path, str]]:
    out = []
    for meta in sorted((folder / "mutants").rglob("*.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        out += [(meta, name) for name, code in codes.items() if code in statuses]
    return out


def test_files(stats: dict, name: str, extra: list[str], only: bool, ids: set[str] | None) -> list[str]:
    """The test files of the mutated function (mutmut's stats) and `extra`; `extra` alone with `only`.

    With `ids` (the tests that exist now), the function's own tests instead of their whole files, fastest first
    as mutmut orders them, after `extra` and the module's own test file: a mutant that fails one stops there (-x)."""
    own = f"tests/test_{name.split('.')[2]}.py"
    if only:                        # the mutated module's own file first: most mutants it kills stop there
        return sorted(extra, key=lambda f: f != own)          # stable: the rest in the order given
    tests = stats["tests_by_mangled_function_name"].get(name.rsplit("__mutmut_", 1)[0], [])
    if ids is None:
        return sorted({t.split("::")[0] for t in tests} | set(extra))
    mine = sorted((t for t in tests if t in ids), key=lambda t: stats["duration_by_test"].get(t, 0.0))
    # the named files first, then the test file named after the mutated module, whole: the tests written since the
    # stats were taken (exact refusals, values by hand) are there, and a mutant they kill stops before the slower ones
    first = [own] if any(t.startswith(own + "::") for t in ids) else []
    return sorted(set(extra) - set(first)) + first + [t for t in mine if not t.startswith((own, *extra))]


def collected(folder: Path) -> set[str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow",
                        "-p", "no:cacheprovider"], cwd=folder / "mutants", capture_output=True, text=True)
    return {line for line in r.stdout.splitlines() if "::" in line}


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


def outcome(name: str, rc: int, output: str = "") -> int:
    """pytest's exit status under a mutant as mutmut codes it: 0 passed (survived), 1 a test failed (killed), 2 the
    tests could not even be collected (the mutant breaks an import: killed); anything else is this script's error."""
    if rc not in (0, 1, 2):
        raise RuntimeError(f"{name}: pytest exited {rc}\n{output[-2000:]}")
    return min(rc, 1)


def run_one(folder: Path, name: str, files: list[str], limit: float) -> tuple[int, float]:
    t0 = time.time()
    try:
        r = pytest(folder, files, name, limit)
        code = outcome(name, r.returncode, r.stdout.decode())
    except subprocess.TimeoutExpired:
        code = -24
    return code, time.time() - t0


def forked(folder: Path, todo: list, files: dict, limit: float, j: int):
    """Each mutant's tests in a child forked from this process once it has imported torch, diffusers and cnref (the
    copy under mutants/, its trampolines read MUTANT_UNDER_TEST at every call), so a mutant costs its tests, not a
    pytest start (~8 s on this machine). No tensor op runs here before a fork: the children start no thread pool
    that a fork could leave locked. Yields (meta, name, code, seconds) as the children finish."""
    os.chdir(folder / "mutants")
    sys.path.insert(0, os.getcwd())
    os.environ["OMP_NUM_THREADS"] = "1"      # before torch loads: one thread, no OpenMP pool for a fork to break
    import torch
    torch.set_num_threads(1)
    import importlib
    import pkgutil
    import pytest as _pytest
    import cnref
    for m in pkgutil.walk_packages(cnref.__path__, "cnref."):
        importlib.import_module(m.name)
    running, queue = {}, list(todo)
    while queue or running:
        while queue and len(running) < j:
            meta, name = queue.pop(0)
            pid = os.fork()
            if pid == 0:                                 # the child: its tests under the mutant, quietly
                os.environ["MUTANT_UNDER_TEST"] = name
                fd = os.open(os.devnull, os.O_WRONLY)
                os.dup2(fd, 1), os.dup2(fd, 2)
                code = _pytest.main(["-x", "-q", "-m", "not slow", "-p", "no:cacheprovider", *files[name]])
                os._exit(int(code))
            running[pid] = (meta, name, time.time())
        time.sleep(0.05)
        for pid, (meta, name, t0) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0 and time.time() - t0 > limit:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                code = CODES["timeout"]
            elif done == 0:
                continue
            else:
                code = outcome(name, os.waitstatus_to_exitcode(status))
            del running[pid]
            yield meta, name, code, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--status", nargs="+", choices=sorted(CODES), default=["timeout"])
    ap.add_argument("--files", nargs="*", default=[], help="test files (or test ids) every mutant also runs against")
    ap.add_argument("--only-files", action="store_true",
                    help="run --files alone: for survivors, whose other tests already passed them, the tests written since")
    ap.add_argument("--only", default="", help="only mutants whose name starts with this")
    ap.add_argument("--names", type=Path, help="only the mutants named in this file, one a line")
    ap.add_argument("--limit", type=float, default=180.0, help="seconds a mutant's tests may take")
    ap.add_argument("--sample", type=int, default=0, help="rerun this many of them, drawn at random")
    ap.add_argument("--seed", type=int, default=0, help="the sample's seed")
    ap.add_argument("--by-id", action="store_true",
                    help="run each mutant's own tests (by id, from mutmut's stats) rather than their whole files")
    ap.add_argument("--fork", action="store_true",
                    help="fork each mutant's pytest from one process that has imported the libraries (much faster)")
    ap.add_argument("-j", type=int, default=2)
    a = ap.parse_args()
    a.folder = a.folder.resolve()           # the forked mode runs in mutants/
    named = set(a.names.read_text().split()) if a.names else None
    todo = [(m, n) for m, n in mutants(a.folder, {CODES[s] for s in a.status})
            if n.startswith(a.only) and (named is None or n in named)]
    if a.sample:
        todo = sorted(random.Random(a.seed).sample(todo, min(a.sample, len(todo))), key=lambda x: x[1])
    print(f"{len(todo)} mutants to rerun", flush=True)

    path = a.folder / "mutants" / "mutmut-stats.json"         # absent where mutmut stopped before its stats
    stats = json.loads(path.read_text()) if path.exists() else {"tests_by_mangled_function_name": {}}
    ids = collected(a.folder) if a.by_id else None
    files = {n: test_files(stats, n, a.files, a.only_files, ids) for _, n in todo}
    check_baseline(a.folder, sorted({f for fs in files.values() for f in fs}), 10 * a.limit)
    print("the tests pass without a mutant", flush=True)

    def job(item):
        meta, name = item
        return meta, name, *run_one(a.folder, name, files[name], a.limit)

    untested = [(m, n) for m, n in todo if not files[n]]      # no test to run: recorded as such, nothing forked
    tested = [(m, n) for m, n in todo if files[n]]
    pool = ThreadPoolExecutor(a.j)
    results = forked(a.folder, tested, files, a.limit, a.j) if a.fork else pool.map(job, tested)
    with pool:
        for k, (meta, name, code, secs) in enumerate(
                itertools.chain(((m, n, CODES["no tests"], 0.0) for m, n in untested), results), 1):
            d = json.loads(meta.read_text())      # one writer: results come back to this thread
            d["exit_code_by_key"][name] = code
            meta.write_text(json.dumps(d, indent=4))
            word = {c: w for w, c in CODES.items()}[code]
            print(f"[{k}/{len(todo)}] {name}: {word} ({secs:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

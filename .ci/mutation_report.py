"""The mutation report: `mutmut results --all true` (run where `mutmut run` ran) counted per module, as a markdown
table on stdout.

Killed: a fast test failed on the mutant. Timed out: the tests ran past mutmut's limit on it (a mutant that loops
or slows the code down; counted as caught, as mutation tools do). Survived: every test that runs the mutated function
passed. No tests: no selected test runs the function (not caught). Not checked: the run stopped before it, or it is
outside the run's scope. Equivalent: a survivor listed in `.ci/mutation_equivalent.txt` with the reason no input can
tell it from the original. The score is caught / (checked - equivalent), caught = killed + timed out,
checked = everything but "not checked"; "killed alone" leaves the timeouts out (a lower bound).

    python .ci/mutation_report.py [folder where mutmut ran] [--sample LOG ...] [--rerun LOG ...] > table.md
"""
import argparse
import collections
import re
import subprocess
import sys
from pathlib import Path

EQUIVALENT = Path(__file__).with_name("mutation_equivalent.txt")


def equivalent() -> dict[str, str]:
    """mutant name -> why it is equivalent, from lines "name  # reason"."""
    out = {}
    for line in EQUIVALENT.read_text().splitlines() if EQUIVALENT.exists() else []:
        name, _, why = line.partition("#")
        if name.strip():
            out[name.strip()] = why.strip()
    return out


def module_of(mutant: str) -> str:
    module = mutant.rsplit(".", 1)[0]               # cnref.paper.loss.x_eq3_loss__mutmut_3 -> cnref.paper.loss
    return re.sub(r"\.x[ǁ_].*$", "", module)        # a method's mutant: cnref.paper.hint.xǁClassǁmethod


def counts(folder: str) -> dict[str, collections.Counter]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=folder,
                         capture_output=True, text=True, check=True).stdout
    eq = equivalent()
    by = collections.defaultdict(collections.Counter)
    for line in out.splitlines():
        m = re.match(r"\s*(\S+__mutmut_\d+): (.+)", line)
        if m:
            name, status = m.group(1), m.group(2)
            if status == "survived" and name in eq:
                status = "equivalent"
            by[module_of(name)][status] += 1
    return by


def table(by: dict[str, collections.Counter]) -> str:
    rows = ["| module | mutants | killed | timed out | survived | no tests | equivalent | not checked | score | killed alone |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for module, c in sorted(by.items()):
        caught = c["killed"] + c["timeout"]
        judged = caught + c["survived"] + c["no tests"]
        part = " (part-way)" if c["not checked"] else ""
        score, alone = (f"{caught / judged:.0%}{part}", f"{c['killed'] / judged:.0%}") if judged else ("-", "-")
        rows.append(f"| `{module}` | {sum(c.values())} | " + " | ".join(str(c[s]) for s in
                    ("killed", "timeout", "survived", "no tests", "equivalent", "not checked")) + f" | {score} | {alone} |")
    return "\n".join(rows)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a proportion k / n."""
    p, d = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / d, z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / d
    return mid - half, mid + half


def outcomes(log: str) -> dict[str, str]:
    """mutant -> outcome, from a log of mutation_recheck.py."""
    out = {}
    for line in Path(log).read_text().splitlines():
        m = re.match(r"\[\d+/\d+\] (\S+): (killed|survived|timeout|no tests)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def sampled(samples: list[str], reruns: list[str], by: dict[str, collections.Counter]) -> str:
    """From the logs of random samples (`mutation_recheck.py --sample N`) of the mutants that were timed out or not
    checked, and of later reruns (a sampled mutant's last outcome counts; other mutants in a rerun are not the
    sample's): per module, how many the first run killed, the sample's last outcomes, the share killed with its
    interval, and "killed alone" had the rest of those mutants been killed at that share (the sample's own outcomes
    are in the table already). Where tests were written for the sample's survivors, the share after them is an
    upper estimate for the rest, and the first run's share a lower one."""
    first = {name: status for log in samples for name, status in outcomes(log).items()}
    last = dict(first)
    for log in reruns:
        last.update({n: st for n, st in outcomes(log).items() if n in last})
    outcome, before, eq = collections.defaultdict(collections.Counter), collections.Counter(), equivalent()
    for name, status in last.items():
        if name not in eq:              # an equivalent mutant is out of the score, sampled or not
            outcome[module_of(name)][status] += 1
            before[module_of(name)] += first[name] == "killed"
    rows = ["| module | sampled | killed first | killed | survived | timed out again | share killed [95% CI] | rest | "
            "killed alone, estimated [95% CI] |", "|---|---|---|---|---|---|---|---|---|"]
    for module, o in sorted(outcome.items()):
        n, c = sum(o.values()), by[module]
        rest = c["timeout"] + c["not checked"] - o["timeout"]     # not yet rechecked: the sample speaks for them
        judged = sum(c.values()) - c["equivalent"]
        lo, hi = wilson(o["killed"], n)
        est = lambda f: (c["killed"] + f * rest) / judged
        rows.append(f"| `{module}` | {n} | {before[module]} | {o['killed']} | {o['survived']} | {o['timeout']} | "
                    f"{o['killed'] / n:.0%} [{lo:.0%}, {hi:.0%}] | {rest} | "
                    f"{est(o['killed'] / n):.0%} [{est(lo):.0%}, {est(hi):.0%}] |")
    return "\n".join(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=".")
    ap.add_argument("--sample", nargs="*", default=[], help="logs of random samples (mutation_recheck.py --sample)")
    ap.add_argument("--rerun", nargs="*", default=[], help="logs of later reruns of some of the sampled mutants")
    a = ap.parse_args()
    by = counts(a.folder)
    print(table(by))
    if a.sample:
        print("\n" + sampled(a.sample, a.rerun, by))

"""The mutation report: `mutmut results --all true` (run where `mutmut run` ran) counted per module, as a markdown
table on stdout. Killed: a fast test failed on the mutant. Survived: every test that runs the mutated function
passed. No tests: no selected test runs the function. Not checked: the run stopped before it.

    python .ci/mutation_report.py [folder where mutmut ran] > table.md
"""
import collections
import re
import subprocess
import sys

STATUSES = ("killed", "survived", "timeout", "no tests", "not checked")


def counts(folder: str) -> dict[str, collections.Counter]:
    out = subprocess.run(["mutmut", "results", "--all", "true"], cwd=folder, capture_output=True, text=True,
                         check=True).stdout
    by = collections.defaultdict(collections.Counter)
    for line in out.splitlines():
        m = re.match(r"\s*(\S+?)__mutmut_\d+: (.+)", line)
        if m:
            module = m.group(1).rsplit(".", 1)[0]        # cnref.paper.loss.x_eq3_loss -> cnref.paper.loss
            module = re.sub(r"\.x[ǁ_].*$", "", module)    # a method's mutant: cnref.paper.hint.xǁClassǁmethod
            by[module][m.group(2)] += 1
    return by


def table(by: dict[str, collections.Counter]) -> str:
    rows = ["| module | mutants | killed | survived | timed out | no tests | not checked | killed / checked |",
            "|---|---|---|---|---|---|---|---|"]
    for module, c in sorted(by.items()):
        checked = c["killed"] + c["survived"] + c["timeout"]
        score = f"{c['killed'] / checked:.0%}" if checked else "-"
        rows.append(f"| `{module}` | {sum(c.values())} | " + " | ".join(str(c[s]) for s in
                    ("killed", "survived", "timeout", "no tests", "not checked")) + f" | {score} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(counts(sys.argv[1] if len(sys.argv) > 1 else ".")))

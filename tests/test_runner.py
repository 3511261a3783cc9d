"""The runner on the smoke preset: skips finished runs, reuses identical configs, never overwrites silently."""
import json

import pytest

from cnref.lab.ablations import ABLATIONS
from cnref.cli import main
from cnref.lab.runner import run, run_one

pytestmark = pytest.mark.slow        # the runner trains smoke runs, some in several processes


def test_runner_skips_and_refuses_to_overwrite(tmp_path):
    out = run("sudden_convergence", "smoke", [0], root=tmp_path)[0]
    path = tmp_path / "sudden_convergence" / "smoke" / "controlnet" / "seed0.json"
    saved = json.loads(path.read_text())
    assert saved["complete"] and saved["config"]["seed"] == 0 and saved["provenance"]["commit"]
    assert saved["history"] == out["history"] and (path.with_suffix(".npz")).exists()
    logs = []
    v = ABLATIONS["sudden_convergence"]("smoke")[0]
    run_one("sudden_convergence", v, 0, tmp_path, log=logs.append)
    assert logs[0].startswith("skip")
    with pytest.raises(ValueError, match="--force"):
        run("sudden_convergence", "smoke", [0], root=tmp_path, sets=("steps=6",))


def test_jobs_split_the_seeds_over_processes(tmp_path):
    """--jobs 2: two processes at once, one seed each; each result says it shared the machine."""
    assert main(["run", "sudden_convergence", "--preset", "smoke", "--root", str(tmp_path), "--seeds", "0", "1",
                 "--jobs", "2"]) == 0
    for s in (0, 1):
        r = json.loads((tmp_path / "sudden_convergence" / "smoke" / "controlnet" / f"seed{s}.json").read_text())
        assert r["complete"] and r["seed"] == s and r["concurrent_processes"] == 2
    assert main(["run", "sudden_convergence", "--preset", "smoke", "--root", str(tmp_path), "--jobs", "0"]) == 2

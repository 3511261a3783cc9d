"""The runner on the smoke preset: skips finished runs, reuses identical configs, never overwrites silently."""
import json
from pathlib import Path

import pytest

from cnref.lab.ablations import ABLATIONS
from cnref.cli import main
from cnref.lab.runner import run, run_one


@pytest.mark.slow        # trains smoke runs
def test_runner_skips_and_refuses_to_overwrite(tmp_path):
    out = run("sudden_convergence", "smoke", [0], root=tmp_path)[0]
    path = tmp_path / "sudden_convergence" / "smoke" / "controlnet" / "seed0.json"
    saved = json.loads(path.read_text())
    assert saved["complete"] and saved["config"]["seed"] == 0 and saved["provenance"]["commit"]
    assert saved["history"] == out["history"] and (path.with_suffix(".npz")).exists()
    logs = []
    v = ABLATIONS["sudden_convergence"].variants("smoke")[0]
    run_one("sudden_convergence", v, 0, tmp_path, log=logs.append)
    assert logs[0].startswith("skip")
    with pytest.raises(ValueError, match="--force"):
        run("sudden_convergence", "smoke", [0], root=tmp_path, sets=("steps=6",))


@pytest.mark.slow        # two training processes
def test_jobs_split_the_seeds_over_processes(tmp_path):
    """--jobs 2: two processes at once, one seed each; each result says it shared the machine."""
    assert main(["run", "sudden_convergence", "--preset", "smoke", "--root", str(tmp_path), "--seeds", "0", "1",
                 "--jobs", "2"]) == 0
    for s in (0, 1):
        r = json.loads((tmp_path / "sudden_convergence" / "smoke" / "controlnet" / f"seed{s}.json").read_text())
        assert r["complete"] and r["seed"] == s and r["concurrent_processes"] == 2
    assert main(["run", "sudden_convergence", "--preset", "smoke", "--root", str(tmp_path), "--jobs", "0"]) == 2


def test_results_from_uncommitted_code_are_refused_or_carry_their_diff(tmp_path, monkeypatch):
    """For the repository's experiments/: a +dirty commit is refused at launch, or with allow_dirty the diff
    is written next to the result and named in its provenance. Other roots (tests, scratch) are not checked."""
    from cnref.lab import runner
    prov = {"commit": "abc+dirty"}
    monkeypatch.setattr(runner, "uncommitted_diff", lambda: "diff --git a/cnref/x.py b/cnref/x.py\n")
    monkeypatch.setattr(runner, "results_root", lambda root=None: tmp_path if root is None else root)
    with pytest.raises(ValueError, match=r"`tree`: expected committed code .*received uncommitted changes"):
        runner.check_clean(prov, tmp_path, False, tmp_path / "a" / "seed0.diff")
    out = runner.check_clean(prov, tmp_path, True, tmp_path / "a" / "seed0.diff")
    assert out["diff"] == "seed0.diff" and (tmp_path / "a" / "seed0.diff").read_text().startswith("diff --git")
    assert runner.check_clean(prov, tmp_path / "elsewhere", False, tmp_path / "b.diff") == prov
    assert runner.check_clean({"commit": "abc"}, tmp_path, False, tmp_path / "c.diff") == {"commit": "abc"}


def test_a_scratch_run_takes_its_convergence_level_from_the_committed_calibration(tmp_path):
    """A rerun into a scratch folder (no calibration rows there) is judged at the committed level of its preset and
    seed."""
    from cnref.lab.convergence import calibrations, run_level
    from cnref.lab.results import results_root
    from cnref.lab.runner import level_for
    from cnref.mini.presets import config_dict, preset
    cfg = preset("cpu").train
    committed = run_level(config_dict(cfg), calibrations("cpu", results_root())["fill50k"])
    assert committed is not None and level_for(cfg, tmp_path) == committed


def _finished(tmp_path, ablation: str, variant: str, cfg: dict, **extra) -> Path:
    """A result file as the runner leaves a finished run: complete, with final images' FID, on the shipped base."""
    from cnref.mini.shipping import base_sha256
    path = tmp_path / ablation / cfg["preset"] / variant / f"seed{cfg['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    r = {"complete": True, "config": cfg, "final_eval": {"held_out/perfect": {"iou": 0.5, "fid": 3.0}},
         "provenance": {"base_sha256": base_sha256(cfg["preset"])}, **extra}
    path.write_text(json.dumps(r))
    return path


def test_a_finished_run_of_the_same_config_is_found_in_any_ablation_and_nothing_else_is(tmp_path):
    """find_identical: the same config, finished, on the shipped base, in another ablation's folder, is reused; a
    different config, an unfinished run, a reuse of a reuse, an older base or the run's own file is not."""
    from cnref.lab.runner import find_identical
    from cnref.mini.presets import config_dict, override, preset
    cfg = config_dict(override(preset("smoke").train, ["seed=1"]))
    me = tmp_path / "mine" / "smoke" / "v" / "seed1.json"
    assert find_identical(cfg, tmp_path, me) is None
    other = config_dict(override(preset("smoke").train, ["seed=1", "lr=3e-4"]))
    _finished(tmp_path, "a", "lr", other)
    _finished(tmp_path, "b", "unfinished", cfg, complete=False)
    _finished(tmp_path, "c", "reused", cfg, reused_from="x")
    _finished(tmp_path, "d", "old_base", cfg, provenance={"base_sha256": "0" * 64})
    assert find_identical(cfg, tmp_path, me) is None
    same = _finished(tmp_path, "e", "default", cfg)
    assert find_identical(cfg, tmp_path, me) == same
    assert find_identical(cfg, tmp_path, same) is None           # never itself


@pytest.mark.slow        # trains a smoke run, then samples its final evaluation again
def test_reevaluating_a_run_from_its_checkpoint_reproduces_its_final_evaluation(tmp_path):
    from cnref.lab.runner import reevaluate
    run("sudden_convergence", "smoke", [0], root=tmp_path)
    path = tmp_path / "sudden_convergence" / "smoke" / "controlnet" / "seed0.json"
    before = json.loads(path.read_text())["final_eval"]
    after = reevaluate(path, tmp_path)
    assert after["final_eval"] == before and after["final_eval_provenance"]["commit"]
    (tmp_path / "_runs" / "sudden_convergence" / "smoke" / "controlnet" / "seed0" / "ckpt" / "last.ckpt").unlink()
    with pytest.raises(ValueError, match="checkpoint"):
        reevaluate(path, tmp_path)

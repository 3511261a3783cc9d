"""The command line as a new user meets it: a bad argument is one line naming it, exit status 2, no traceback;
`--set` reaches any config field and is recorded in the result."""
import json
import subprocess
import sys

import pytest

from cnref.cli import main


@pytest.mark.parametrize("argv,message", [
    (["run", "zero_init", "--seeds", "-1"], "`seeds`: expected a non-negative integer, received -1"),
    (["run", "zero_init", "--set", "steps=0"], "`steps`: expected a positive integer, received 0"),
    (["run", "zero_init", "--set", "lr=abc"], "`--set lr`: expected a float, received 'abc'"),
    (["run", "zero_init", "--set", "stepz=3"], "`--set`: expected a field of ControlNetTrainConfig"),
    (["run", "zero_init", "--set", "prompt_dropout=1.5"], "`prompt_dropout`: expected a probability in [0, 1]"),
    (["run", "zero_init", "--variants", "nope"], "`variants`: expected one of ['gaussian_0.02', 'gaussian_0.2', 'zero']"),
    (["run", "lite", "--jobs", "0"], "`jobs`: expected a positive integer, received 0"),
    (["train", "controlnet", "--preset", "smoke", "--run-dir", "x", "--set", "control.factor=3"],
     "`factor`: expected a power of two <= 8"),
    (["train", "controlnet", "--preset", "smoke", "--run-dir", "x", "--set", "train_folder=/no/such/folder"],
     "`train_folder`: expected a fill50k folder holding prompt.json"),
])
def test_bad_arguments_are_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, *(["--root", str(tmp_path)] if argv[0] == "run" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow        # about 9 s: each case a fresh interpreter
def test_argparse_errors_are_one_line_too():
    p = subprocess.run([sys.executable, "-m", "cnref", "run", "nope"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "invalid choice: 'nope'" in p.stderr


def test_a_missing_package_is_one_line_at_the_start():
    """OpenCV hidden from the interpreter: the command stops at once, naming the package and the install line."""
    code = ("import sys, runpy; sys.modules['cv2'] = None; sys.argv = ['cnref', 'list']; "
            "runpy.run_module('cnref', run_name='__main__')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip() == ("cnref: missing opencv-python-headless: install with `pip install -e . -c "
                                "constraints.txt` (bash run.sh sets up .venv this way)")


@pytest.mark.slow
def test_set_overrides_are_recorded_in_the_result(tmp_path):
    assert main(["run", "sudden_convergence", "--preset", "smoke", "--seeds", "0", "--root", str(tmp_path),
                 "--set", "steps=2", "protocol.val_n=2", "lr=3e-4"]) == 0
    r = json.loads((tmp_path / "sudden_convergence" / "smoke" / "controlnet" / "seed0.json").read_text())
    assert (r["config"]["steps"], r["config"]["val_n"], r["config"]["lr"]) == (2, 2, 3e-4)
    assert [h["step"] for h in r["history"]] == [0, 2]


@pytest.mark.slow
def test_a_rerun_goes_to_scratch_and_is_shown_against_the_committed_seeds(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    args = ["run", "sudden_convergence", "--preset", "smoke", "--seeds", "0", "--set", "steps=4"]
    assert main([*args, "--record", "--allow-dirty"]) == 0                # the "committed" result, validated at 0, 2, 4
    committed = sorted(p.name for p in (tmp_path / "experiments").rglob("*") if p.is_file())
    capsys.readouterr()
    assert main([*args, "--seeds", "1", "--set", "steps=2"]) == 0         # a reader's shorter rerun: the later --set wins
    out = capsys.readouterr().out
    ref = json.loads(next((tmp_path / "experiments").rglob("seed0.json")).read_text())
    at_2 = next(h["iou"] for h in ref["history"] if h["step"] == 2)
    assert f"iou at step 2 {at_2:.3f}" in out.split("committed")[1]      # compared at the rerun's own last step
    assert sorted(p.name for p in (tmp_path / "experiments").rglob("*") if p.is_file()) == committed   # untouched
    assert (tmp_path / "runs" / "scratch" / "experiments" / "sudden_convergence" / "smoke" / "controlnet" /
            "seed1.json").exists()
    assert "this run (seed 1)" in out and "committed (1 seeds)" in out
    assert (tmp_path / "runs" / "scratch" / "sudden_convergence_smoke.png").stat().st_size > 10_000

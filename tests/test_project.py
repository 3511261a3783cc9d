"""The project's set-up files agree with each other (pyproject.toml is the one source of dependencies)."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = (ROOT / "environment.yml").read_text()
    lines = [l.strip() for l in env.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert "- -e .[dev]" in lines, "environment.yml must install the project with its dev extras"
    assert "dev" in py["optional-dependencies"]
    python = re.search(r"- python=(\d+\.\d+)", env).group(1)
    minimum = re.search(r">=(\d+\.\d+)", py["requires-python"]).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, minimum.split(".")))
    # the torch pin that avoids a CUDA build is the one run.sh installs, and pyproject's range admits it
    pin = re.search(r"- torch==([\d.]+)", env).group(1)
    assert f"torch=={pin}" in (ROOT / "run.sh").read_text()
    torch_req = next(d for d in py["dependencies"] if d.startswith("torch"))
    low = re.search(r">=([\d.]+)", torch_req).group(1)
    assert tuple(map(int, pin.split("."))) >= tuple(map(int, low.split(".")))
    assert "==" not in torch_req, "an exact torch pin in pyproject would pull a CUDA build on some machines"
    # nothing else is listed in environment.yml: one source of truth
    pip_items = [l for l in lines if l.startswith("- ") and not l.startswith(("- python", "- pip", "- conda-forge"))]
    assert sorted(pip_items) == sorted(["- torch==" + pin, "- -e .[dev]"])


def test_readme_commands_are_run_sh_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "bash run.sh experiment" in readme and "bash run.sh test" in readme
    assert "bash run.sh test" in (ROOT / ".ci" / "run").read_text()


def test_readme_claims_table_is_the_committed_results(tmp_path):
    """The table and compute summary are generated (`python -m cnref report readme --write README.md`),
    never typed: regenerating them from the committed results changes nothing."""
    from cnref.views.readme import CLAIMS_PAGE, write_readme
    copy = tmp_path / "README.md"
    copy.write_text((ROOT / "README.md").read_text())
    write_readme(copy)
    assert copy.read_text() == (ROOT / "README.md").read_text()
    assert (tmp_path / CLAIMS_PAGE).read_text() == (ROOT / CLAIMS_PAGE).read_text()

"""The package's shape: its layers contract holds, nothing imports a cnref module inside a function, and a
function-local import of anything else says why it is deferred."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted((ROOT / "cnref").rglob("*.py"))


def test_layers_contract_holds():
    """import-linter's contracts in pyproject.toml (layers: each module imports only from below it)."""
    p = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                        "lint_imports_command()", "--no-cache"],          # no cache folder written into the repository
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "0 broken" in p.stdout, p.stdout[-3000:] + p.stderr[-2000:]


def function_imports(path: Path):
    src = path.read_text()
    lines = src.splitlines()
    for fn in ast.walk(ast.parse(src)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node, lines[node.lineno - 1]


def test_no_function_local_imports_of_cnref_and_others_say_why():
    for path in MODULES:
        for node, line in function_imports(path):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            local = isinstance(node, ast.ImportFrom) and node.level > 0
            assert not local and not any(n.startswith("cnref") for n in names), f"{path}:{node.lineno}: {line}"
            assert "# deferred:" in line, f"{path}:{node.lineno}: a function-local import without its reason: {line}"


def test_long_modules_say_why_at_the_top():
    for path in MODULES:
        n = len(path.read_text().splitlines())
        if n > 300:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "Why this module is long" in doc, f"{path} has {n} lines and no reason stated at its top"

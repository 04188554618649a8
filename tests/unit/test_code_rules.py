"""The code's own rules, in `make test-fast`: imports follow the layers (import-linter: the contracts in
pyproject.toml, docs/architecture.md's table), ruff's lint over everything and its format over the core and the
service (schemas, serving), mypy over them."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True)


def test_imports_follow_the_layers():
    checked = run("lint-imports")
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert "0 broken" in checked.stdout


def test_ruff_lints_everything_and_formats_the_core_and_the_service():
    lint = run("ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout[-4000:]
    formatted = run("ruff", "format", "--check", "schemas", "serving")
    assert formatted.returncode == 0, formatted.stdout[-4000:]


def test_mypy_types_the_core_and_the_service():
    typed = run("mypy")
    assert typed.returncode == 0, typed.stdout[-4000:]

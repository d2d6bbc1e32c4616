"""The import graph points one way: cli -> stages -> store/api, and built-ins -> api only."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "noisyctl"


def imported_modules(path: Path) -> list[str]:
    """Every absolute module a file imports, at any depth (function-level imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_builtin_plugins_import_only_the_public_api():
    """The built-ins are the code third parties copy: they use what a third party gets."""
    reaching = {str(path.relative_to(PACKAGE)): module
                for path in (PACKAGE / "builtin").rglob("*.py")
                for module in imported_modules(path)
                if module.split(".")[0] == "noisyctl" and not module.startswith("noisyctl.api")}
    assert not reaching, reaching


def test_only_the_cli_imports_the_cli():
    reaching = {str(path.relative_to(PACKAGE)): module
                for path in PACKAGE.rglob("*.py")
                if path.parts[len(PACKAGE.parts)] not in ("cli", "__main__.py")
                for module in imported_modules(path) if module.startswith("noisyctl.cli")}
    assert not reaching, reaching


# The estimate's layers, each reading what the ones before it give (noisyctl/estimate/__init__.py).
ESTIMATE_LAYERS = ["mixture", "rate", "evidence", "held_out", "annotators", "run"]


def test_the_estimate_layers_import_only_the_layers_before_them():
    reaching = {}
    for position, layer in enumerate(ESTIMATE_LAYERS):
        for module in imported_modules(PACKAGE / "estimate" / f"{layer}.py"):
            if module.startswith("noisyctl.estimate.") and module.split(".")[2] not in ESTIMATE_LAYERS[:position]:
                reaching[layer] = module
    assert not reaching, reaching


def test_commands_that_never_train_start_without_torch():
    """`prune`, `report`, `plugins` and `detect -d loss` pay neither torch's start-up nor its memory."""
    code = ("import sys\nfrom noisyctl.cli import create_app\nfrom noisyctl import plugins\n"
            "create_app(); plugins.registry()\nprint(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

"""The client stands alone: no server code, no AWS library, in its source or in what importing it loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ROOT / "client" / "tensorgate_client"
FORBIDDEN = (
    "boto3",
    "botocore",
    "aioboto3",
    "moto",
    "tensorgate",
    "tensorgate_preprocessing",
    "tensorgate_local",
    "functions",
    "layers",
    "aws_lambda_powertools",
)


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_client_sources_import_no_server_or_aws_module() -> None:
    sources = sorted(CLIENT.rglob("*.py"))
    assert len(sources) >= 10
    offending = {str(path.relative_to(ROOT)): sorted(imported_roots(path) & set(FORBIDDEN)) for path in sources}
    assert {path: names for path, names in offending.items() if names} == {}


def test_client_and_command_load_no_server_or_aws_module() -> None:
    """Import everything the command can run (every subcommand, drawing) in a fresh interpreter."""
    script = (
        "import sys, pkgutil, importlib, tensorgate_client\n"
        "for module in pkgutil.walk_packages(tensorgate_client.__path__, 'tensorgate_client.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd="/"
    ).stdout.split()
    assert "tensorgate_client" in loaded and "requests" in loaded
    assert sorted(set(loaded) & set(FORBIDDEN)) == []

"""components/ copied into another project: what it imports beyond Pulumi and the standard library is named in the
package's docstring, where a copier reads it (a copy without handlers/ failed at its first import of a component)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import components
from tests.infra.conftest import ROOT

NEEDED_BY_EVERY_PULUMI_PROGRAM = frozenset({"pulumi", "pulumi_aws"})


def imported_packages(package_dir: Path) -> dict[str, list[str]]:
    """Top-level packages a package's modules import (deferred imports too), outside the standard library and the
    package itself -> the files importing each."""
    found: dict[str, list[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {package_dir.name, "__future__"}:
                    found.setdefault(top, []).append(path.relative_to(package_dir.parent).as_posix())
    return found


def unnamed_imports(package_dir: Path, docstring: str) -> list[str]:
    return sorted(
        f"{top} ({', '.join(sorted(set(files)))})"
        for top, files in imported_packages(package_dir).items()
        if top not in NEEDED_BY_EVERY_PULUMI_PROGRAM and f"`{top}`" not in docstring
    )


def test_components_docstring_names_every_package_a_copy_of_it_needs():
    assert unnamed_imports(ROOT / "components", components.__doc__ or "") == []


def test_an_import_the_docstring_does_not_name_is_caught(tmp_path):
    package = tmp_path / "components"
    (package / "dynamic").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "policies.py").write_text("import json\nimport pulumi\nfrom handlers.proxy_core import LIMIT\n")
    (package / "dynamic" / "p.py").write_text("def client():\n    import boto3\n    return boto3\n")
    (package / "site.py").write_text("from components import policies\nfrom . import policies as p\n")
    assert unnamed_imports(package, "needs `handlers`") == ["boto3 (components/dynamic/p.py)"]
    assert unnamed_imports(package, "") == ["boto3 (components/dynamic/p.py)", "handlers (components/policies.py)"]

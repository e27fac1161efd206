"""components/ copied into another project: what it imports beyond Pulumi and the standard library is named in the
package's docstring, where a copier reads it (a copy without handlers/ failed at its first import of a component)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import components
from tests.infra.conftest import ROOT

NEEDED_BY_EVERY_PULUMI_PROGRAM = frozenset({"pulumi", "pulumi_aws"})


def sibling_files(root: Path, module: str) -> list[Path]:
    """The files under `root` that importing `module` runs: each package's __init__.py down to it, and the module."""
    parts = module.split(".")
    candidates = [root.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1)]
    return [path for path in [*candidates, root.joinpath(*parts).with_suffix(".py")] if path.is_file()]


def imported_packages(package_dir: Path) -> dict[str, list[str]]:
    """Top-level packages a package's modules import (deferred imports too), outside the standard library and the
    package itself -> the files importing each. The modules of sibling packages it imports (handlers/proxy_core.py)
    are read too: a copy takes them along, and their imports run at the copy's first import as its own do."""
    root = package_dir.parent
    pending = sorted(package_dir.rglob("*.py"))
    read = set(pending)
    found: dict[str, list[str]] = {}
    while pending:
        path = pending.pop(0)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]  # `from handlers import proxy_core` imports a module by its last name
                modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {package_dir.name, "__future__"}:
                    found.setdefault(top, []).append(path.relative_to(root).as_posix())
            for module in modules:
                if module.split(".")[0] != package_dir.name:
                    new = [file for file in sibling_files(root, module) if file not in read]
                    read.update(new)
                    pending.extend(new)
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


def test_what_the_handlers_module_a_component_imports_needs_is_caught(tmp_path):
    """A copy takes handlers/proxy_core.py along (the docstring says so): a package it comes to import fails the
    copy's first import as surely as one a component imports, so it must be named too."""
    (tmp_path / "components").mkdir()
    (tmp_path / "handlers").mkdir()
    (tmp_path / "components" / "__init__.py").write_text("")
    (tmp_path / "components" / "policies.py").write_text("from handlers.proxy_core import LIMIT\n")
    (tmp_path / "handlers" / "__init__.py").write_text("")
    (tmp_path / "handlers" / "proxy_core.py").write_text("import json\nfrom aws_lambda_powertools import Logger\n")
    (tmp_path / "handlers" / "inference_proxy.py").write_text("import boto3\n")  # the Lambda's, no component's
    assert unnamed_imports(tmp_path / "components", "needs `handlers`") == [
        "aws_lambda_powertools (handlers/proxy_core.py)"
    ]

"""What goes into the inference proxy's Lambda asset: handlers/ plus the installed Powertools.

The deploy has no network (no pip install at `pulumi up`), so the libraries the handler needs are copied from
the installed distributions, found through importlib.metadata RECORD files. Pure: it only reads the file
system and returns archive-path -> file; the Pulumi component turns that into an AssetArchive.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement

from components.bundle_dir import bundle_dir_files

HANDLER_PACKAGE = "handlers"
# What the handler imports beyond the runtime: copied, with what it requires, from the deploy venv (requirements.txt
# pins each of them, so that every venv gives the same asset).
BUNDLED_DISTRIBUTIONS = ("aws-lambda-powertools",)
# Already in the Lambda Python runtime; bundling them would only pin an older copy over AWS's.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "urllib3", "six", "python-dateutil"})
# Compiled extensions built for this machine would not load on Lambda's arm64/x86_64 Python 3.13.
_NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")


class BundleError(RuntimeError):
    """The asset cannot be built as asked; the message names the distribution or file."""


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# What the installer writes into a .dist-info, not the package: pip writes INSTALLER "pip", uv writes "uv", and RECORD
# lists hashes of its own. The runtime reads none of them (importlib.metadata needs METADATA), and keeping them would
# make the asset's hash, and so a redeploy, depend on the tool that built the venv.
_INSTALLER_FILES = frozenset({"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"})


def _installer_file(parts: tuple[str, ...]) -> bool:
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _INSTALLER_FILES


def _skipped(parts: Iterable[str]) -> bool:
    parts = list(parts)
    return "__pycache__" in parts or parts[-1].endswith((".pyc", ".pyo"))


def _runtime_requirements(dist: metadata.Distribution) -> list[str]:
    """Names of a distribution's unconditional requirements (extras off, markers for this interpreter)."""
    names = []
    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise BundleError(f"{dist.metadata['Name']}: cannot parse requirement {line!r}: {exc}") from exc
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        names.append(requirement.name)
    return names


def resolve_distributions(names: Iterable[str]) -> list[metadata.Distribution]:
    """The named distributions and, transitively, their runtime requirements, minus the runtime-provided."""
    found: dict[str, metadata.Distribution] = {}
    pending = [canonical_name(n) for n in names]
    while pending:
        name = pending.pop()
        if name in found or name in RUNTIME_PROVIDED:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise BundleError(f"distribution {name!r} is not installed; install it into the deploy venv") from None
        found[name] = dist
        pending.extend(canonical_name(r) for r in _runtime_requirements(dist))
    return [found[k] for k in sorted(found)]


def _add(files: dict[str, Path], arcname: str, source: Path) -> None:
    previous = files.get(arcname)
    if previous is not None and previous != source:
        raise BundleError(f"two files want archive path {arcname!r}: {previous} and {source}")
    files[arcname] = source


def lambda_asset_files(handler_dir: Path, distributions: Iterable[str] = BUNDLED_DISTRIBUTIONS) -> dict[str, Path]:
    """Map archive-relative POSIX path -> absolute file for the Lambda asset.

    handlers/ goes under "handlers/" (the Lambda handler is "handlers.inference_proxy.handler"); each
    distribution's files go at the archive root so `import aws_lambda_powertools` works. Byte code, caches,
    hidden files and folders under handler_dir and files a RECORD places outside site-packages (console scripts)
    are left out; a symlink under handler_dir that leaves it is an error.
    """
    handler_dir = Path(handler_dir).resolve()
    if not (handler_dir / "__init__.py").is_file():
        raise BundleError(f"{handler_dir} is not a Python package (no __init__.py)")
    files: dict[str, Path] = {}
    # Hidden files and folders are left out and a symlink must stay inside handler_dir (components/bundle_dir.py).
    for relative, path in bundle_dir_files(handler_dir, _skipped, BundleError).items():
        _add(files, f"{HANDLER_PACKAGE}/{relative}", path)

    for dist in resolve_distributions(distributions):
        if dist.files is None:  # an egg-info or legacy develop install: nothing says which files are its own
            raise BundleError(
                f"{dist.metadata['Name']} lists no files (no RECORD), so none would be bundled and the function "
                "would fail with an ImportError; reinstall it with pip into the deploy venv"
            )
        for record_path in dist.files:
            posix = PurePosixPath(str(record_path).replace("\\", "/"))
            if posix.is_absolute() or ".." in posix.parts or _skipped(posix.parts) or _installer_file(posix.parts):
                continue
            source = Path(str(dist.locate_file(record_path))).resolve()
            if not source.is_file():
                continue  # RECORD may list files an installer later removed
            if source.name.endswith(_NATIVE_SUFFIXES) or ".cpython-" in source.name:
                raise BundleError(
                    f"{dist.metadata['Name']} ships a compiled extension ({posix}); it would not match the "
                    "Lambda runtime - build the asset with pip --platform instead"
                )
            _add(files, posix.as_posix(), source)
    return files

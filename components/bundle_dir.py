"""Which files of a source directory go into a bundle: the one rule the project's three bundles share.

handlers/ (the Lambda asset, components/lambda_bundle.py), www/ (the site bucket, public through CloudFront,
components/policies.py) and model/code/ (code/ in model.tar.gz, model/package.py) are all walked here:

- Hidden files and folders (a name that starts with ".") are left out at any depth: a .env or .aws/credentials holds
  secrets, and a .venv, .git, .DS_Store or tool cache is not the bundle's and changes between runs, which would
  change the bundle (and redeploy it) at every run.
- A symlink, to a file or to a folder, is bundled at the link's path when it resolves inside the directory (to a
  path that is not hidden). One that resolves outside it, is dangling or loops is an error naming the link and its
  target: following it would ship (for www/, publish to the world) whatever it points at, ~/.aws/credentials
  included, and skipping it would only surface after the deploy as an ImportError or a missing page.
- A name that is not UTF-8 is an error naming it: an S3 key is UTF-8, and the site's hash, the Lambda asset's zip
  and Pulumi's RPC would otherwise fail with a UnicodeEncodeError that names no file.

Pure apart from reading the directory tree; no file content is read here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

Skip = Callable[[tuple[str, ...]], bool]


class BundleDirError(ValueError):
    """A directory cannot be bundled as it is; the message names the path and the fix."""


def engine_path(path: Path | str) -> str:
    """`path` as Pulumi's engine opens it, for a FileAsset: its bytes read as UTF-8. The engine takes the path's text
    as UTF-8 bytes, while Python decodes a name in the locale's codeset: under LANG=en_US.ISO-8859-1 (Python coerces
    only C and POSIX) www/café.jpg is cafÃ©.jpg, which names no file there, and under C without coercion its lone
    surrogates cannot cross Pulumi's RPC at all. The same text under a UTF-8 locale."""
    raw = os.fsencode(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleDirError(f"the path {raw!r} is not UTF-8, which Pulumi needs to read the file: rename it") from None


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") for part in parts)


def bundle_dir_files(
    root: Path,
    skip: Skip = lambda parts: False,
    error: Callable[[str], Exception] = BundleDirError,
) -> dict[str, Path]:
    """Map POSIX path relative to root -> the regular file (symlinks resolved) to bundle there, sorted by path.

    skip(parts) leaves out a file or a whole folder by its path below root (byte code, caches, a generated file),
    before its links are looked at; hidden names are always left out. error builds the caller's exception.
    """
    real_root = Path(root).resolve()
    files: dict[str, Path] = {}
    _walk(real_root, (), real_root, frozenset({real_root}), skip, error, files)
    return dict(sorted(files.items()))


def _walk(
    directory: Path,
    prefix: tuple[str, ...],
    real_root: Path,
    ancestors: frozenset[Path],
    skip: Skip,
    error: Callable[[str], Exception],
    files: dict[str, Path],
) -> None:
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda entry: entry.name)
    except OSError as exc:
        raise error(f"cannot list {directory}: {exc.strerror or exc}") from None
    for entry in entries:
        # The name's bytes read as UTF-8, not in the locale's codeset: under LANG=en_US.ISO-8859-1 a www/café.jpg
        # was keyed cafÃ©.jpg (its page's link a 404) and a name that is not UTF-8 passed.
        name = os.fsencode(entry.name).decode("utf-8", "surrogateescape")
        parts = (*prefix, name)
        if name.startswith(".") or skip(parts):
            continue
        path = Path(entry.path)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8, kept above as lone surrogates
            raise error(
                f"the name of {os.fsencode(path)!r} is not UTF-8, which an S3 key, a zip or a Python import needs "
                "(it would fail later without naming the file): rename it"
            ) from None
        try:
            real = _link_target(path, real_root, skip, error) if entry.is_symlink() else path
            is_dir, is_file = real.is_dir(), real.is_file()
        except OSError as exc:  # EACCES on a file in a folder the deployer may list but not search
            raise error(f"cannot read {path}: {exc.strerror or exc}") from None
        if is_dir:
            if real in ancestors:
                raise error(f"{path} is a symlink to {os.readlink(path)}, a folder that contains it: it would loop")
            _walk(real, parts, real_root, ancestors | {real}, skip, error, files)
        elif is_file:  # sockets, FIFOs and devices are nothing a bundle can hold
            files["/".join(parts)] = real


def _link_target(link: Path, real_root: Path, skip: Skip, error: Callable[[str], Exception]) -> Path:
    target = os.readlink(link)
    fix = f"replace the link with a copy of the file(s) in {real_root}"
    try:
        real = link.resolve(strict=True)
    except PermissionError:
        raise  # not missing: the caller names it as unreadable
    except (OSError, RuntimeError):  # missing, or a loop of links (RuntimeError up to Python 3.12, OSError after)
        raise error(f"{link} is a symlink to {target}, which does not exist or loops: {fix}, or remove it") from None
    if not real.is_relative_to(real_root) or _hidden(real.relative_to(real_root).parts):
        raise error(
            f"{link} is a symlink to {target} ({real}), outside {real_root} or hidden in it: a bundle follows no "
            f"link there, as it would ship that file (for the site, publish it to the world); {fix}"
        )
    parts = real.relative_to(real_root).parts
    if any(skip(parts[:depth]) for depth in range(1, len(parts) + 1)):
        raise error(
            f"{link} is a symlink to {target}, a file this bundle leaves out (generated or byte code): it would "
            f"ship that file under another name; {fix}, or remove it"
        )
    return real

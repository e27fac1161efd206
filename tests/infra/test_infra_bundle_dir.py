"""components/bundle_dir.py: the rule for hidden files and symlinks that the three bundles share.

Each case runs through all three callers: handlers/ -> the Lambda asset (lambda_asset_files), www/ -> the public
site bucket (site_files) and model/code/ -> code/ in model.tar.gz (code_files).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from components import policies
from components.bundle_dir import BundleDirError, bundle_dir_files, engine_path
from components.lambda_bundle import BundleError, lambda_asset_files
from model import package
from tests.conftest import names_of, run_in_an_ascii_locale

Bundle = Callable[[Path], dict[str, bytes]]


def _lambda(directory: Path) -> dict[str, bytes]:
    (directory / "__init__.py").write_text("")
    files = lambda_asset_files(directory, distributions=())
    return {k.removeprefix("handlers/"): p.read_bytes() for k, p in files.items() if k != "handlers/__init__.py"}


def _site(directory: Path) -> dict[str, bytes]:
    if not (directory / "index.html").exists():
        (directory / "index.html").write_text("")  # the one file a site must have
    files = policies.read_site_files(policies.site_files(directory))
    return {k: v for k, v in files.items() if k != "index.html"}


def _code(directory: Path) -> dict[str, bytes]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(package, "CODE_DIR", directory)
        return {k.removeprefix("code/"): v for k, v in package.code_files().items()}


BUNDLES = {
    "lambda": (_lambda, BundleError),
    "site": (_site, policies.PolicyInputError),
    "code": (_code, BundleDirError),
}


@pytest.fixture(params=sorted(BUNDLES))
def bundle(request, tmp_path) -> tuple[Bundle, type[Exception], Path]:
    """(the bundle builder, the error it raises, an empty directory to bundle with a sibling `outside/`)."""
    build, error = BUNDLES[request.param]
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("SECRET")
    (tmp_path / "dir").mkdir()
    return build, error, tmp_path / "dir"


def test_links_inside_the_directory_are_bundled_at_the_links_path(bundle):
    """A link, to a file or to a folder, that stays inside is bundled with its target's bytes; Python 3.11's rglob
    yields a linked folder without descending into it, which left its files out silently."""
    build, _, root = bundle
    (root / "samples").mkdir()
    (root / "samples" / "a.txt").write_text("A")
    (root / "samples" / "deep").mkdir()  # two folders down, each file keeps its whole path
    (root / "samples" / "deep" / "d.txt").write_text("D")
    (root / "page.txt").write_text("P")
    (root / "alias.txt").symlink_to("page.txt")
    (root / "samples" / "up.txt").symlink_to("../page.txt")
    (root / "pics").symlink_to("samples", target_is_directory=True)
    assert build(root) == {
        "alias.txt": b"P",
        "page.txt": b"P",
        "pics/a.txt": b"A",
        "pics/deep/d.txt": b"D",
        "pics/up.txt": b"P",
        "samples/a.txt": b"A",
        "samples/deep/d.txt": b"D",
        "samples/up.txt": b"P",
    }
    assert build(root) == build(root)


def test_the_directory_itself_may_be_a_link(bundle, tmp_path):
    """Its links are judged against the folder it resolves to, or every link inside would look like one out of it."""
    build, _, root = bundle
    (root / "page.txt").write_text("P")
    (root / "alias.txt").symlink_to("page.txt")
    (tmp_path / "linked").symlink_to(root, target_is_directory=True)
    assert build(tmp_path / "linked") == {"alias.txt": b"P", "page.txt": b"P"}


def test_a_hidden_folder_above_the_directory_hides_nothing(bundle, tmp_path):
    """Hidden names are judged below the directory, a link's target too: a checkout under ~/.local/ or a CI
    runner's .work/ bundles its links, as it bundles its files."""
    build, _, _ = bundle
    root = tmp_path / ".work" / "dir"
    (root / "samples").mkdir(parents=True)
    (root / "samples" / "a.txt").write_text("A")
    (root / "page.txt").write_text("P")
    (root / "alias.txt").symlink_to("page.txt")
    (root / "pics").symlink_to("samples", target_is_directory=True)
    assert build(root) == {"alias.txt": b"P", "page.txt": b"P", "pics/a.txt": b"A", "samples/a.txt": b"A"}


def test_files_are_sorted_by_path_and_map_to_the_resolved_target(tmp_path):
    """The documented contract of bundle_dir_files: sorted by the POSIX path (not by walk order, which puts a/b
    before a-b), each to the regular file a link resolves to, a file in a linked folder and below a linked root too."""
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "b.txt").write_text("B")
    (root / "a-b.txt").write_text("AB")
    (root / "alias.txt").symlink_to("a-b.txt")
    (root / "c").symlink_to("a", target_is_directory=True)
    files = bundle_dir_files(root)
    assert list(files) == ["a-b.txt", "a/b.txt", "alias.txt", "c/b.txt"]
    assert files["alias.txt"] == (root / "a-b.txt").resolve()
    assert files["c/b.txt"] == (root / "a" / "b.txt").resolve()
    (tmp_path / "linked").symlink_to(root, target_is_directory=True)
    assert bundle_dir_files(tmp_path / "linked") == files


def test_a_fifo_is_left_out(tmp_path):
    """Nothing a bundle can hold: reading a FIFO would block the deploy forever (so is this test, had it a bundle)."""
    (tmp_path / "page.txt").write_text("P")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "pipe-link").symlink_to("pipe")
    assert list(bundle_dir_files(tmp_path)) == ["page.txt"]


@pytest.mark.parametrize(
    "link, target, directory",
    [
        ("creds.txt", "../outside/secret.txt", False),  # e.g. www/creds -> ~/.aws/credentials: published
        ("shared", "../outside", True),  # a package shared with another project: left out, an ImportError later
        ("sub/deep.txt", "../../outside/secret.txt", False),
        ("abs.txt", "{tmp}/outside/secret.txt", False),
        ("old.txt", "../dir-old/secret.txt", False),  # a sibling whose name starts with the directory's: www-old/
    ],
)
def test_a_link_out_of_the_directory_is_an_error_naming_it_and_the_fix(bundle, tmp_path, link, target, directory):
    build, error, root = bundle
    (root / "sub").mkdir()
    (tmp_path / "dir-old").mkdir()
    (tmp_path / "dir-old" / "secret.txt").write_text("SECRET")
    (root / "page.txt").write_text("P")
    target = target.format(tmp=tmp_path)
    (root / link).symlink_to(target, target_is_directory=directory)
    with pytest.raises(error) as raised:
        build(root)
    message = str(raised.value)
    assert str(root.resolve() / link) in message and target in message and "copy" in message
    # The directory the rule holds to, not the folder the link sits in (sub/ for sub/deep.txt).
    assert f"outside {root.resolve()} or hidden in it" in message


@pytest.mark.parametrize(
    "case", ["dangling", "loop", "ancestor", "grandparent", "root", "hidden target", "hidden folder", "hidden below"]
)
def test_dangling_looping_and_hidden_links_are_errors(bundle, case):
    """Skipping them would turn into an ImportError or a missing page after the deploy; following a link to the
    folder that holds it would never end; a visible name for a hidden file would ship the .env it points at, at any
    depth: a file in a hidden folder (.git/config), or a hidden file in a visible one (sub/.env)."""
    build, error, root = bundle
    (root / "sub" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "page.txt").write_text("P")
    for secret in (".env", ".git/config", "sub/.env"):
        (root / secret).write_text("AWS_SECRET_ACCESS_KEY=x")
    link = {
        "dangling": ("gone.txt", "missing.txt"),
        "loop": ("a.txt", "b.txt"),
        "ancestor": ("sub/up", ".."),
        "grandparent": ("sub/deep/up", ".."),  # loops through sub/, a folder below the root
        "root": ("all", "."),
        "hidden target": ("env.txt", ".env"),
        "hidden folder": ("git.txt", ".git/config"),
        "hidden below": ("env.txt", "sub/.env"),
    }[case]
    if case == "loop":
        (root / "b.txt").symlink_to("a.txt")
    (root / link[0]).symlink_to(link[1])
    # The link and what it points at, as written: a dangling one names the name it was given, to fix or remove.
    with pytest.raises(error, match=re.escape(f"{root.resolve() / link[0]} is a symlink to {link[1]}")):
        build(root)


def test_hidden_names_are_left_out_before_their_links_are_looked_at(bundle):
    """A hidden link is never shipped, wherever it points (an editor's .#lock file is a dangling link)."""
    build, _, root = bundle
    (root / "page.txt").write_text("P")
    (root / ".creds").symlink_to("../outside/secret.txt")
    (root / ".#page.txt").symlink_to("user@host.1234:1700000000")
    (root / ".venv").symlink_to("../outside", target_is_directory=True)
    assert build(root) == {"page.txt": b"P"}


def test_model_package_reports_a_bad_link_in_one_line(tmp_path, monkeypatch, capsys):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("")
    (code / "helper.py").symlink_to(tmp_path / "elsewhere.py")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"w")
    monkeypatch.setattr(package, "CODE_DIR", code)
    monkeypatch.delenv("MODEL_WEIGHTS", raising=False)
    assert package.main(["--weights", str(weights), "--no-onnx", "--out", str(tmp_path / "m.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {code / 'helper.py'} is a symlink") and "Traceback" not in err
    assert not (tmp_path / "m.tar.gz").exists()


@pytest.mark.parametrize("name", [b"caf\xe9.txt", b"latin\xe9/a.txt"])
def test_a_name_that_is_not_utf8_is_an_error_naming_it(bundle, name):
    """An S3 key is UTF-8: the site's content hash died with a UnicodeEncodeError naming no file, and the Lambda
    asset and the tarball would carry a name no one can import or request."""
    build, error, root = bundle
    (root / "page.txt").write_text("P")
    path = os.path.join(os.fsencode(root), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"x")
    named = repr(os.path.join(os.fsencode(root.resolve()), name.split(b"/")[0]))
    with pytest.raises(error, match=re.escape(named) + ".* is not UTF-8"):
        build(root)


def test_a_name_is_read_as_utf8_whatever_the_locales_codeset(tmp_path):
    """Under LANG=en_US.ISO-8859-1 (Python coerces only C and POSIX to UTF-8) www/café.jpg was keyed cafÃ©.jpg, a 404
    for the page that links it, and caf\\xe9.jpg passed. The C locale with coercion and UTF-8 mode off stands in for
    such a locale (every glibc has it): there café.jpg was refused as not UTF-8."""
    for name in ("café.txt", "dossier-é/a.txt"):
        path = os.path.join(os.fsencode(tmp_path), name.encode("utf-8"))  # the bytes a checkout has, in any locale
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"x")
    script = (
        "import sys; from pathlib import Path; from components.bundle_dir import bundle_dir_files; "
        "print(ascii(list(bundle_dir_files(Path(sys.argv[1])))))"
    )
    assert run_in_an_ascii_locale(script, os.fsencode(tmp_path)) == ascii(["café.txt", "dossier-é/a.txt"]) + "\n"


def test_a_file_assets_path_is_its_bytes_read_as_utf8_whatever_the_locales_codeset(tmp_path):
    """Pulumi's engine opens a FileAsset's path as the UTF-8 bytes of its text. Under LANG=en_US.ISO-8859-1 Python
    decodes www/café.jpg as cafÃ©.jpg, which names no file for the engine, and under C without coercion (standing in
    here for any such locale) as lone surrogates, which Pulumi's RPC cannot send."""
    raw = os.path.join(os.fsencode(tmp_path), "café.jpg".encode())
    script = (
        "import os, sys; from components.bundle_dir import engine_path; "
        "path = os.fsdecode(os.fsencode(sys.argv[1])); print(ascii([path == sys.argv[1], engine_path(path)]))"
    )
    assert run_in_an_ascii_locale(script, raw) == ascii([True, os.fsdecode(tmp_path) + "/café.jpg"]) + "\n"


def test_a_file_assets_path_is_given_back_the_bytes_the_filesystem_encoding_read(monkeypatch):
    """Under LANG=en_US.ISO-8859-1 Python reads www/café.jpg as cafÃ©.jpg, with no lone surrogate to tell: only the
    filesystem encoding gives the name's bytes back, and the text's own UTF-8 bytes name no file. A Latin-1
    os.fsencode stands in for that locale, which a machine need not have installed: the module's alone, not the
    process's (another thread may encode a name meanwhile)."""
    from types import SimpleNamespace

    latin1 = SimpleNamespace(fsencode=lambda path: os.fspath(path).encode("latin-1"))
    monkeypatch.setattr("components.bundle_dir.os", latin1)
    assert engine_path(Path("www/cafÃ©.jpg")) == "www/café.jpg"


def test_a_file_assets_path_that_is_not_utf8_is_an_error_naming_it():
    assert engine_path(Path("www/index.html")) == "www/index.html"
    assert engine_path("/srv/dépôt/model.tar.gz") == "/srv/dépôt/model.tar.gz"
    with pytest.raises(BundleDirError, match=re.escape(repr(b"/srv/d\xe9p\xf4t/model.tar.gz")) + ".*not UTF-8"):
        engine_path(os.fsdecode(b"/srv/d\xe9p\xf4t/model.tar.gz"))


def test_every_file_asset_of_the_components_takes_its_path_through_engine_path():
    """A FileAsset given str(path) works under a UTF-8 locale only: the three bundles and the model artifact all go
    through engine_path."""
    import ast

    from tests.conftest import ROOT

    calls = [
        (source.name, node)
        for source in sorted((ROOT / "components").rglob("*.py"))
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "FileAsset"
    ]
    assert len(calls) == 3
    for name, call in calls:
        [argument] = call.args
        assert isinstance(argument, ast.Call) and getattr(argument.func, "id", None) == "engine_path", name


def test_a_folder_that_cannot_be_listed_is_an_error_naming_it(bundle, monkeypatch):
    """rglob skipped a folder it may not read without a word (its files would be missing after the deploy)."""
    build, error, root = bundle
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("A")
    scandir = os.scandir

    def refuse(path):
        if Path(path).name == "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr("components.bundle_dir.os", names_of(os, scandir=refuse))  # os.scandir is every thread's
    with pytest.raises(error, match=re.escape(f"cannot list {root.resolve() / 'sub'}: Permission denied")):
        build(root)


@pytest.mark.parametrize(
    "kind, target, pointed",
    [
        ("site", "config.js", "config.js"),  # left in www/ by the local stack: its stale API URL would go out
        ("lambda", "__pycache__/old.txt", "__pycache__/old.txt"),
        ("lambda", "__pycache__/old.txt", "__pycache__"),  # a link to the left-out folder itself
        ("lambda", "old.pyc", "old.pyc"),
        ("code", "old.pyc", "old.pyc"),
        ("code", "__pycache__/old.txt", "__pycache__"),
    ],
)
def test_a_link_to_a_file_the_bundle_leaves_out_is_an_error(tmp_path, kind, target, pointed):
    """The bundle leaves that file out on purpose; a link to it would ship its content under the link's name."""
    build, error = BUNDLES[kind]
    root = tmp_path / "dir"
    (root / target).parent.mkdir(parents=True, exist_ok=True)
    (root / target).write_text("LEFT OUT")
    (root / "page.txt").write_text("P")
    (root / "x.txt").symlink_to(pointed)
    with pytest.raises(error, match=re.escape(f"{root.resolve() / 'x.txt'} is a symlink to {pointed}, a file this")):
        build(root)


@pytest.mark.parametrize(
    "kind, name, target",
    [
        ("site", "config.js", "../outside/secret.txt"),
        ("lambda", "__pycache__", "../outside"),  # a cache folder shared with another checkout
        ("lambda", "old.pyc", "gone.pyc"),
        ("code", "__pycache__", "../outside"),
        ("code", "old.pyc", "gone.pyc"),
    ],
)
def test_a_name_the_bundle_leaves_out_is_left_out_before_its_link_is_looked_at(tmp_path, kind, name, target):
    """skip() leaves a file or folder out by its path, whatever it points at: a link out of the directory or a
    dangling one is no error there, as it is never bundled."""
    build, _ = BUNDLES[kind]
    root = tmp_path / "dir"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("SECRET")
    (root / "page.txt").write_text("P")
    (root / name).symlink_to(target)
    assert build(root) == {"page.txt": b"P"}


@pytest.mark.parametrize("code", [errno.EACCES, errno.EIO])
def test_an_entry_that_cannot_be_read_is_an_error_naming_it(bundle, monkeypatch, code):
    """A folder the deployer may list but not search: stat fails with EACCES, which escaped as a bare
    PermissionError (a traceback from pulumi up) instead of the bundle's error naming the file; so does a disk
    that fails the read (EIO)."""
    build, error, root = bundle
    (root / "page.txt").write_text("P")
    (root / "alias.txt").symlink_to("page.txt")

    class Refusing(type(Path())):  # the walk's own Path (its entries'): Path.is_dir itself is every thread's
        def is_dir(self):
            if self.name in ("page.txt", "alias.txt"):
                raise OSError(code, os.strerror(code), str(self))
            return super().is_dir()

    monkeypatch.setattr("components.bundle_dir.Path", Refusing)
    says = f"cannot read {root.resolve() / 'alias.txt'}: {os.strerror(code)}"
    with pytest.raises(error, match=re.escape(says)):
        build(root)


def test_a_link_that_cannot_be_resolved_for_permissions_is_not_called_missing(bundle, monkeypatch):
    build, error, root = bundle
    (root / "page.txt").write_text("P")
    (root / "alias.txt").symlink_to("page.txt")

    class Refusing(type(Path())):  # the walk's own Path (its entries'): Path.resolve itself is every thread's
        def resolve(self, strict=False):
            if self.name == "alias.txt":
                raise PermissionError(13, "Permission denied", str(self))
            return super().resolve(strict=strict)

    monkeypatch.setattr("components.bundle_dir.Path", Refusing)
    with pytest.raises(error, match=re.escape(f"cannot read {root.resolve() / 'alias.txt'}: Permission denied")):
        build(root)

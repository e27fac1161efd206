"""components.lambda_bundle: the Lambda asset holds handlers/ and Powertools with its runtime dependencies."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from components.lambda_bundle import BundleError, canonical_name, lambda_asset_files, resolve_distributions

from .conftest import REPO_ROOT

HANDLERS = REPO_ROOT / "handlers"


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return lambda_asset_files(HANDLERS)


def test_handler_package_is_included_under_handlers(files):
    assert files["handlers/inference_proxy.py"] == (HANDLERS / "inference_proxy.py").resolve()
    assert "handlers/__init__.py" in files
    assert "handlers/proxy_core.py" in files


def test_powertools_and_its_runtime_requirements_are_at_the_root(files):
    assert "aws_lambda_powertools/__init__.py" in files
    assert "aws_lambda_powertools/logging/logger.py" in files
    assert "jmespath/__init__.py" in files
    assert "typing_extensions.py" in files
    assert any(name.startswith("aws_lambda_powertools-") and ".dist-info/" in name for name in files)


def test_runtime_provided_and_optional_extras_are_left_out(tmp_path, monkeypatch):
    # fastjsonschema (Powertools' validation extra, pure Python) is not in the venv: an asset that took that extra
    # in failed on the missing distribution, never on this check. A stand-in is installed so this check sees it.
    fake_distribution(tmp_path / "site", "fastjsonschema", {"fastjsonschema/__init__.py": ""})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    tops = {PurePosixPath(name).parts[0] for name in lambda_asset_files(HANDLERS)}
    for provided in ("boto3", "botocore", "s3transfer", "urllib3", "six.py", "dateutil"):
        assert provided not in tops
    for extra in ("pydantic", "aws_xray_sdk", "fastjsonschema", "cryptography"):  # installed, but extras only
        assert extra not in tops


def test_paths_are_relative_posix_without_bytecode(files):
    assert files
    for name, source in files.items():
        path = PurePosixPath(name)
        assert not path.is_absolute() and ".." not in path.parts and "\\" not in name
        assert "__pycache__" not in path.parts and not name.endswith((".pyc", ".pyo"))
        assert source.is_absolute() and source.is_file()


def test_bytecode_and_caches_in_handlers_are_skipped(tmp_path):
    package = tmp_path / "handlers"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inference_proxy.py").write_text("handler = None\n")
    (package / "__pycache__" / "inference_proxy.cpython-311.pyc").write_bytes(b"\x00")
    (package / "__pycache__" / "inference_proxy.handler-1.py312.nbi").write_bytes(b"\x00")  # numba's cache
    (package / "stale.pyc").write_bytes(b"\x00")
    (package / "stale.pyo").write_bytes(b"\x00")
    (package / "sub").mkdir()
    (package / "sub" / "stale.pyc").write_bytes(b"\x00")  # byte code below the top folder, not in a __pycache__
    (package / ".DS_Store").write_bytes(b"\x00")
    files = lambda_asset_files(package, distributions=())
    assert sorted(files) == ["handlers/__init__.py", "handlers/inference_proxy.py"]


def test_hidden_files_and_folders_in_handlers_are_skipped_at_any_depth(tmp_path):
    """A .env or .aws/credentials is a secret (.git/config may hold a token in a remote's URL); a .venv, .git or a
    tool's cache is not the function's and changes between runs, which would change the asset (and redeploy the
    function) at every `pulumi up`. A hidden folder above handlers/ is no reason to skip anything."""
    package = tmp_path / ".checkout" / "handlers"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inference_proxy.py").write_text("handler = None\n")
    (package / "sub" / "ok.py").write_text("")
    before = lambda_asset_files(package, distributions=())
    assert sorted(before) == ["handlers/__init__.py", "handlers/inference_proxy.py", "handlers/sub/ok.py"]
    for hidden, text in {
        ".env": "AWS_SECRET_ACCESS_KEY=x\n",
        ".venv/lib/x.py": "",
        ".git/config": "[core]\n",
        ".aws/credentials": "[default]\n",
        ".ruff_cache/0.9.0/123": "",
        "sub/.hidden/y.py": "",
        "sub/.mypy_cache/3.11/ok.data.json": "{}",
    }.items():
        (package / hidden).parent.mkdir(parents=True, exist_ok=True)
        (package / hidden).write_text(text)
    assert lambda_asset_files(package, distributions=()) == before


def test_not_a_package_is_an_error(tmp_path):
    with pytest.raises(BundleError, match=r"__init__\.py"):
        lambda_asset_files(tmp_path, distributions=())
    (tmp_path / "__init__.py").mkdir()  # a folder of that name makes no package either
    with pytest.raises(BundleError, match=r"__init__\.py"):
        lambda_asset_files(tmp_path, distributions=())


def test_missing_distribution_is_named(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    with pytest.raises(BundleError) as err:
        lambda_asset_files(tmp_path, distributions=("no-such-dist-xyz",))
    # Held whole: the name, and what puts it where the deploy reads it.
    assert str(err.value) == "distribution 'no-such-dist-xyz' is not installed; install it into the deploy venv"


def test_resolution_is_transitive_and_skips_the_runtime(files):
    names = [canonical_name(d.metadata["Name"]) for d in resolve_distributions(["aws-lambda-powertools", "boto3"])]
    assert names == ["aws-lambda-powertools", "jmespath", "typing-extensions"]


@pytest.mark.parametrize("name", ["boto3", "botocore", "s3transfer", "urllib3", "six", "python-dateutil"])
def test_each_runtime_provided_distribution_is_left_out_however_it_is_spelt(name):
    """A requirement may spell a name in any case with - _ or . (PEP 503); each of them is the runtime's."""
    assert resolve_distributions([name, name.upper().replace("-", "."), name.title().replace("-", "_")]) == []


def test_canonical_name_folds_case_and_separator_runs():
    assert canonical_name("Zope.Interface__Extra-_.x") == "zope-interface-extra-x"


def test_requirements_with_a_true_marker_are_followed_and_a_bad_one_is_named(tmp_path, monkeypatch):
    site = tmp_path / "site"
    # An extra's requirement listed before the one that applies (as METADATA may order them): the rest is still read.
    needs = ('never-dist; extra == "docs"', 'dep-dist; python_version >= "3"')
    fake_distribution(site, "needs-dist", {"needs/__init__.py": ""}, needs)
    fake_distribution(site, "dep-dist", {"dep/__init__.py": ""}, ('never-dist; python_version < "3"',))
    fake_distribution(site, "broken-dist", {"broken/__init__.py": ""}, ("not a requirement!",))
    monkeypatch.syspath_prepend(str(site))
    assert [d.metadata["Name"] for d in resolve_distributions(["needs-dist"])] == ["dep-dist", "needs-dist"]
    # The line, then the parser's reason for refusing it.
    with pytest.raises(BundleError, match=r"^broken-dist: cannot parse requirement 'not a requirement!': \S"):
        resolve_distributions(["broken-dist"])


def test_compiled_extensions_are_refused(tmp_path, monkeypatch):
    with pytest.raises(BundleError, match="compiled extension"):
        lambda_asset_files(HANDLERS, distributions=("pyyaml",))
    fake_distribution(tmp_path / "site", "abi3-dist", {"abi3/__init__.py": "", "abi3/_fast.abi3.so": "ELF"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(BundleError) as err:  # no .cpython- tag
        lambda_asset_files(HANDLERS, distributions=("abi3-dist",))
    # Held whole: the distribution, the file, and how to build an asset that loads.
    assert str(err.value) == (
        "abi3-dist ships a compiled extension (abi3/_fast.abi3.so); it would not match the Lambda runtime - build the "
        "asset with pip --platform instead"
    )


@pytest.mark.parametrize("extension", ["_fast.pyd", "libfast.dylib"])
def test_a_compiled_extension_built_on_windows_or_macos_is_refused(tmp_path, monkeypatch, extension):
    """A deploy venv on Windows (.pyd) or macOS (.dylib, a library a package loads with ctypes) builds the asset too;
    neither loads on Lambda's Linux, so the function would fail at its first import instead of `pulumi up` stopping."""
    fake_distribution(tmp_path / "site", "native-dist", {"native/__init__.py": "", f"native/{extension}": "binary"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(BundleError, match=rf"compiled extension \(native/{re.escape(extension)}\)"):
        lambda_asset_files(HANDLERS, distributions=("native-dist",))


def test_the_bundle_imports_the_handler_in_a_clean_interpreter(files, tmp_path):
    """Zip the asset as Lambda would unpack it, then import the handler in an interpreter without
    site-packages: only the zip and what the Lambda runtime provides (boto3 and its dependencies)."""
    archive = tmp_path / "asset.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, source in files.items():
            bundle.write(source, name)
    runtime = tmp_path / "lambda-runtime"
    runtime.mkdir()
    for module in ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six", "jmespath"):
        spec = importlib.util.find_spec(module)
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    code = (
        "import sys; sys.path[:0] = sys.argv[1:]; "
        "import handlers.inference_proxy as m, aws_lambda_powertools, typing_extensions; "
        "assert aws_lambda_powertools.__file__.startswith(sys.argv[1]), aws_lambda_powertools.__file__; "
        "assert typing_extensions.__file__.startswith(sys.argv[1]), typing_extensions.__file__; "
        "print(callable(m.handler))"
    )
    env = {"ENDPOINT_NAME": "mobilenet-test", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(archive), str(runtime)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def fake_distribution(site: Path, name: str, files: dict[str, str | None], requires: tuple[str, ...] = ()) -> None:
    """An installed distribution in `site`: each RECORD path -> its text, or None for a path RECORD lists but the
    file system no longer has; requires are its Requires-Dist lines."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    requires_dist = "".join(f"Requires-Dist: {line}\n" for line in requires)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{requires_dist}")
    (info / "RECORD").write_text("".join(f"{path},,\n" for path in [*files, f"{info.name}/RECORD"]))
    for path, text in files.items():
        if text is not None:
            (site / path).parent.mkdir(parents=True, exist_ok=True)
            (site / path).write_text(text)


def test_files_a_record_lists_but_the_install_lacks_are_left_out(tmp_path, monkeypatch):
    listed = {"leftover/__init__.py": "", "leftover/gone.py": None, "leftover/now_a_dir": None}
    fake_distribution(tmp_path / "site", "leftover-dist", listed)
    (tmp_path / "site" / "leftover" / "now_a_dir").mkdir()  # a listed file's name, now a directory's
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    files = lambda_asset_files(HANDLERS, distributions=("leftover-dist",))
    assert "leftover/__init__.py" in files
    assert "leftover/gone.py" not in files  # the function's code_files must all exist, or the deploy fails
    assert "leftover/now_a_dir" not in files  # an archive member must be a file


def test_a_record_written_with_windows_separators_is_archived_under_posix_paths(tmp_path, monkeypatch):
    """A RECORD may separate with backslashes (written on Windows, where the deploy venv may be): the member is still
    winsep/mod.py, which Lambda's Linux imports, not one file named winsep\\mod.py at the root. Here a file of that
    literal name stands for the one Windows would find."""
    fake_distribution(tmp_path / "site", "winsep-dist", {"winsep/__init__.py": "", "winsep\\mod.py": "x = 1\n"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    bundled = lambda_asset_files(HANDLERS, distributions=("winsep-dist",))
    assert {name for name in bundled if name.startswith("winsep")} == {"winsep/__init__.py", "winsep/mod.py"}
    assert bundled["winsep/mod.py"] == tmp_path / "site" / "winsep\\mod.py"


def test_record_paths_outside_site_packages_are_left_out(tmp_path, monkeypatch):
    """A console script RECORD lists as ../../../bin/tool or by an absolute path is not the package's."""
    script = tmp_path / "bin" / "tool"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    fake_distribution(tmp_path / "site", "script-dist", {"script/__init__.py": "", str(script): "#!/bin/sh\n"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    bundled = lambda_asset_files(HANDLERS, distributions=("script-dist",))
    assert {name for name in bundled if not name.startswith(("handlers/", "script_dist-"))} == {"script/__init__.py"}


def test_the_same_file_listed_by_two_distributions_is_bundled_once(tmp_path, monkeypatch):
    """A legacy namespace package's __init__.py may be in two RECORDs: the same file is no conflict."""
    site = tmp_path / "site"
    fake_distribution(site, "ns-one", {"ns/__init__.py": "", "ns/one.py": ""})
    fake_distribution(site, "ns-two", {"ns/__init__.py": "", "ns/two.py": ""})
    monkeypatch.syspath_prepend(str(site))
    bundled = lambda_asset_files(HANDLERS, distributions=("ns-one", "ns-two"))
    assert {"ns/__init__.py", "ns/one.py", "ns/two.py"} <= set(bundled)


def test_the_same_file_reached_through_a_symlinked_folder_is_no_conflict(tmp_path, monkeypatch):
    """Two site directories where one's package folder links to the other's (a distro's layout, or a venv seeded
    with links): ns-two's RECORD reaches ns/__init__.py through the link, ns-one's directly. The file is one file."""
    site, other = tmp_path / "site", tmp_path / "other"
    fake_distribution(site, "ns-one", {"ns/__init__.py": "", "ns/one.py": ""})
    other.mkdir()
    (other / "ns").symlink_to(site / "ns", target_is_directory=True)
    fake_distribution(other, "ns-two", {"ns/__init__.py": "", "ns/two.py": ""})
    monkeypatch.syspath_prepend(str(other))
    monkeypatch.syspath_prepend(str(site))
    bundled = lambda_asset_files(HANDLERS, distributions=("ns-one", "ns-two"))
    assert bundled["ns/__init__.py"] == site / "ns" / "__init__.py"
    assert bundled["ns/two.py"] == site / "ns" / "two.py"  # the archive reads the file, not the link


def test_a_distribution_shadowing_the_handler_package_is_refused(tmp_path, monkeypatch):
    fake_distribution(tmp_path / "site", "shadow-dist", {"handlers/__init__.py": "raise SystemExit\n"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(BundleError, match=r"two files want archive path 'handlers/__init__\.py'"):
        lambda_asset_files(HANDLERS, distributions=("shadow-dist",))


def test_what_the_installer_wrote_is_left_out_so_the_asset_does_not_depend_on_pip_or_uv(files, tmp_path, monkeypatch):
    powertools = {name for name in files if name.startswith("aws_lambda_powertools-")}
    assert {PurePosixPath(name).name for name in powertools} >= {"METADATA"}
    assert not {PurePosixPath(name).name for name in powertools} & {"INSTALLER", "RECORD", "REQUESTED"}
    info = "tool_made-1.0.dist-info"
    fake_distribution(
        tmp_path / "site",
        "tool-made",
        {
            "tool_made/__init__.py": "",
            f"{info}/METADATA": "Metadata-Version: 2.1\nName: tool-made\nVersion: 1.0\n",
            f"{info}/INSTALLER": "uv\n",
            f"{info}/REQUESTED": "",
            f"{info}/direct_url.json": '{"url": "file:///home/someone/wheels/tool_made.whl"}',
            f"{info}/licenses/LICENSE": "MIT",
            "tool_made/RECORD": "a module's own file of that name is the package's",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    bundled = lambda_asset_files(HANDLERS, distributions=("tool-made",))
    assert {name for name in bundled if name.startswith("tool_made")} == {
        "tool_made/__init__.py",
        "tool_made/RECORD",
        f"{info}/METADATA",
        f"{info}/licenses/LICENSE",
    }


def test_a_distribution_that_lists_no_files_is_refused_not_bundled_empty(tmp_path, monkeypatch):
    info = tmp_path / "site" / "legacy_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: legacy-dist\nVersion: 1.0\n")
    (tmp_path / "site" / "legacy_dist.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(BundleError) as err:
        lambda_asset_files(HANDLERS, distributions=("legacy-dist",))
    assert str(err.value) == (  # held whole: why it is refused, and how to reinstall it so it lists its files
        "legacy-dist lists no files (no RECORD), so none would be bundled and the function would fail with an "
        "ImportError; reinstall it with pip into the deploy venv"
    )


@pytest.mark.timeout(60)  # a resolver that follows a cycle round never returns: a hang guard, not a timing
def test_distributions_that_require_each_other_are_each_resolved_once(tmp_path, monkeypatch):
    """Requirement cycles exist among installed distributions (a framework and a plugin that requires it back)."""
    site = tmp_path / "site"
    fake_distribution(site, "hen-dist", {"hen/__init__.py": ""}, ("egg-dist",))
    fake_distribution(site, "egg-dist", {"egg/__init__.py": ""}, ("hen-dist>=1",))
    monkeypatch.syspath_prepend(str(site))
    assert [d.metadata["Name"] for d in resolve_distributions(["hen-dist"])] == ["egg-dist", "hen-dist"]


def test_a_requirement_on_what_the_runtime_provides_is_left_out_however_it_is_spelt(tmp_path, monkeypatch):
    """A Requires-Dist line may spell boto3 as Boto3 or python-dateutil as python_dateutil (PEP 503 names are the same
    name): bundled, this venv's copy would be pinned over the runtime's."""
    site = tmp_path / "site"
    fake_distribution(site, "sdk-user", {"sdk_user/__init__.py": ""}, ("Boto3>=1.26", "python_dateutil", "S3Transfer"))
    monkeypatch.syspath_prepend(str(site))
    assert [d.metadata["Name"] for d in resolve_distributions(["sdk-user"])] == ["sdk-user"]

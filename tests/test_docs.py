"""The docs against the code: every in-page anchor and relative link in README.md and bench/history.md leads somewhere,
and the names the README uses (make targets and variables, project paths, settings, error codes) are the code's."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci import skip_or_fail
from tests.conftest import ROOT, names_of

DOCS = ("README.md", "bench/history.md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # link text may span lines


def prose(text: str) -> str:
    """The text outside fenced code blocks (a `# comment` there is not a heading, a `[x](y)` not a link)."""
    return "".join(re.split(r"^```.*?^```[^\n]*\n", text, flags=re.M | re.S))


def after(text: str, marker: str) -> str:
    """The text after marker. A doc reworded there fails naming what the check looks for, not with an IndexError
    from inside the check."""
    _, found, rest = text.partition(marker)
    assert found, f"no {marker.strip()!r} in the doc: tests/test_docs.py reads what follows it; update the two together"
    return rest


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation but '-' dropped, spaces as '-', repeats suffixed -1, -2..."""
    ids, repeats = set(), {}
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            n = repeats.get(slug, 0)
            ids.add(f"{slug}-{n}" if n else slug)
            repeats[slug] = n + 1
    return ids


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor in {path.name}")
    return broken


@pytest.mark.parametrize("name", DOCS)
def test_every_link_in_the_docs_resolves(name):
    assert broken_links(ROOT / name) == []


def test_the_benchmarks_section_links_its_run_history():
    """The per-run figures behind the README's counts live in bench/history.md (bench/results/ is not committed)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = after(readme, "\n## Benchmarks\n").split("\n## ", 1)[0]
    assert "](bench/history.md)" in section
    assert (ROOT / "bench" / "history.md").is_file()


def worst_case_quote_problems(readme: str) -> list[str]:
    """Memory per request against the latest table: the figure it says that table reads for the serving stack's peak
    plus the worst hostile image's decode must be the table's."""
    table = after(readme, "\n### Latest run\n").split("\n### ", 1)[0]
    read = re.findall(r"^\| +serving stack peak \+ the [^|]*\| (\d+) MB \|", table, flags=re.M)
    section = " ".join(after(prose(readme), "\n### Memory per request\n").split("\n### ", 1)[0].split())
    quoted = re.findall(r"reads (\d+) MB in the \[Benchmarks\]\(#benchmarks\) table", section)
    if len(read) == 1 and quoted == read:
        return []
    return [f"Memory per request says the Benchmarks table reads {quoted} MB; the table reads {read} MB"]


def test_the_memory_section_quotes_the_latest_tables_worst_case():
    """It said the table read 1867 MB (run 48's, at 495ec64) once the table was run 51's (3575d21), which reads
    1696 MB."""
    assert worst_case_quote_problems((ROOT / "README.md").read_text(encoding="utf-8")) == []


def test_a_worst_case_quote_that_drifted_is_caught():
    table = "### Latest run\n\n| figure | ours |\n|---|---|\n|   serving stack peak + the JPEG's decode | 1696 MB | |\n"
    quote = "# Doc\n\n### Memory per request\n\nIt reads {} MB in the [Benchmarks](#benchmarks)\ntable.\n\n"
    assert worst_case_quote_problems(quote.format(1696) + table) == []
    assert worst_case_quote_problems(quote.format(1867) + table) == [
        "Memory per request says the Benchmarks table reads ['1867'] MB; the table reads ['1696'] MB"
    ]


# The load tests of the README's "Other runs" made before bench/history.md recorded `make loadtest` (it does since the
# runs at f539662 on 2026-12-05): their figures are the README's alone.
LOADTESTS_BEFORE_THE_HISTORY = frozenset(
    {"", "91a935c", "8c6801a", "799b7e9", "5983014", "dd26a59", "4b117b6", "e6a6734", "7e553bd"}
)


def loadtest_row_problems(readme: str, history: str) -> list[str]:
    """The README's "Other runs" rows whose throughputs and p99s are not, in that order, a paragraph of the history
    that names the row's commit."""
    paragraphs = [" ".join(p.split()) for p in history.split("\n\n")]
    problems = []
    for when, commit, rates, p99s in table_after(readme, "Other runs:"):
        if commit in LOADTESTS_BEFORE_THE_HISTORY:
            continue
        *first, last = re.findall(r"\d+(?:\.\d+)?", rates)
        *first_p99, last_p99 = re.findall(r"\d+", p99s)
        figures = f"{', '.join(first)} and {last} req/s (p99 {', '.join(first_p99)} and {last_p99} ms"
        if not any(figures in p and f"at {commit}" in p for p in paragraphs):
            problems.append(f"{when} at {commit}: no paragraph of bench/history.md at {commit} gives {figures}")
    return problems


def test_the_readmes_load_test_runs_are_the_historys():
    """The latest load test (b113816, three runs on 2026-12-07) was in the README's Other runs and nowhere in the
    history, which holds every other run's figures since f539662."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    history = (ROOT / "bench" / "history.md").read_text(encoding="utf-8")
    assert loadtest_row_problems(readme, history) == []


def test_a_load_test_row_the_history_does_not_hold_is_caught():
    readme = (
        "# Doc\n\nOther runs:\n\n| When | At | Throughput | p99 |\n|---|---|---|---|\n"
        "| today | abc1234 | 1.5, 2.5, 3.5 req/s | 10, 20, 30 ms |\n"
    )
    held = "Runs at abc1234: 1.5, 2.5 and\n3.5 req/s (p99 10, 20 and 30 ms; none outside 200/429).\n"
    assert loadtest_row_problems(readme, held) == []
    assert loadtest_row_problems(readme, held.replace("2.5", "2.4")) == [
        "today at abc1234: no paragraph of bench/history.md at abc1234 gives "
        "1.5, 2.5 and 3.5 req/s (p99 10, 20 and 30 ms"
    ]
    assert len(loadtest_row_problems(readme, held.replace("abc1234", "def5678"))) == 1


def test_a_broken_link_is_caught(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\n## A section (opt-in)\n\n[ok](#a-section-opt-in) [gone](#nowhere) [file](missing.md)\n")
    assert broken_links(doc) == ["#nowhere: no heading with that anchor in doc.md", "missing.md: no such file"]


# --- the names the README uses: make targets and variables, paths, config keys, error codes -----------------------


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)


def commands(text: str) -> list[str]:
    """What the doc shows as code: its inline code spans (one line each, even when the prose wraps them) and every
    line of its code blocks, with the spans inside those lines (the layout block's `make bench`)."""
    lines = [line for block in code_blocks(text) for line in block.splitlines()]
    spans = re.findall(r"`([^`]+)`", prose(text)) + [s for line in lines for s in re.findall(r"`([^`\n]+)`", line)]
    return [" ".join(span.split()) for span in spans] + lines


def make_invocations(command: str) -> list[list[str]]:
    """The arguments of each `make` the command runs: `make venv && make model` -> [["venv"], ["model"]];
    `PIP_EXTRA_INDEX_URL=… make venv` -> [["venv"]] (an environment assignment before it is no make variable)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # a span that quotes only part of a command
        words = command.split()
    invocations, current = [], []
    for word in [*words, "&&"]:
        if word in ("&&", "||", ";", "|"):
            while current and re.fullmatch(r"\w+=\S*", current[0]):
                current.pop(0)
            if current[:1] == ["make"]:
                invocations.append(current[1:])
            current = []
        else:
            current.append(word)
    return invocations


def makefile_names(makefile: str) -> tuple[set[str], set[str]]:
    """The Makefile's targets, and the variables it sets or reads."""
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", makefile, flags=re.M))
    variables = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*[?:+]?=", makefile, flags=re.M))
    return targets, variables | set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", makefile))


def unknown_make_names(text: str, makefile: str) -> list[str]:
    targets, variables = makefile_names(makefile)
    unknown = []
    for command in commands(text):
        for arguments in make_invocations(command):
            for word in arguments:
                if m := re.fullmatch(r"([A-Za-z_]\w*)=.*", word):
                    if m[1] not in variables:
                        unknown.append(f"{command}: no variable {m[1]} in the Makefile")
                elif not word.startswith("-") and word not in ("…", "...") and word not in targets:
                    unknown.append(f"{command}: no target {word} in the Makefile")
    return sorted(set(unknown))


def test_every_make_command_in_the_readme_names_a_target_and_variables_of_the_makefile():
    """A renamed target or variable (WEIGHTS= for MODEL_WEIGHTS=) leaves the README's commands failing, or, for a
    variable, silently ignored by make."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert unknown_make_names(readme, makefile) == []
    listed = re.search(r"^Makefile\s+(.+)$", layout_block(readme), flags=re.M)[1].split(", ")
    phony = re.search(r"^\.PHONY:(.*)$", makefile, flags=re.M)[1].split()
    assert sorted(listed) == sorted(phony), "the Repository layout's Makefile line lists its targets"


def test_an_unknown_make_target_or_variable_is_caught():
    makefile = "PORT ?= 8000\n.PHONY: demo model\nmodel:\ndemo: model\n\t$(PY) -m local --port $(PORT) $(PYTEST_ARGS)\n"
    doc = (
        'Run `make demo PORT=8080` or `make demo PYTEST_ARGS="-k x"`, then `make serve`.\n\n'
        "```sh\nFOO=1 make model WEIGHTS=x.pth   # build\nmake demo && make tests\n```\n"
    )
    assert unknown_make_names(doc, makefile) == [
        "FOO=1 make model WEIGHTS=x.pth   # build: no variable WEIGHTS in the Makefile",
        "make demo && make tests: no target tests in the Makefile",
        "make serve: no target serve in the Makefile",
    ]


# Paths under these are made by a build or a run, not committed: model/dist/ by `make model`, bench/results/ by
# `make bench`; model/code/vendor/ is where the build puts the onnxruntime wheel inside the artifact's code/.
NOT_COMMITTED = ("model/dist/", "bench/results/", "model/code/vendor/")
REPO_PATH = re.compile(r"(?:\.ci|bench|components|handlers|local|model|tests|www)/[\w./-]*")


def layout_block(text: str) -> str:
    """The Repository layout: the code block that starts with `__main__.py`."""
    return next(block for block in code_blocks(text) if block.startswith("__main__.py"))


def layout_entries(text: str) -> set[str]:
    """The first column of the Repository layout: `__main__.py`, `components/dynamic/`, `.ci/run`."""
    blocks = [block for block in code_blocks(text) if block.startswith("__main__.py")]
    return {line.split()[0] for block in blocks for line in block.splitlines() if line[:1].strip()}


def missing_paths(text: str, root: Path) -> list[str]:
    """The project paths the doc names as code (`components/settings.py`, the layout's first column) that do not
    exist under `root`."""
    named = {span for span in commands(text) if REPO_PATH.fullmatch(span)} | layout_entries(text)
    return sorted(p for p in named if not p.startswith(NOT_COMMITTED) and not (root / p).exists())


def test_every_path_the_readme_names_exists():
    assert missing_paths((ROOT / "README.md").read_text(encoding="utf-8"), ROOT) == []


def committed_files(root: Path) -> list[str]:
    """The files git tracks under root. Outside a git checkout (a source archive, GitHub's "Download ZIP"), or
    without git, nothing tells the committed files from a developer's own: skipped (failed under CI, a clone). It
    was a CalledProcessError, failing `make test` there."""
    try:
        run = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        skip_or_fail("no git on this machine to list the committed files", "CI runs in a clone and needs git")
    if run.returncode != 0:
        skip_or_fail(f"{root} is not a git checkout: {run.stderr.strip()}", "CI must run in a clone")
    return run.stdout.split("\0")[:-1]


def test_the_repository_layout_lists_every_committed_top_level_entry():
    """A stranger looks there for what each file is: a top-level file left out (pyproject.toml, which holds the
    Python requirement, ruff's rules and pytest's markers) is looked for in vain."""
    tracked = committed_files(ROOT)
    assert "README.md" in tracked
    top_level = {path.split("/")[0] for path in tracked} - {"README.md", ".gitignore"}
    listed = {entry.split("/")[0] for entry in layout_entries((ROOT / "README.md").read_text(encoding="utf-8"))}
    assert sorted(top_level - listed) == []


def test_the_committed_files_outside_a_git_checkout_are_a_skip_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "no-repository"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(
        pytest.skip.Exception, match=f"{re.escape(str(tmp_path))} is not a git checkout: fatal: not a git repository"
    ):
        committed_files(tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run in a clone"):
        committed_files(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    with pytest.raises(pytest.fail.Exception, match="no git on this machine"):
        committed_files(tmp_path)


def test_a_missing_path_is_caught(tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "server.py").write_text("")
    (tmp_path / "Makefile").write_text("")
    doc = (
        "`local/server.py`, `local/gateway.py`, `model/dist/model.tar.gz` (built), `local/*` and\n"
        "`www/creds -> ~/.aws/credentials` (an example, not a path).\n\n"
        "```text\n__main__.py   the program\nMakefile      targets\n              more text\n```\n"
    )
    assert missing_paths(doc, tmp_path) == ["__main__.py", "local/gateway.py"]


def shared_temp_paths(text: str) -> list[str]:
    """The fixed paths under /tmp the doc's commands write or read (`/tmp/prediction.json`): on a shared machine one
    reader's run overwrites another's, or meets a file of someone else's it cannot write."""
    return sorted({m[0] for line in commands(text) for m in re.finditer(r"(?<![\w.$~-])/tmp/[\w./-]+", line)})


def test_the_readme_commands_write_no_fixed_temp_file():
    assert shared_temp_paths((ROOT / "README.md").read_text(encoding="utf-8")) == []


def test_a_fixed_temp_file_is_caught():
    doc = (
        "| exit 1 | Load model from /tmp/mobilenet | (a message the table quotes, not a command)\n\n"
        '```sh\naws s3 cp s3://b/k /tmp/out.json && cat /tmp/out.json\nout=$(mktemp) && cat "$out"\n```\n'
    )
    assert shared_temp_paths(doc) == ["/tmp/out.json"]


def test_the_readme_invoke_endpoint_example_removes_its_temp_file_when_the_call_fails(tmp_path):
    """It removed its mktemp file only after a good answer: with no stack running (aws exits 255, having written
    nothing), every try left an empty tmp.XXXXXXXXXX behind in /tmp."""
    block = next(b for b in code_blocks((ROOT / "README.md").read_text(encoding="utf-8")) if "invoke-endpoint" in b)
    example = block[block.index("out=$(mktemp)") :]
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    aws = tmp_path / "venv" / "bin" / "aws"
    aws.write_text("#!/bin/sh\necho 'Could not connect to the endpoint URL' >&2\nexit 255\n")
    aws.chmod(0o755)
    temp = tmp_path / "tmp"
    temp.mkdir()
    run = subprocess.run(
        ["bash", "-c", example], cwd=tmp_path, env={**os.environ, "TMPDIR": str(temp)}, capture_output=True, text=True
    )
    assert "Could not connect" in run.stderr, run.stderr  # the stand-in ran
    assert sorted(p.name for p in temp.iterdir()) == []


def error_table(text: str) -> dict[str, tuple[str, str]]:
    """The README's "Error codes" table: code -> (status, Retry-After) as written."""
    section = after(after(text, "\n### Error codes\n"), "\n\n| code |").split("\n\n", 1)[0]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in section.splitlines()[2:]]
    return {row[0].strip("`"): (row[1], row[3]) for row in rows}


def error_table_problems(text: str, errors: dict) -> list[str]:
    """Where the table differs from the proxy's ERRORS: a code missing or extra, another status or Retry-After."""
    table = error_table(text)
    problems = [f"{code}: not in the table" for code in errors if code not in table]
    problems += [f"{code}: no such code in ERRORS" for code in table if code not in errors]
    for code in table.keys() & errors.keys():
        status, retry_after = table[code]
        spec = errors[code]
        if re.match(r"\d*", status)[0] != str(spec.status):  # invalid_image: "400, or 422 if the model says 422"
            problems.append(f"{code}: status {status}, ERRORS says {spec.status}")
        if retry_after != ("" if spec.retry_after is None else str(spec.retry_after)):
            problems.append(f"{code}: Retry-After {retry_after or 'none'}, ERRORS says {spec.retry_after}")
    return sorted(problems)


def test_the_readme_error_table_is_the_proxys():
    from handlers.proxy_core import ERRORS

    assert error_table_problems((ROOT / "README.md").read_text(encoding="utf-8"), ERRORS) == []


def test_an_error_table_that_drifted_from_the_proxy_is_caught():
    from handlers.proxy_core import ErrorSpec

    errors = {
        "bad_request": ErrorSpec(400, "…"),
        "throttled": ErrorSpec(429, "…", 2),
        "gone": ErrorSpec(410, "…"),
        "busy": ErrorSpec(503, "…"),
        "invalid": ErrorSpec(400, "…"),
    }
    doc = (
        "## The proxy\n\n### Error codes\n\nEvery error is JSON.\n\n"
        "| code | status | when | Retry-After |\n|---|---|---|---|\n"
        "| `bad_request` | 422 | bad JSON | |\n| `throttled` | 429 | busy | 5 |\n| `old` | 500 | never | |\n"
        "| `busy` | 5030 | full | |\n| `invalid` | 400, or 422 if the model says 422 | bad image | |\n\n"
        "The fine print.\n"
    )
    assert error_table_problems(doc, errors) == [
        "bad_request: status 422, ERRORS says 400",
        "busy: status 5030, ERRORS says 503",
        "gone: not in the table",
        "old: no such code in ERRORS",
        "throttled: Retry-After 5, ERRORS says 2",
    ]


# The camelCase names in the README that are no setting of this program: fields of the HTTP API's payload 2.0 event
# and its API resource, and an aws provider setting (and the access log's, the deployed format's keys: see the test).
# Any other camelCase name in code is taken for one of the program's settings and must be one.
AWS_FIELDS = frozenset(
    {
        "isBase64Encoded",
        "rawPath",
        "rawQueryString",
        "queryStringParameters",
        "corsConfiguration",
        "assumeRoles",
    }
)


def unknown_settings(text: str, keys: set[str]) -> list[str]:
    """The settings the doc names (`memorySizeMb`, `mobilenet-serverless:maxConcurrency`, `pulumi config set
    memorySizeMb 3072`) that are not among `keys`."""
    named = set()
    for span in commands(text):
        if re.fullmatch(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+", span):
            named.add(span)
        named.update(re.findall(r"mobilenet-serverless:([A-Za-z]\w*)", span))
        if m := re.search(r"pulumi config set (?:--path )?'?([A-Za-z]\w*)(?![\w:])", span):
            named.add(m[1])
    return sorted(named - keys - AWS_FIELDS)


def test_every_setting_the_readme_names_is_a_config_key():
    from components.policies import access_log_format
    from components.settings import CONFIG_KEYS

    access_log_fields = set(json.loads(access_log_format()))  # requestId, integrationLatency, ...
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert unknown_settings(readme, set(CONFIG_KEYS) | access_log_fields) == []


def test_an_unknown_setting_is_caught():
    doc = (
        "Raise `memorySizeMB`, not `rawPath`; `maxConcurrency` and `mobilenet-serverless:proxyLogLvl`.\n\n"
        "```sh\npulumi config set --path 'corsOrigins[0]' https://a.example\npulumi config set aws:profile x\n```\n"
    )
    assert unknown_settings(doc, {"memorySizeMb", "maxConcurrency", "proxyLogLevel"}) == [
        "corsOrigins",
        "memorySizeMB",
        "proxyLogLvl",
    ]


def table_after(text: str, caption: str) -> list[list[str]]:
    """The rows of the table under `caption` (a paragraph of its own), each a list of its cells."""
    table = after(text, f"\n{caption}\n\n").split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in table.splitlines()[2:]]


def local_options() -> dict[str, str | None]:
    """`python -m local`'s flags and their defaults as the README writes them: "off" for a switch, None for a default
    that is no value (--artifact's is the stack config's)."""
    import argparse
    from unittest import mock

    from components.command_line import OneLineErrorParser
    from local.__main__ import parse_args

    # The stack's own parser class: argparse.ArgumentParser.parse_args itself is every parser's in the process
    with mock.patch.object(OneLineErrorParser, "parse_args", lambda parser, *_: parser):
        parser = parse_args([])
    options: dict[str, str | None] = {}
    for action in parser._actions:
        flag = next((s for s in action.option_strings if s.startswith("--")), "--help")
        if flag == "--help":
            continue
        if isinstance(action, argparse._StoreConstAction):  # store_true, store_false
            options[flag] = "off"
        elif isinstance(action.default, Path):
            options[flag] = action.default.relative_to(ROOT).as_posix()
        else:
            options[flag] = None if action.default is None else str(action.default)
    return options


def demo_passes(makefile: str) -> dict[str, set[str]]:
    """The flags `make demo`'s python -m local line passes with each variable: `--port $(call quote,$(PORT))` passes
    --port with PORT, `$(if $(call on,$(ALLOW_REMOTE)),--allow-remote)` --allow-remote with ALLOW_REMOTE. A variable
    of flags the line names (`-m local $(DEMO_ARGS)`) is read as its definition, as make reads it."""
    lines = makefile.replace("\\\n", " ").splitlines()
    defined = dict(re.findall(r"^([A-Z][A-Z0-9_]*) :?= *(.*)$", "\n".join(lines), flags=re.M))
    line = next(line for line in lines if line.startswith("\t") and " -m local " in line)
    line = re.sub(
        r"\$\(([A-Z][A-Z0-9_]*)\)", lambda m: m[0] if "--" not in defined.get(m[1], "") else defined[m[1]], line
    )
    words, depth, word = [], 0, ""
    for char in line + " ":  # the line's words, a $(...) whole, spaces and all
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char.isspace() and depth == 0:
            words, word = [*words, word] if word else words, ""
        else:
            word += char
    passes: dict[str, set[str]] = {}
    for before, word in zip(["", *words], words, strict=False):
        flags = re.findall(r"--[\w-]+", word) or ([before] if before.startswith("--") else [])
        for variable in re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", word):
            passes.setdefault(variable, set()).update(flags)
    return passes


def local_table_problems(text: str, options: dict[str, str | None], makefile: str) -> list[str]:
    """Where the `python -m local` flags table and the `make demo` variables table differ from the flags, the
    Makefile's defaults and the flags each variable passes."""
    flags = {row[0].strip("`"): row[1].strip("`") for row in table_after(text, "`python -m local` flags:")}
    problems = [f"{flag}: not in the flags table" for flag in options if flag not in flags]
    problems += [f"{flag}: python -m local has no such flag" for flag in flags if flag not in options]
    for flag in flags.keys() & options.keys():
        if options[flag] is not None and flags[flag] != options[flag]:
            problems.append(f"{flag}: default {flags[flag]}, python -m local's is {options[flag]}")
    defaults = dict(re.findall(r"^([A-Z][A-Z0-9_]*) \?=[ \t]*(.*)$", makefile, flags=re.M))
    passed_by = demo_passes(makefile)
    for variable, default, passes in table_after(text, "`make demo` variables:"):
        variable, default = variable.strip("`"), default.strip("`")
        if variable not in defaults:
            problems.append(f"{variable}: the Makefile sets no default")
            continue
        value = defaults[variable].strip()
        if default in ("on", "off"):  # a yes/no switch: off when empty, 0, false, no or off
            value = "off" if value.lower() in ("", "0", "false", "no", "off") else "on"
        if default != (value or "empty"):
            problems.append(f"{variable}: default {default}, the Makefile's is {value or 'empty'}")
        flag = re.match(r"`(--[\w-]+)`", passes)
        if flag is None or flag[1] not in options:
            problems.append(f"{variable}: passes {passes}, no flag of python -m local")
        elif flag[1] not in passed_by.get(variable, ()):
            passed = ", ".join(sorted(passed_by.get(variable, ()))) or "nothing"
            problems.append(f"{variable}: passes {flag[1]}, make demo passes it as {passed}")
    return sorted(problems)


def test_the_readme_local_stack_tables_are_the_flags_and_the_makefiles():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    options = local_options()
    assert options["--port"] == "8000" and options["--allow-remote"] == "off"  # what the parser gave
    assert local_table_problems(readme, options, makefile) == []


def test_a_table_whose_caption_or_header_was_reworded_says_which():
    doc = "# Local\n\nThe `python -m local` flags:\n\n| Flag | Default |\n|---|---|\n\n### Error codes\n\n| Code |\n"
    with pytest.raises(AssertionError, match=r"^no '`python -m local` flags:' in the doc: tests/test_docs.py reads"):
        table_after(doc, "`python -m local` flags:")
    with pytest.raises(AssertionError, match=r"^no '\| code \|' in the doc"):
        error_table(doc)


def test_local_stack_tables_that_drifted_are_caught():
    options = {"--host": "127.0.0.1", "--port": "8000", "--allow-remote": "off", "--artifact": None}
    makefile = (
        "PORT ?= 8080\nHOST ?= 127.0.0.1\nALLOW_REMOTE ?=\nTHROTTLE ?= 1\nLOG ?= warning\n\ndemo: model\n"
        "\t$(PY) -m local --host $(call quote,$(HOST)) --port $(PORT) \\\n"
        "\t  $(if $(call on,$(ALLOW_REMOTE)),--allow-remote) $(if $(call on,$(THROTTLE)),,--no-stage-throttle)\n"
    )
    doc = (
        "# Local\n\n`make demo` variables:\n\n| Variable | Default | Passes |\n|---|---|---|\n"
        "| `PORT` | `8000` | `--port` |\n| `HOST` | `127.0.0.1` | `--bind` |\n"
        "| `ALLOW_REMOTE` | on | `--allow-remote` |\n| `RUNTIME` | `inprocess` | `--runtime` |\n"
        "| `THROTTLE` | on | `--port` when off |\n| `LOG` | `warning` | `--host` |\n\n"
        "`python -m local` flags:\n\n| Flag | Default | What |\n|---|---|---|\n"
        "| `--host` | 127.0.0.1 | bind |\n| `--port` | 8080 | port |\n| `--artifact` | the config's | file |\n"
        "| `--log-level` | `warning` | level |\n\nMore text.\n"
    )
    assert local_table_problems(doc, options, makefile) == [
        "--allow-remote: not in the flags table",
        "--log-level: python -m local has no such flag",
        "--port: default 8080, python -m local's is 8000",
        "ALLOW_REMOTE: default on, the Makefile's is off",
        "HOST: passes `--bind`, no flag of python -m local",
        "LOG: passes --host, make demo passes it as nothing",
        "PORT: default 8000, the Makefile's is 8080",
        "RUNTIME: the Makefile sets no default",
        "THROTTLE: passes --port, make demo passes it as --no-stage-throttle",
    ]


# --- environment variables: the handler's table, and every NAME=value the README sets --------------------------

# glibc's malloc variables end in "_" (MALLOC_MMAP_THRESHOLD_): without the last "_?" such a name went unseen.
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+_?")


def code_variables(paths: list[Path]) -> set[str]:
    """The environment-variable-shaped string constants (`"ENDPOINT_NAME"`, `"POWERTOOLS_LOG_LEVEL"`) in Python
    files: what the code reads from, or sets in, an environment."""
    import ast

    return {
        node.value
        for path in paths
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value)
    }


def environment_table_problems(text: str, read: set[str]) -> list[str]:
    """Where the Lambda proxy's Environment table differs from the variables the handler's code names."""
    rows = {row[0].strip("`") for row in table_after(text, "### Environment")}
    problems = [f"{name}: the handler reads it, the Environment table leaves it out" for name in read - rows]
    problems += [f"{name}: in the Environment table, the handler never reads it" for name in rows - read]
    return sorted(problems)


def test_the_readme_environment_table_is_what_the_handler_reads():
    """A variable the handler reads and the table leaves out (POWERTOOLS_LOG_LEVEL, which wins over LOG_LEVEL) is a
    setting an operator cannot find; a row for one it no longer reads is a setting that does nothing."""
    read = code_variables(sorted((ROOT / "handlers").glob("*.py")))
    assert {"ENDPOINT_NAME", "LOG_LEVEL", "POWERTOOLS_LOG_LEVEL"} <= read  # what the scan found
    assert environment_table_problems((ROOT / "README.md").read_text(encoding="utf-8"), read) == []


def test_an_environment_table_that_drifted_from_the_handler_is_caught():
    doc = (
        "## The proxy\n\n### Environment\n\n| Variable | Value |\n|---|---|\n"
        "| `ENDPOINT_NAME` | required |\n| `MAX_BYTES` | 4 MB |\n\nMore text.\n"
    )
    assert environment_table_problems(doc, {"ENDPOINT_NAME", "LOG_LEVEL"}) == [
        "LOG_LEVEL: the handler reads it, the Environment table leaves it out",
        "MAX_BYTES: in the Environment table, the handler never reads it",
    ]


# Set in the README's commands for a program that is not this project's: pip's index, glibc's malloc tunables.
OTHER_PROGRAMS_VARIABLES = frozenset(
    {"PIP_EXTRA_INDEX_URL", "GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
)


def unread_variables(text: str, makefile: str, known: set[str]) -> list[str]:
    """The variables the doc sets (`MODEL_BACKEND=torchscript`, `HYPOTHESIS_PROFILE_FUZZ=deep`) that are neither the
    Makefile's nor among `known`, what the code reads or sets."""
    _, make_variables = makefile_names(makefile)
    named = {m[1] for span in commands(text) for m in re.finditer(rf"(?<![\w-])({ENV_NAME.pattern})=", span)}
    return sorted(named - make_variables - known - OTHER_PROGRAMS_VARIABLES)


def test_every_variable_the_readme_sets_is_one_the_code_reads():
    """A variable renamed in the code left the README's command setting one nothing reads: the command runs, and
    silently does not do what the README says."""
    python = [path for path in committed_files(ROOT) if path.endswith(".py")]
    # Not this file: its own examples of wrong names would count as read.
    known = code_variables([ROOT / path for path in python if path != "tests/test_docs.py"])
    assert {"MODEL_BACKEND", "HYPOTHESIS_PROFILE_FUZZ"} <= known  # what the scan found
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert unread_variables(readme, (ROOT / "Makefile").read_text(encoding="utf-8"), known) == []


def test_a_variable_the_code_does_not_read_is_caught():
    doc = (
        "Run `MODEL_BACKENDS=torchscript make demo PORT=1 PYTEST_ARGS=-x` or `ORT_DISABLE_TELEMETRY=1 python`.\n\n"
        "```sh\nPIP_EXTRA_INDEX_URL=https://x make venv\nAWS_KEY=local aws s3 ls\n"
        "MALLOC_TRIM_THRESHOLD_=1 MALLOC_TOP_PAD_=1 make bench\n```\n"
    )
    makefile = "PORT ?= 8000\ntest:\n\tpytest $(PYTEST_ARGS)\n"
    assert unread_variables(doc, makefile, {"MODEL_BACKEND", "ORT_DISABLE_TELEMETRY"}) == [
        "AWS_KEY",
        "MALLOC_TOP_PAD_",
        "MODEL_BACKENDS",
    ]


# The folders of the program's own Python, whose line in the Repository layout names each of their modules.
CODE_FOLDERS = ("components/", "components/dynamic/", "handlers/", "model/", "local/", "bench/")


def layout_descriptions(text: str) -> dict[str, str]:
    """The Repository layout's entries and their descriptions, continuation lines included."""
    described: dict[str, str] = {}
    entry = ""
    for line in layout_block(text).splitlines():
        if line[:1].strip():
            entry, _, line = line.partition(" ")
        described[entry] = f"{described.get(entry, '')} {line.strip()}".strip()
    return described


def unnamed_modules(text: str, files: list[str]) -> list[str]:
    """The modules of CODE_FOLDERS among `files` that their layout line does not name, as `proxy_core.py`, `settings`
    or, for a component, its class (`ServerlessEndpoint` for serverless_endpoint)."""
    described = layout_descriptions(text)
    missing = []
    for path in sorted(files):
        folder, _, name = path.rpartition("/")
        stem = name.removesuffix(".py")
        if f"{folder}/" not in CODE_FOLDERS or not name.endswith(".py") or stem in ("__init__", "__main__"):
            continue
        words = {word.lower().removesuffix(".py") for word in re.findall(r"[\w.]+", described.get(f"{folder}/", ""))}
        if stem not in words and stem.replace("_", "") not in words:
            missing.append(path)
    return missing


def test_the_repository_layout_names_every_module_of_the_program():
    """A module left out of its folder's line (components/command_line.py) is one a newcomer meets unexplained."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert set(CODE_FOLDERS) <= set(layout_descriptions(readme))
    assert unnamed_modules(readme, committed_files(ROOT)) == []


def test_a_module_the_layout_leaves_out_is_caught():
    files = [
        "components/static_site.py",
        "components/command_line.py",
        "components/__init__.py",
        "components/dynamic/smoke_check.py",
        "local/x.py",
        "www/script.js",
    ]
    doc = (
        "```text\n__main__.py   the program\ncomponents/   StaticSite, settings,\n"
        "              private_bucket\nlocal/        the x server\n```\n"
    )
    assert layout_descriptions(doc)["components/"] == "StaticSite, settings, private_bucket"
    assert unnamed_modules(doc, files) == ["components/command_line.py", "components/dynamic/smoke_check.py"]


def outputs_table_problems(text: str, program: str) -> list[str]:
    """Where the Deploy section's Outputs table differs from the program's `pulumi.export`s."""
    rows = table_after(text, "Outputs:")
    listed = {name for row in rows for name in re.findall(r"`(\w+)`", row[0])}
    exported = set(re.findall(r"""pulumi\.export\(\s*["'](\w+)["']""", program))
    problems = [f"{name}: exported, not in the Outputs table" for name in exported - listed]
    problems += [f"{name}: in the Outputs table, never exported" for name in listed - exported]
    return sorted(problems)


def test_the_readme_outputs_are_the_programs():
    """`pulumi stack output api_url` in the Deploy steps fails for an output renamed in __main__.py."""
    program = (ROOT / "__main__.py").read_text(encoding="utf-8")
    assert outputs_table_problems((ROOT / "README.md").read_text(encoding="utf-8"), program) == []


def test_an_outputs_table_that_drifted_is_caught():
    doc = (
        "## Deploy\n\nOutputs:\n\n| Output | What |\n|---|---|\n"
        "| `site_url` | the UI |\n| `api_url`, `bucket` | two |\n\nMore.\n"
    )
    program = 'pulumi.export("site_url", a)\npulumi.export(\n    "api_url", b)\npulumi.export("distribution_id", c)\n'
    assert outputs_table_problems(doc, program) == [
        "bucket: in the Outputs table, never exported",
        "distribution_id: exported, not in the Outputs table",
    ]


def marker_problems(text: str, pyproject: str) -> list[str]:
    """Where the Tests section's marker list differs from the markers pyproject.toml declares."""
    import tomllib

    declared = {line.split(":")[0] for line in tomllib.loads(pyproject)["tool"]["pytest"]["ini_options"]["markers"]}
    section = after(text, "\nMarkers, declared in `pyproject.toml`").split("\n\n", 2)[1]
    listed = set(re.findall(r"^- `(\w+)`", section, flags=re.M))
    problems = [f"{name}: declared, not in the README's list" for name in declared - listed]
    problems += [f"{name}: in the README's list, not declared" for name in listed - declared]
    return sorted(problems)


def test_the_readme_markers_are_the_declared_ones():
    """`make test-fast` deselects by marker: a marker the README names and pyproject.toml does not (or the reverse)
    tells a reader to select tests that --strict-markers refuses, or hides one."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert marker_problems(readme, (ROOT / "pyproject.toml").read_text(encoding="utf-8")) == []


def test_a_marker_list_that_drifted_is_caught():
    doc = (
        "## Tests\n\nMarkers, declared in `pyproject.toml`:\n\n- `slow`: slow.\n- `gpu`: a GPU.\n\n"
        "More.\n- `x`: not listed\n"
    )
    pyproject = '[tool.pytest.ini_options]\nmarkers = ["slow: slow", "browser: chromium"]\n'
    assert marker_problems(doc, pyproject) == [
        "browser: declared, not in the README's list",
        "gpu: in the README's list, not declared",
    ]


# The defaults the README gives as what they are computed from, not as Pulumi.yaml's "" (unset).
COMPUTED_DEFAULTS = frozenset({"endpointName"})


def settings_table_problems(text: str, schema: dict, allowed: dict) -> list[str]:
    """Where the Settings table differs from Pulumi.yaml's schema (keys, types, defaults) and from `allowed`, the
    validator's choices (a tuple) and ranges (a range) by key."""
    table = {row[0].strip("`"): row[1:] for row in table_after(text, "### Settings")}
    problems = [f"{key}: in Pulumi.yaml, not in the Settings table" for key in schema.keys() - table.keys()]
    problems += [f"{key}: in the Settings table, not in Pulumi.yaml" for key in table.keys() - schema.keys()]
    for key in sorted(schema.keys() & table.keys()):
        written_type, written_default, written_allowed = table[key]
        entry = schema[key]
        want_type = f"array of {entry['items']['type']}" if entry["type"] == "array" else entry["type"]
        if written_type != want_type:
            problems.append(f"{key}: type {written_type}, Pulumi.yaml's is {want_type}")
        default = entry["default"]
        want = "unset" if default == "" else json.dumps(default) if isinstance(default, bool | list) else str(default)
        shown = re.split(r" \(|;", written_default)[0].strip().strip("`")
        if shown != want and key not in COMPUTED_DEFAULTS:
            problems.append(f"{key}: default {shown}, Pulumi.yaml's is {want}")
        spec = allowed.get(key)
        if isinstance(spec, range) and f"{spec.start}..{spec.stop - 1}" not in written_allowed:
            problems.append(f"{key}: allowed {written_allowed}, the validator's is {spec.start}..{spec.stop - 1}")
        elif isinstance(spec, tuple):
            if all(isinstance(choice, int) for choice in spec):
                written = {int(number) for number in re.findall(r"\d+", written_allowed)}
            else:
                written = set(re.findall(r"`([^`]+)`", written_allowed.split("(")[0]))
            if written != set(spec):
                problems.append(f"{key}: allowed {written_allowed}, the validator's are {', '.join(map(str, spec))}")
    return sorted(problems)


def test_the_readme_settings_table_is_the_schema_and_the_validators():
    """A default or range changed in the code (memorySizeMb, maxConcurrency) left the table that a deployer sizes the
    quota and the bill by telling the old one."""
    import yaml

    from components import settings

    schema = {k: v for k, v in yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"].items() if ":" not in k}
    allowed = {
        "memorySizeMb": settings.MEMORY_SIZES_MB,
        "maxConcurrency": range(settings.MAX_CONCURRENCY_RANGE[0], settings.MAX_CONCURRENCY_RANGE[1] + 1),
        "lambdaArchitecture": settings.LAMBDA_ARCHITECTURES,
        "proxyMemorySizeMb": range(settings.LAMBDA_MEMORY_RANGE[0], settings.LAMBDA_MEMORY_RANGE[1] + 1),
        "proxyLogLevel": settings.PROXY_LOG_LEVELS,
        "apiThrottleRateLimit": range(settings.THROTTLE_RATE_RANGE[0], settings.THROTTLE_RATE_RANGE[1] + 1),
        "apiThrottleBurstLimit": range(settings.THROTTLE_BURST_RANGE[0], settings.THROTTLE_BURST_RANGE[1] + 1),
        "logRetentionDays": settings.LOG_RETENTION_DAYS,
        "priceClass": settings.PRICE_CLASSES,
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_table_problems(readme, schema, allowed) == []


def test_a_settings_table_that_drifted_is_caught():
    doc = (
        "## Deploy\n\n### Settings\n\n| Key | Type | Default | Allowed |\n|---|---|---|---|\n"
        "| `memorySizeMb` | integer | 3072 | 1024, 2048, 7168 |\n| `maxConcurrency` | integer | 5 | 1..100 |\n"
        "| `priceClass` | string | `PriceClass_100` | `PriceClass_100`, `PriceClass_200` (cheap) |\n"
        "| `smokeCheck` | boolean | true | true, false |\n| `corsExtraOrigins` | array of string | `[]` (dev: x) | |\n"
        "| `kmsKeyArn` | string | `alias/x` | a key |\n| `endpointName` | string | `<project>-<stack>` | a name |\n"
        "| `gone` | string | unset | |\n\nMore.\n"
    )
    schema = {
        "memorySizeMb": {"type": "integer", "default": 2048},
        "maxConcurrency": {"type": "integer", "default": 5},
        "priceClass": {"type": "string", "default": "PriceClass_100"},
        "smokeCheck": {"type": "string", "default": True},
        "corsExtraOrigins": {"type": "array", "items": {"type": "string"}, "default": []},
        "kmsKeyArn": {"type": "string", "default": ""},
        "endpointName": {"type": "string", "default": ""},
        "alarms": {"type": "boolean", "default": True},
    }
    allowed = {"memorySizeMb": (1024, 2048), "maxConcurrency": range(1, 201), "priceClass": ("PriceClass_100",)}
    assert settings_table_problems(doc, schema, allowed) == [
        "alarms: in Pulumi.yaml, not in the Settings table",
        "gone: in the Settings table, not in Pulumi.yaml",
        "kmsKeyArn: default alias/x, Pulumi.yaml's is unset",
        "maxConcurrency: allowed 1..100, the validator's is 1..200",
        "memorySizeMb: allowed 1024, 2048, 7168, the validator's are 1024, 2048",
        "memorySizeMb: default 3072, Pulumi.yaml's is 2048",
        "priceClass: allowed `PriceClass_100`, `PriceClass_200` (cheap), the validator's are PriceClass_100",
        "smokeCheck: type boolean, Pulumi.yaml's is string",
    ]


MEDIA_TYPE = re.compile(r"(?:image|application)/[\w.+-]+")


def listed_types(text: str, caption: str) -> set[str]:
    """The media types written as code in the list under `caption`: `image/jpeg`, `application/vnd.api+json`."""
    section = after(text, f"\n{caption}\n\n").split("\n\n", 1)[0]
    return {span for span in re.findall(r"`([^`]+)`", section) if MEDIA_TYPE.fullmatch(span)}


def content_type_problems(listed: set[str], taken: set[str], accepts) -> list[str]:
    """The types the code takes by name and the list leaves out, and the listed ones that `accepts` refuses."""
    problems = [f"{media}: taken, not in the README's list" for media in taken - listed]
    problems += [f"{media}: in the README's list, refused" for media in listed if not accepts(media)]
    return sorted(problems)


def proxy_accepts(media_type: str) -> bool:
    """Whether POST /predict takes a body of this type: as raw JPEG bytes or as a JSON body, anything but a 415."""
    from handlers.proxy_core import ApiError, parse_predict_request

    bodies = ((base64.b64encode(b"\xff\xd8\xff\xe0").decode(), True), ('{"image": "/9j/4A=="}', False))
    for body, is_base64 in bodies:
        try:
            parse_predict_request(
                body=body, is_base64=is_base64, content_type=media_type, query={}, max_image_bytes=1000
            )
        except ApiError as error:
            if error.code != "unsupported_media_type":
                return True
        else:
            return True
    return False


def test_the_types_the_readme_says_the_proxy_takes_are_its():
    """A type the proxy takes by name and the README does not list (image/pjpeg was taken and never sent by a test),
    or one listed that it refuses with 415."""
    from handlers import proxy_core

    taken = {*proxy_core.SUPPORTED_IMAGE_TYPES, *proxy_core.GENERIC_IMAGE_TYPES, *proxy_core.IMAGE_TYPE_ALIASES}
    listed = listed_types((ROOT / "README.md").read_text(encoding="utf-8"), "`POST /predict` accepts:")
    assert content_type_problems(listed, taken | {proxy_core.JSON_TYPE}, proxy_accepts) == []


def test_the_types_the_readme_says_input_fn_takes_are_its():
    from local.runtime import load_inference_module

    decoders = set(load_inference_module(ROOT / "model" / "code", "docs_inference").INPUT_DECODERS)
    listed = listed_types((ROOT / "README.md").read_text(encoding="utf-8"), "`input_fn` takes:")
    assert content_type_problems(listed, decoders, decoders.__contains__) == []


def test_a_content_type_list_that_drifted_is_caught():
    doc = "## API\n\n`POST /predict` accepts:\n\n- `image/jpeg`, `image/gif`;\n- `application/json`: `{}`.\n\nMore.\n"
    listed = listed_types(doc, "`POST /predict` accepts:")
    assert listed == {"image/jpeg", "image/gif", "application/json"}
    taken = {"image/jpeg", "image/png", "application/json"}
    assert content_type_problems(listed, taken, proxy_accepts) == [
        "image/gif: in the README's list, refused",
        "image/png: taken, not in the README's list",
    ]


# --- the CPU-only torch recipe: the pins it installs ---------------------------------------------------------------

TORCH_PIN = re.compile(r"(?<![\w-])(torch|torchvision)==([\w.+]+)")


def torch_recipe_problems(text: str, requirements: str) -> list[str]:
    """Where the "Installing CPU-only torch" section's torch and torchvision pins differ from requirements.txt's, or
    its `pip install --index-url` command leaves one of them out."""
    pinned = dict(TORCH_PIN.findall(requirements))
    section = after(text, "\n## Installing CPU-only torch\n").split("\n## ", 1)[0]
    problems = [
        f"{name}=={version}: requirements.txt pins {name}=={pinned.get(name)}"
        for name, version in TORCH_PIN.findall(section)
        if pinned.get(name) != version
    ]
    installs = [line for block in code_blocks(section) for line in block.splitlines() if "--index-url" in line]
    for line in installs:
        named = {name for name, _ in TORCH_PIN.findall(line)}
        problems += [
            f"{line.split('#')[0].strip()}: does not install {name}" for name in sorted(pinned) if name not in named
        ]
    if not installs:
        problems.append("no `pip install --index-url` command in the section")
    return sorted(set(problems))


def test_the_cpu_only_torch_recipe_installs_the_pinned_versions():
    """A pin bumped in requirements.txt and not in the recipe: pip installs the old CPU wheels, and `make venv` then
    replaces them with the new pin's CUDA build, the several GB the recipe is there to avoid."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert set(dict(TORCH_PIN.findall(requirements))) == {"torch", "torchvision"}  # what the scan found
    assert torch_recipe_problems(readme, requirements) == []


def test_a_torch_recipe_that_drifted_is_caught():
    requirements = "torch==2.15.0\ntorchvision==0.30.0\ntorch-model-archiver==0.12.0\n"
    doc = (
        "# Doc\n\n## Installing CPU-only torch\n\n"
        "`requirements.txt` pins `torch==2.15.0` and `torchvision==0.29.1`.\n\n"
        "```sh\nvenv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1\n```\n\n"
        "## Next\n\n`torch==1.0` elsewhere is not the recipe's.\n"
    )
    assert torch_recipe_problems(doc, requirements) == [
        "torch==2.14.1: requirements.txt pins torch==2.15.0",
        "torchvision==0.29.1: requirements.txt pins torchvision==0.30.0",
        "venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1: does not install "
        "torchvision",
    ]


# --- the flags of the project's other command lines: python -m model.package, bench, bench.loadtest, ... ----------

# The module each `python -m NAME` of the README runs, whose main() builds its parser.
CLI_MODULES = {
    "local": "local.__main__",
    "model.package": "model.package",
    "local.torchserve": "local.torchserve",
    "bench": "bench.__main__",
    "bench.loadtest": "bench.loadtest",
    "bench.jpeg_quality": "bench.jpeg_quality",
}


def cli_parsers() -> dict:
    """Each CLI's argparse parser, as its main() builds it (stopped there: nothing runs)."""
    import argparse
    import contextlib
    import importlib
    from unittest import mock

    from components.command_line import OneLineErrorParser

    class Built(Exception):
        pass

    def stop(parser, *_):
        raise Built(parser)

    class Stopped(argparse.ArgumentParser):
        parse_args = stop

    # Each CLI's own parser class (bench.jpeg_quality's through its own argparse name): argparse.ArgumentParser's
    # parse_args itself is every parser's in the process.
    parsers = {}
    for name, module in CLI_MODULES.items():
        cli = importlib.import_module(module)
        own = names_of(argparse, ArgumentParser=Stopped)
        with (
            mock.patch.object(OneLineErrorParser, "parse_args", stop),
            mock.patch.object(cli, "argparse", own) if hasattr(cli, "argparse") else contextlib.nullcontext(),
            pytest.raises(Built) as built,
        ):
            cli.main([])
        parsers[name] = built.value.args[0]
    return parsers


def command_lines(text: str) -> list[str]:
    """The doc's inline code spans, and the lines of its code blocks with their indented continuation lines joined
    (a usage line that wraps its `[--flag]`s onto the next)."""
    lines = []
    for block in code_blocks(text):
        for line in block.splitlines():
            if lines and line[:1].isspace() and line.strip():
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose(text))] + lines


def cli_flag_problems(text: str, parsers: dict) -> list[str]:
    """The flags a `python -m NAME` command of the doc gives that NAME's parser lacks, and the defaults
    (`[--requests 1000]`) and choices (`[--preset A|B]`) it shows that are not the parser's."""
    problems = []
    for line in command_lines(text):
        for name, rest in re.findall(r"python -m ([\w.]+)([^#]*)", line):
            parser = parsers.get(name)
            if parser is None:
                problems.append(f"python -m {name}: no such command line in CLI_MODULES")
                continue
            actions = {flag: action for action in parser._actions for flag in action.option_strings}
            for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                if flag not in actions:
                    problems.append(f"python -m {name} {flag}: no such flag")
            for flag, value in re.findall(r"\[(--[a-z][\w-]*) ([^\]\s]+)\]", rest):
                action = actions.get(flag)
                if action is None:
                    continue
                if "|" in value and set(value.split("|")) != set(action.choices or ()):
                    problems.append(f"python -m {name} {flag}: choices {value}, the parser's are {action.choices}")
                elif re.fullmatch(r"\d+(\.\d+)?", value) and float(value) != action.default:
                    problems.append(f"python -m {name} {flag}: default {value}, the parser's is {action.default}")
    return sorted(set(problems))


def test_every_flag_the_readme_gives_a_command_line_is_its():
    """A flag renamed in a CLI (--duration-cap, --startup-timeout) left the README's command failing with argparse's
    'unrecognized arguments'; a default changed left the usage line telling the old one."""
    parsers = cli_parsers()
    assert all(len(parser._actions) > 1 for parser in parsers.values())  # what the parsers gave: flags beyond -h
    assert cli_flag_problems((ROOT / "README.md").read_text(encoding="utf-8"), parsers) == []


def test_every_command_line_names_itself_as_the_readme_runs_it():
    """argparse names a `python -m` module by its file (`usage: torchserve.py`), a command no one can type; each
    usage and error line names the command the README gives."""
    assert {name: parser.prog for name, parser in cli_parsers().items()} == {
        name: f"python -m {name}" for name in CLI_MODULES
    }


def test_a_command_line_flag_that_drifted_is_caught():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--preset", choices=("V1", "V2"))
    parser.add_argument("--quick", action="store_true")
    doc = (
        "Run `python -m tool --quick --fast` or `python -m other`.\n\n"
        "```sh\nmake tool   # = python -m tool\n"
        "python -m tool [--requests 500] [--preset V1|V3]\n              [--slow] [--quick]   # not --this\n```\n"
    )
    assert cli_flag_problems(doc, {"tool": parser}) == [
        "python -m other: no such command line in CLI_MODULES",
        "python -m tool --fast: no such flag",
        "python -m tool --preset: choices V1|V3, the parser's are ('V1', 'V2')",
        "python -m tool --requests: default 500, the parser's is 1000",
        "python -m tool --slow: no such flag",
    ]


# --- the local stack's limits, as the README states them -----------------------------------------------------------


def local_limit_phrases() -> list[str]:
    """What the README says of each limit of the local stack, written from the constant that sets it."""
    from handlers.proxy_core import LAMBDA_TIMEOUT_S
    from local import gateway, runtime, sandboxes, server

    def mib(size: int) -> str:
        return f"{size / 2**20:g}"

    return [
        f"Sandboxes start on demand, up to {server.LAMBDA_SANDBOXES}, forked",
        f"A sandbox idle for {sandboxes.SANDBOX_IDLE_LIMIT_S / 60:g} minutes is retired",
        f"a {mib(gateway.MAX_BODY_BYTES)} MB body limit (413)",
        f"and {gateway.MAX_HEADER_BYTES / 1024:g} KB of request line and headers (431",
        f"the deployed {gateway.INTEGRATION_TIMEOUT_S:g} s integration timeout (503)",
        f"A {mib(runtime.MAX_PAYLOAD_BYTES)} MB request cap (`ValidationError`)",
        f"A {runtime.INVOCATION_TIMEOUT_S:g} s invocation timeout",
        f"The function's timeout, {LAMBDA_TIMEOUT_S} s",
        f"complete each request head within {server.HEAD_TIMEOUT_S:g} s, else it is closed",
        f"complete its body within {server.BODY_TIMEOUT_S:g} s, else JSON 408",
        f"once its answer has not moved for {server.WRITE_STALL_TIMEOUT_S:g} s",
        f"answered first, for up to {server.uvicorn_config(None, 'warning').timeout_graceful_shutdown:g} s",
        f'503 `{{"message": "{server.STOPPING_MESSAGE}"}}`',
        f"a head over {mib(server.MAX_HEAD_BUFFER_BYTES)} MiB",
        f"whose event is over {mib(gateway.LAMBDA_MAX_EVENT_BYTES)} MiB ({gateway.LAMBDA_MAX_EVENT_BYTES:,} bytes)",
        f"(or over Lambda's {mib(gateway.LAMBDA_MAX_EVENT_BYTES)} MiB event)",
        # base64 makes 3 bytes 4 characters, and the event's other fields take a few KB more
        f"a raw upload of about {gateway.LAMBDA_MAX_EVENT_BYTES * 3 / 4 / 1e6:.1f} MB or more never reaches",
        f"The handler's own JSON 413 covers what gets through (over {mib(runtime.MAX_PAYLOAD_BYTES)} MiB)",
    ]


def missing_phrases(text: str, phrases: list[str]) -> list[str]:
    """The phrases the doc does not hold, its line breaks read as spaces."""
    flat = " ".join(text.split())
    return [phrase for phrase in phrases if phrase not in flat]


def test_the_readme_local_stack_limits_are_its_constants():
    """The tests of those limits measure against the constants, so a changed one (the head's 10 s, the 64 sandboxes)
    passed them all and left the README telling the old figure."""
    phrases = local_limit_phrases()
    assert all(re.search(r"\d", phrase) for phrase in phrases)  # what the constants gave: a figure each
    assert missing_phrases((ROOT / "README.md").read_text(encoding="utf-8"), phrases) == []


def test_a_local_limit_that_drifted_is_caught():
    doc = "- A connection must complete each request head\n  within 10 s, else it is closed.\n- Up to 32 sandboxes.\n"
    phrases = ["complete each request head within 10 s, else it is closed", "Up to 64 sandboxes"]
    assert missing_phrases(doc, phrases) == ["Up to 64 sandboxes"]


def fork_server_start_error(tmpdir: Path) -> str:
    """What starting the sandboxes' fork server (forkserver.ensure_running, as local.sandboxes does) says with
    TMPDIR at tmpdir: '' once it runs."""
    script = (
        "from multiprocessing import forkserver as f\ntry:\n    f.ensure_running()\nexcept OSError as e:\n    print(e)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "TMPDIR": str(tmpdir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_the_readme_tmpdir_limit_is_where_the_fork_server_stops(tmp_path):
    """No constant sets it: multiprocessing names a socket '<TMPDIR>/pymp-XXXXXXXX/listener-XXXXXXXX' and a socket's
    path holds 107 bytes (103 on macOS, whose sun_path is 104), so the figure is measured, on this platform. The README
    said 'over about 70 characters': 75 start; and only Linux's figure, for a Mac too."""
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    figure = re.search(
        r"too long a path for the fork server's Unix socket \(over (\d+) characters on Linux, (\d+) on macOS\b", readme
    )
    assert figure, "the README's sentence on a TMPDIR too long for the fork server's socket was reworded"
    linux, macos = int(figure.group(1)), int(figure.group(2))
    assert linux - macos == 108 - 104  # the two sun_path sizes
    longest = macos if sys.platform == "darwin" else linux
    if len(str(tmp_path)) + 2 > longest:
        skip_or_fail(
            f"pytest's temporary directory {tmp_path} is already too long a path", "CI must give a shorter one"
        )
    ok = tmp_path / "t"
    ok = ok.with_name("t" * (longest - len(str(ok)) + 1))
    too_long = ok.with_name(ok.name + "t")
    for path in (ok, too_long):
        path.mkdir()
    assert (len(str(ok)), len(str(too_long))) == (longest, longest + 1)
    assert (fork_server_start_error(ok), fork_server_start_error(too_long)) == ("", "AF_UNIX path too long")


# --- the proxy's and the model's limits, as the README states them --------------------------------------------------


def python_constants(source: str) -> dict:
    """A module's top-level `NAME = number` (arithmetic of literals evaluated, `512 * 8192`), read without importing it:
    model/code/inference.py sets Pillow's global pixel limit when imported."""
    import ast

    constants = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = js_number(node.value)
            except ValueError:
                continue
    return constants


def spelled(number: int, words: dict[int, str]) -> str:
    """The word the README writes for a number ("Two attempts", "twice the crop"); another number stays in digits,
    so a changed constant leaves a phrase the README does not hold."""
    return words.get(number, str(number))


def proxy_figure_phrases() -> list[str]:
    """What the README says of the proxy's limits and time budget, written from handlers/proxy_core.py's constants."""
    from handlers import proxy_core as p

    kib, cap = p.JSON_ENVELOPE_SLACK_BYTES // 1024, p.SAGEMAKER_SERVERLESS_MAX_BYTES
    return [
        f"`top_k` not an integer in 1..{p.MAX_TOP_K}",
        f"`?top_k=N`: 1..{p.MAX_TOP_K}, default {p.DEFAULT_TOP_K}.",
        f"a JSON body of more than {p.MAX_JSON_CONTAINERS:,} arrays and objects",
        f"JSON body over its base64 size + {kib} KiB",
        f"with room for MIME line breaks, plus {kib} KiB.",
        f"at most the first line, {p.MODEL_MESSAGE_MAX_CHARS} characters",
        f"The detail is at most {p.DETAIL_MAX_CHARS:,} characters",
        f"| `MAX_IMAGE_BYTES` | 1..{cap}, default {cap} ",
        f"| `ENDPOINT_READ_TIMEOUT_S` | 0.1..{p.READ_TIMEOUT_S:g}, default {p.READ_TIMEOUT_S:g};",
        f"Each attempt: connect ≤ {p.CONNECT_TIMEOUT_S:g} s, read ≤ {p.READ_TIMEOUT_S:g} s.",
        f"{spelled(p.TOTAL_MAX_ATTEMPTS, {2: 'Two'})} attempts (botocore adaptive retries).",
        f"`min(start + {p.INVOKE_BUDGET_S:g} s, Lambda end − {p.LAMBDA_SAFETY_MARGIN_S:g} s)`",
        f"returns at most {p.INVOKE_BUDGET_S:g} s after the handler started. "
        f"That is under the {p.LAMBDA_TIMEOUT_S} s Lambda timeout",
        f"and {p.API_GATEWAY_LIMIT_S - p.INVOKE_BUDGET_S:g} s before API Gateway's "
        f"{p.API_GATEWAY_LIMIT_S:g} s hard limit",
        # Each attempt waits its whole read for a model that does not answer: the 504 comes after the reads (20.5 s on
        # the local stack with a 40 s fault delay), not at the budget, which only cuts an attempt that would not fit.
        f"a cold start that outlasts its {spelled(p.TOTAL_MAX_ATTEMPTS, {2: 'two'})} {p.READ_TIMEOUT_S:g} s reads, "
        f"about {p.TOTAL_MAX_ATTEMPTS * p.READ_TIMEOUT_S:g} s)",
    ]


def model_figure_phrases() -> list[str]:
    """What the README says of the artifact's and the model's limits, written from model/package.py's constants and
    model/code/inference.py's."""
    from model import package

    c = python_constants((ROOT / "model" / "code" / "inference.py").read_text(encoding="utf-8"))
    v1, v2 = package.PRESETS["IMAGENET1K_V1"], package.PRESETS["IMAGENET1K_V2"]
    profiles = spelled(c["MAX_PNG_ICCP_CHUNKS"], {1: "one"})
    return [
        f"normalisation inside the graph, opset {package.ONNX_OPSET}",
        f"| `IMAGENET1K_V2` | the download | {v2['resize']} |",
        f"| the default for a local file, e.g. the shared one | {v1['resize']} |",
        f"Both then crop {v1['crop']},",
        f"Both then crop {v2['crop']},",
        f"the first {spelled(package.INT8_FLOAT_CONVS, {6: 'six'})} Convs stay float",
        f"Only past {c['MAX_RESIZED_SIDE_FACTOR']}:1 is the crop resampled",
        f"whose crop is above {c['MAX_CROP']} (`MAX_CROP`;",
        f"or whose resize is above {spelled(c['MAX_RESIZE_PER_CROP'], {2: 'twice'})} the crop",
        f"A JPEG of more than {c['MAX_JPEG_SCANS']} scans is refused (400)",
        f"A PNG of more than {profiles} colour profile",
        f"a JPEG of more than {c['MAX_JPEG_SCANS']} scans; a PNG of more than {profiles} colour profile |",
        f"`top_k` is 1..{c['MAX_TOP_K']}, default {c['DEFAULT_TOP_K']}.",
        f"| 413 | more than {c['MAX_PIXELS']:,} pixels, {c['MAX_SIDE']:,} on a side, "
        f"or a WebP over {c['MAX_WEBP_PIXELS']:,} pixels |",
    ]


def test_the_readme_proxy_figures_are_its_constants():
    """Nothing compared them: a JSON container limit, a message cut or a time budget changed in proxy_core.py (and in
    the tests, which read the constants) left the README telling a client or an operator the old figure."""
    assert missing_phrases((ROOT / "README.md").read_text(encoding="utf-8"), proxy_figure_phrases()) == []


def test_the_readme_model_figures_are_its_constants():
    """The same for the model: its pixel, scan and crop limits, the presets' sizes, the opset."""
    assert missing_phrases((ROOT / "README.md").read_text(encoding="utf-8"), model_figure_phrases()) == []


def test_python_constants_are_read_as_values_and_a_changed_one_is_caught():
    source = 'A = 50_000_000\nB = 512 * 8192\nC = "text"\nD: int = 3\ndef f():\n    E = 1\n'
    assert python_constants(source) == {"A": 50_000_000, "B": 4_194_304}
    assert spelled(2, {2: "twice"}) == "twice" and spelled(3, {2: "twice"}) == "3"
    doc = "- A JPEG of more than 100 scans is refused (400).\n"
    phrases = [f"A JPEG of more than {n} scans is refused (400)" for n in (100, 200)]
    assert missing_phrases(doc, phrases) == ["A JPEG of more than 200 scans is refused (400)"]


def gateway_id_problems(text: str, statuses: set[int]) -> list[str]:
    """Where the statuses the README lists as API Gateway's own answers (those carrying `apigw-requestid`) differ
    from the local gateway's own error statuses."""
    section = after(text, "API Gateway's own answers carry the same id as `apigw-requestid`.")
    listed = {
        int(status) for status in re.findall(r"\b[1-5]\d\d\b", after(section, "Those answers are:").split(".")[0])
    }
    problems = [f"{status}: API Gateway's own answer, not in the README's list" for status in statuses - listed]
    problems += [
        f"{status}: in the README's list, not one of API Gateway's own answers" for status in listed - statuses
    ]
    return sorted(problems)


def test_the_readme_names_every_answer_of_api_gateways_own():
    """The UI shows `apigw-requestid` for these; the list left out the stage throttling's 429 (added a day before it
    was written) and the 408 of a stalled body, which carry it too."""
    from local.gateway import GATEWAY_ERRORS

    assert gateway_id_problems((ROOT / "README.md").read_text(encoding="utf-8"), set(GATEWAY_ERRORS)) == []


def test_a_gateway_answer_list_that_drifted_is_caught():
    doc = (
        "- API Gateway's own answers carry the same id as `apigw-requestid`. The UI shows it.\n"
        "  Those answers are: that 404, 413 over 10 MB, and the 500 of a crashed function.\n- Then 429 elsewhere.\n"
    )
    assert gateway_id_problems(doc, {404, 413, 429}) == [
        "429: API Gateway's own answer, not in the README's list",
        "500: in the README's list, not one of API Gateway's own answers",
    ]


# --- the web UI's figures, as the README states them ---------------------------------------------------------------


def js_number(node):
    """A number, a product, sum or difference of them, or a list of those (JavaScript's syntax is Python's here)."""
    import ast
    import operator

    operators = {ast.Mult: operator.mul, ast.Add: operator.add, ast.Sub: operator.sub}
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.List):
        return [js_number(element) for element in node.elts]
    if isinstance(node, ast.BinOp) and type(node.op) in operators:
        return operators[type(node.op)](js_number(node.left), js_number(node.right))
    raise ValueError(node)


def script_constants(script: str) -> dict:
    """script.js's `export const NAME = value;`: numbers (arithmetic of literals evaluated), lists of them, strings."""
    import ast

    constants: dict = {}
    for name, value in re.findall(r"^export const ([A-Z][A-Z0-9_]*) =\s*(.+?);$", script, flags=re.M | re.S):
        if re.fullmatch(r"[\d\s.*+\-\[\],]+", value):
            constants[name] = js_number(ast.parse(value.strip(), mode="eval").body)
        elif m := re.fullmatch(r'"([^"\\]*)"', value.strip()):
            constants[name] = m[1]
    return constants


def ui_phrases(c: dict) -> list[str]:
    """What the README says of the page's figures, written from script.js's constants."""
    side, aspect = c["TARGET_SHORT_SIDE"], c["MAX_ASPECT"]
    return [
        f"downscales it to a {side} px shorter side (never upscaled), as JPEG q{c['JPEG_QUALITY']:g}.",
        f"at most {aspect}:1 ({aspect * side}x{side})",
        f"pixels over {c['MAX_UPLOAD_BYTES'] / 1024:g} KB are re-encoded,",
        f"down to q{min(c['FALLBACK_JPEG_QUALITIES']):g}, until they fit",
        f"one over {c['MAX_INPUT_BYTES'] / 2**20:g} MB;",
        f"declares over {c['MAX_INPUT_PIXELS'] / 1e6:g} megapixels",
        f"Under {c['LOW_CONFIDENCE'] * 100:g}% it is called a guess",
        f"An answer still pending after {c['SLOW_ANSWER_MS'] / 1000:g} s",
        f'"Try 2 of {c["MAX_ATTEMPTS"]}…"',
        f'"{c["SLOW_ANSWER_HINT"]}"',
        f'| "busy, retrying" | up to {c["MAX_ATTEMPTS"]} attempts |',
        f"the UI tries at most {c['MAX_ATTEMPTS']} times",
        f"| no answer within {c['REQUEST_TIMEOUT_MS'] / 1000:g} s |",
        f"(cap {c['MAX_RETRY_DELAY_MS'] / 1000:g} s)",
        f"A `Retry-After` over {c['MAX_RETRY_DELAY_MS'] / 1000:g} s is not undercut",
    ]


def test_the_readme_ui_figures_are_script_js_constants():
    """Nothing compared the README's figures with script.js: a constant changed together with the browser test that
    holds it (4 attempts, 35 s) left the README, and the API 5xx alarm's threshold it explains, telling the old one;
    one the browser tests take from the page (50 MB) changed silently."""
    constants = script_constants((ROOT / "www" / "script.js").read_text(encoding="utf-8"))
    assert isinstance(constants["MAX_UPLOAD_BYTES"], int) and isinstance(constants["SLOW_ANSWER_HINT"], str)
    assert missing_phrases((ROOT / "README.md").read_text(encoding="utf-8"), ui_phrases(constants)) == []


def test_script_constants_are_read_as_values():
    script = (
        'export const A = 60 * 1024;\nexport const B = [0.9, 0.5];\nexport const C =\n  "text: here";\n'
        "export const D = `tpl`;\nexport function f() {}\nconst E = 1;\n"
    )
    assert script_constants(script) == {"A": 61440, "B": [0.9, 0.5], "C": "text: here"}


def dev_stack_phrases(config: dict) -> list[str]:
    """What the README says of the committed dev stack's values, written from its Pulumi.dev.yaml `config:`."""
    key = "mobilenet-serverless:{}".format
    tags = config["aws:defaultTags"]["tags"]
    return [
        f"Pulumi.dev.yaml is committed: region {config['aws:region']}, default tags, dev values",
        f"({config[key('apiThrottleBurstLimit')]} and {config[key('apiThrottleRateLimit')]} in `Pulumi.dev.yaml`)",
        f"(dev: {', '.join(f'`{origin}`' for origin in config[key('corsExtraOrigins')])})",
        f"| `Pulumi.dev.yaml` `memorySizeMb: {config[key('memorySizeMb')]}` |",
        f"`Pulumi.dev.yaml` keeps `{'`, `'.join(t for t in tags if t != 'stack')}` and adds `stack: {tags['stack']}`",
    ]


def test_the_readme_dev_stack_values_are_pulumi_dev_yamls():
    """The local stack and the first `pulumi up` run on Pulumi.dev.yaml: a value changed there (the stage's burst,
    the extra origin) left the README describing the throttle and CORS a newcomer does not get."""
    import yaml

    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text(encoding="utf-8"))["config"]
    assert missing_phrases((ROOT / "README.md").read_text(encoding="utf-8"), dev_stack_phrases(config)) == []


# ==================================================================================================
# The page's credits for its sample photos: the footer names each author and licence the credits file does.

CREDIT_ROW = re.compile(r"^\| `(\w+)\.jpg` \| [^|]+ \| ([^|]+?) \| ([^|]+?) \|$", re.M)


def uncredited_samples(page: str, credits: str) -> list[str]:
    """The samples of credits' table whose "(author, licence)" the page's footer does not give."""
    footer = " ".join(after(page, '<footer class="site-footer">').split()).lower()
    rows = CREDIT_ROW.findall(credits)
    assert rows, "no sample rows in www/samples/ATTRIBUTION.md: tests/test_docs.py reads its table"
    return [name for name, author, licence in rows if f"({author}, {licence})".lower() not in footer]


def test_the_page_credits_each_sample_as_its_credits_file_does():
    page = (ROOT / "www" / "index.html").read_text(encoding="utf-8")
    credits = (ROOT / "www" / "samples" / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert uncredited_samples(page, credits) == []


def test_a_sample_the_footer_does_not_credit_is_caught():
    page = (ROOT / "www" / "index.html").read_text(encoding="utf-8")
    credits = (ROOT / "www" / "samples" / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert uncredited_samples(page.replace("(NASA, public domain)", ""), credits) == ["astronaut"]
    assert uncredited_samples(page, credits.replace("| SpaceX |", "| Blue Origin |")) == ["rocket"]


def test_the_alarms_section_says_what_an_encrypted_topic_needs_and_names_an_alarm_to_try_it_with():
    """A topic encrypted with the AWS managed key (alias/aws/sns) met every requirement the section listed, and
    CloudWatch cannot publish to it: whoever set alarmTopicArn was told of nothing. The alarm the README sets by hand to
    see a notification arrive is one the program creates."""
    from components.alarms import inference_api_alarms, serverless_endpoint_alarms

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = " ".join(after(prose(readme), "\n## Alarms\n").split("\n## ")[0].split())
    for needed in ("alias/aws/sns", "cloudwatch.amazonaws.com", "kms:Decrypt", "kms:GenerateDataKey*"):
        assert needed in section, f"the Alarms section does not say what an encrypted alarmTopicArn needs: {needed}"
    declared = {
        s.alarm_name for s in inference_api_alarms("<fn>", "a", "b") + serverless_endpoint_alarms("<endpoint>", "c")
    }
    named = re.findall(r"set-alarm-state --alarm-name (\S+)", section)
    assert named and set(named) <= declared, f"{named} are not among the alarms the program creates: {sorted(declared)}"


def test_the_alarms_table_has_a_row_for_each_alarm_the_program_creates_and_no_other():
    """An alarm added to components/alarms.py without its row leaves an operator paged by a name the runbook never
    mentions; the count in the section's first line follows the same list."""
    from components.alarms import inference_api_alarms, serverless_endpoint_alarms

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Alarms\n", 1)[1].split("\n## ")[0]
    rows = re.findall(r"^\| `(<[a-z]+>-[a-z0-9-]+)` \|", section, flags=re.MULTILINE)
    declared = [
        s.alarm_name for s in inference_api_alarms("<fn>", "a", "b") + serverless_endpoint_alarms("<endpoint>", "c")
    ]
    assert sorted(rows) == sorted(declared)
    words = {5: "five", 6: "six", 7: "seven", 8: "eight"}
    assert f"the program creates {words[len(declared)]} CloudWatch metric alarms" in " ".join(section.split())


def test_the_concurrency_alarms_row_says_which_throttled_calls_the_proxy_logs():
    """The proxy retries a throttled call once: the row said it answered each 429 and logged a line for each, and an
    operator paged by the alarm who found few such lines (its retries absorb most) had reason to dismiss it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in readme.splitlines() if line.startswith("| `<endpoint>-concurrency` |")]
    assert "only when the retry is refused too" in row and "none if every retry found a slot" in row, row


# ==================================================================================================
# The Credits name every third-party distribution the Lambda asset carries.


def uncredited_distributions(readme: str, names: list[str]) -> list[str]:
    """The distributions (canonical names) that the README's Credits do not name as `name`."""
    credits = after(readme, "\n## Credits\n")
    return [name for name in names if f"`{name}`" not in credits]


def test_the_credits_name_every_distribution_the_lambda_asset_bundles():
    """The asset copies Powertools and what it requires, each with its licence file: a reviewer of what is shipped
    reads the Credits, which named ONNX Runtime alone."""
    from components.lambda_bundle import BUNDLED_DISTRIBUTIONS, canonical_name, resolve_distributions

    names = [canonical_name(dist.metadata["Name"]) for dist in resolve_distributions(BUNDLED_DISTRIBUTIONS)]
    assert "aws-lambda-powertools" in names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert uncredited_distributions(readme, names) == []
    assert uncredited_distributions(readme, [*names, "left-pad"]) == ["left-pad"]


# The AWS CLI v1 that requirements-dev.txt installs lacks these; the README names v2 among what a deploy needs.
AWS_CLI_V2_ONLY = {("logs", "tail")}


def aws_commands(text: str) -> set[tuple[str, ...]]:
    """The `aws <service> <operation>` commands in a doc's code (a waiter with its name: `aws sagemaker wait x`)."""
    code = re.findall(r"`([^`\n]+)`", prose(text)) + re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    found = set()
    for snippet in code:
        for m in re.finditer(r"(?:^|[\s/])aws ([a-z][a-z0-9-]*) ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?", snippet):
            found.add(m.groups() if m[2] == "wait" and m[3] else m.groups()[:2])
    return found


def test_every_aws_cli_command_the_readme_gives_exists_and_a_v2_one_is_asked_for():
    """`aws logs tail`, which the README and the smoke check's error give for the endpoint's logs, is AWS CLI v2's only:
    the venv's v1 answered `Invalid choice`, and nothing said v2 was needed. A misspelt command fails here too."""
    aws = ROOT / "venv" / "bin" / "aws"
    if not aws.exists():
        skip_or_fail("AWS CLI not installed in the venv", "CI installs it from requirements-dev.txt")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = aws_commands(readme)
    assert ("sagemaker", "wait", "endpoint-deleted") in commands and ("s3", "cp") in commands, commands
    env = {**os.environ, "AWS_PAGER": "", "PAGER": "cat", "MANPAGER": "cat"}
    for command in sorted(commands - AWS_CLI_V2_ONLY):
        run = subprocess.run([str(aws), *command, "help"], capture_output=True, text=True, env=env, timeout=60)
        said = next((line for line in run.stderr.splitlines() if "Invalid choice" in line), run.stderr[-300:])
        assert run.returncode == 0, f"`aws {' '.join(command)}` is no AWS CLI command: {said.strip()}"
    if commands & AWS_CLI_V2_ONLY:
        needs = after(prose(readme), "\n## Deploy to AWS with Pulumi\n").split("\n\n")[1]
        assert "AWS CLI v2" in needs, (
            f"the README gives {sorted(commands & AWS_CLI_V2_ONLY)} (AWS CLI v2 only), and its list of what a deploy "
            "needs does not name the AWS CLI v2"
        )


# How the Terraform table's role rows name what each service's actions grant: `ECR pull`, `InvokeEndpoint on one ARN`.
ROLE_GRANT_WORDS = {
    "ecr": "ECR pull",
    "s3": "`models/` prefix",
    "logs": "own log group",
    "cloudwatch": "`cloudwatch:PutMetricData`",
    "sagemaker": "InvokeEndpoint",
    "kms": "KMS",
}
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def table_row(text: str, first_cell: str) -> str:
    """The row of a Markdown table whose first cell is `first_cell`."""
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, f"expected one table row starting {first_cell!r}, found {len(rows)}"
    return rows[0]


def unnamed_grants(row: str, policy: str) -> list[str]:
    """The services whose actions the IAM policy document grants and the row does not name (ROLE_GRANT_WORDS)."""
    services = set()
    for statement in json.loads(policy)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        services.update(action.split(":")[0] for action in actions)
    return sorted(s for s in services if s not in ROLE_GRANT_WORDS or ROLE_GRANT_WORDS[s] not in row)


def role_policies() -> dict[str, str]:
    """The Terraform table's role rows -> the policy the program gives that role, with a KMS key (every grant)."""
    from components import policies

    return {
        "`data aws_iam_role` (SageMaker)": policies.sagemaker_execution_policy(
            partition="aws",
            region="us-east-1",
            account_id="123456789012",
            registry_id="763104351884",
            repository=policies.DLC_REPOSITORY,
            bucket="model-bucket",
            endpoint_name="classifier",
            kms_key_arn=KMS_KEY,
        ),
        "`data aws_iam_role` (Lambda)": policies.lambda_execution_policy(
            partition="aws",
            region="us-east-1",
            account_id="123456789012",
            log_group_name="/aws/lambda/classifier-proxy",
            endpoint_arn="arn:aws:sagemaker:us-east-1:123456789012:endpoint/classifier",
            kms_key_arn=KMS_KEY,
        ),
    }


def test_the_terraform_tables_role_rows_name_every_service_the_roles_policies_grant():
    """The SageMaker role's row listed ECR, the models/ prefix, its log group and KMS, and left out the
    cloudwatch:PutMetricData it also holds (on /aws/sagemaker/Endpoints only): a reader comparing the role with the
    original's read a grant the row did not give."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = after(readme, "\n## Terraform original → this program\n").split("\n## ")[0]
    for first_cell, policy in role_policies().items():
        assert unnamed_grants(table_row(section, first_cell), policy) == [], first_cell


def test_a_role_row_that_leaves_a_grant_out_is_caught():
    policy = role_policies()["`data aws_iam_role` (SageMaker)"]
    row = "| `data aws_iam_role` (SageMaker) | ECR pull, the stack's `models/` prefix, own log group, optional KMS |"
    assert unnamed_grants(row, policy) == ["cloudwatch"]
    assert unnamed_grants(row.replace("KMS", "a key"), policy) == ["cloudwatch", "kms"]


def test_the_readme_says_what_a_refused_setting_names():
    """The README said an unknown key or a bad value fails with the key, the value and the allowed range; an unknown
    key (a misspelt memorySizeMB) is told the key and the keys allowed, and no value."""
    from components.settings import CONFIG_KEYS, SettingsError, validate_settings

    told = {}
    for kind, raw in (("unknown", {"memorySizeMB": "2048"}), ("bad", {"memorySizeMb": "2000"})):
        with pytest.raises(SettingsError) as refused:
            validate_settings(raw)
        told[kind] = str(refused.value)
    assert "mobilenet-serverless:memorySizeMB" in told["unknown"] and "2048" not in told["unknown"]
    assert all(key in told["unknown"] for key in CONFIG_KEYS)
    assert all(part in told["bad"] for part in ("mobilenet-serverless:memorySizeMb", "'2000'", "1024, 2048, 3072"))
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert (
        "A bad value fails with the key, the value and the allowed range, and an unknown key (a misspelt one) with the "
        "keys allowed" in readme
    )


def test_a_preset_added_to_presets_is_a_preset_choice_as_the_readme_says(monkeypatch):
    """The README said another preset name needs its entry in PRESETS "and in `--preset`'s choices": the choices are
    PRESETS' keys, so a reader looked for a second place to edit that does not exist."""
    from components.command_line import OneLineErrorParser
    from model import package

    class Built(Exception):
        pass

    def stop(parser, *_):
        raise Built(parser)

    monkeypatch.setitem(package.PRESETS, "IMAGENET1K_SWAG_E2E_V1", {"resize": 384, "crop": 384})
    monkeypatch.setattr(OneLineErrorParser, "parse_args", stop)  # the builder's own: ArgumentParser's is everyone's
    with pytest.raises(Built) as built:
        package.main([])
    [preset] = [action for action in built.value.args[0]._actions if "--preset" in action.option_strings]
    assert "IMAGENET1K_SWAG_E2E_V1" in preset.choices
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "Another preset name needs its own entry there, which also makes it one of `--preset`'s choices." in readme


# How the README's list of bilinear ImageNet presets names each torchvision architecture (checked in this order).
PRESET_FAMILIES = (
    ("wide_resnet", "Wide ResNet"),
    ("resnext", "ResNeXt"),
    ("resnet", "ResNet"),
    ("convnext", "ConvNeXt"),
    ("densenet", "DenseNet"),
    ("regnet", "RegNet"),
    ("mobilenet_v2", "MobileNet V2"),
    ("mobilenet_v3", "MobileNet V3"),
    ("mnasnet", "MNASNet"),
    ("shufflenet", "ShuffleNet"),
    ("squeezenet", "SqueezeNet"),
    ("vgg", "VGG"),
    ("alexnet", "AlexNet"),
    ("googlenet", "GoogLeNet"),
    ("inception", "Inception V3"),
    ("vit", "ViT"),
    ("efficientnet_b", "EfficientNet-B"),
    ("efficientnet_v2", "EfficientNet V2"),
)


def unnamed_bilinear_families(sentence: str, models: list[str]) -> list[str]:
    """The torchvision models whose family the sentence listing the bilinear presets does not name."""
    unnamed = []
    for model in models:
        family = next((words for prefix, words in PRESET_FAMILIES if model.startswith(prefix)), None)
        if family is None or family not in sentence:
            unnamed.append(model)
    return sorted(set(unnamed))


def test_the_readme_counts_and_names_torchvisions_bilinear_presets():
    """The list of the 86 bilinear presets with ImageNet's mean and std left out MobileNet V2's own, AlexNet's,
    GoogLeNet's and Inception V3's (which the MobileNet table names for its 342 resize): a reader took them for
    presets the build refuses."""
    import torchvision

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    presets = [
        (model, weights.transforms())
        for model in torchvision.models.list_models(module=torchvision.models)
        for name, weights in torchvision.models.get_model_weights(model).__members__.items()
        if name != "DEFAULT"
    ]
    bilinear = [
        model
        for model, t in presets
        if getattr(t.interpolation, "value", None) == "bilinear" and list(t.mean) == mean and list(t.std) == std
    ]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    sentence = after(readme, "classification presets, ").split(". Most resize")[0]
    assert sentence.startswith(f"{len(bilinear)} are bilinear with ImageNet's mean and std: "), sentence
    assert f"The other {len(presets) - len(bilinear)} are bicubic" in readme
    assert f"All {len(presets)} antialias" in readme
    assert unnamed_bilinear_families(sentence, bilinear) == []


def test_a_bilinear_family_the_readme_leaves_out_is_caught():
    sentence = "86 are bilinear with ImageNet's mean and std: ResNet, Wide ResNet, the V1 ViTs"
    models = ["resnet18", "wide_resnet50_2", "vit_b_16", "alexnet", "mobilenet_v2", "newnet"]
    assert unnamed_bilinear_families(sentence, models) == ["alexnet", "mobilenet_v2", "newnet"]

"""requirements*.txt's lower bounds against what the distributions they pin require of the same packages.

A bound below a pin's own requirement is never what gets installed: with the bounded package held at the bound (a
constraints file, an environment that has it), pip gives up with ResolutionImpossible naming the pin.
"""

from __future__ import annotations

import importlib.metadata

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tests.ci import skip_or_fail
from tests.conftest import ROOT

FILES = ("requirements.txt", "requirements-dev.txt")


def parse(text: str) -> list[Requirement]:
    return [Requirement(line) for raw in text.splitlines() if (line := raw.split("#", 1)[0].strip())]


def floor(specifier: SpecifierSet) -> Version | None:
    """The least version the specifier's >=, >, ~= and == clauses leave (None when it has none of them)."""
    floors = []
    for spec in specifier:
        if spec.operator in (">=", ">", "~=", "=="):
            try:
                floors.append(Version(spec.version.removesuffix(".*")))
            except InvalidVersion:
                continue
    return max(floors, default=None)


def understated_bounds(ours: list[Requirement], needs: dict[str, list[Requirement]]) -> list[str]:
    """Each of our floors below one that a pinned distribution requires. `needs` maps each pin (as "name==version")
    to the requirements of that distribution that apply here."""
    floors: dict[str, tuple[Version, Requirement]] = {}
    for requirement in ours:
        name, least = canonicalize_name(requirement.name), floor(requirement.specifier)
        if least is not None and (name not in floors or least > floors[name][0]):
            floors[name] = (least, requirement)
    problems = []
    for pin, requirements in needs.items():
        for need in requirements:
            ours_least = floors.get(canonicalize_name(need.name))
            least = floor(need.specifier)
            if ours_least is not None and least is not None and least > ours_least[0]:
                problems.append(f"{ours_least[1]}: {pin} requires {need}")
    return problems


def installed_needs(ours: list[Requirement]) -> dict[str, list[Requirement]]:
    """What each of our == pins requires, read from its installed metadata, with the extras we ask of it."""
    needs = {}
    for requirement in ours:
        if not any(spec.operator == "==" for spec in requirement.specifier):
            continue
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            skip_or_fail(f"{requirement.name} is not installed", "CI must install requirements*.txt (make venv)")
        if not requirement.specifier.contains(dist.version, prereleases=True):
            skip_or_fail(
                f"{requirement.name} {dist.version} is installed, not {requirement}",
                "CI must install requirements*.txt (make venv)",
            )
        applying = []
        for line in dist.requires or []:
            need = Requirement(line)
            if need.marker is None or any(need.marker.evaluate({"extra": e}) for e in ("", *requirement.extras)):
                applying.append(need)
        needs[f"{requirement.name}=={dist.version}"] = applying
    return needs


def test_no_bound_is_below_what_a_pinned_distribution_requires():
    ours = [requirement for name in FILES for requirement in parse((ROOT / name).read_text(encoding="utf-8"))]
    assert understated_bounds(ours, installed_needs(ours)) == []


def test_an_understated_bound_names_the_pin_that_needs_more():
    ours = parse("pulumi==3.272.0\npackaging>=23\nPillow>=10.4\nPyYAML>=6.0\n") + parse("pillow>=11.3\n")
    needs = {
        "pulumi==3.272.0": [Requirement("packaging>=26.0"), Requirement("pyyaml~=6.0"), Requirement("grpcio<2")],
        "onnx==1.23.2": [Requirement("pillow>=11.2"), Requirement("packaging==26.*")],
        "moto==5.2.5": [Requirement("PyYAML>=6.0.3")],
    }
    assert understated_bounds(ours, needs) == [
        "packaging>=23: pulumi==3.272.0 requires packaging>=26.0",
        "packaging>=23: onnx==1.23.2 requires packaging==26.*",
        "PyYAML>=6.0: moto==5.2.5 requires PyYAML>=6.0.3",
    ]

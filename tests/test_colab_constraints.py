"""`pip install dipnb` on Colab keeps what Colab preinstalls: each version that
tools/colab-constraints.txt records satisfies the requirement pyproject.toml states for it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "tools" / "colab-constraints.txt"


def _pins() -> dict[str, Version]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line)
            assert m, f"{CONSTRAINTS.name}: {line!r} is not of the form name==version"
            pins[canonicalize_name(m[1])] = Version(m[2])
    return pins


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


PINS = _pins()
REQUIREMENTS = _requirements()


def test_every_dependency_has_a_colab_version():
    missing = sorted(set(REQUIREMENTS) - set(PINS))
    assert not missing, f"no Colab version recorded in {CONSTRAINTS.name} for {missing}"
    for name in ("torch", "numpy", "matplotlib", "ipywidgets"):
        assert name in PINS


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_colab_version_satisfies_the_requirement(name):
    req = REQUIREMENTS[name]
    assert req.specifier.contains(PINS[name], prereleases=True), (
        f"pyproject.toml requires {req}, Colab has {name}=={PINS[name]}: `pip install dipnb` would change it"
    )


def test_each_version_says_where_it_comes_from_and_when_it_was_checked():
    text = CONSTRAINTS.read_text()
    assert re.search(r"^# Last checked: \d{4}-\d{2}-\d{2}\.$", text, re.M), "a 'Last checked: YYYY-MM-DD.' line"
    assert "https://github.com/googlecolab/backend-info/blob/" in text, "the source of the versions, as a URL"

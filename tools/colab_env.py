"""The second test environment of ``make colab-compat``: Colab's package versions, the project's torch.

Two steps, each run by a different interpreter:

``python tools/colab_env.py link-torch ENV``
    Run by the project's interpreter (``.venv/bin/python``). Links torch and every package it
    depends on (its dependency closure, as installed here) into ``ENV/shared-torch`` and adds a
    ``.pth`` file to the environment ``ENV/venv`` that puts that folder on its ``sys.path``, after
    its own site-packages. torch is reused, not installed a second time. The folder lies outside
    the environment's prefix, so pip in the environment counts torch as installed but never
    uninstalls or changes it (pip only removes what lies inside the environment).

``python tools/colab_env.py check CONSTRAINTS``
    Run by the environment's interpreter after ``pip install`` of the package. Fails, listing
    each difference, when an installed version differs from its line in CONSTRAINTS (torch
    excepted, which comes from the project), i.e. when installing dipnb upgraded or downgraded
    something Colab preinstalls.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SHARED = "shared-torch"
PTH = "dipnb-shared-torch.pth"


def _closure(name: str) -> list[metadata.Distribution]:
    """``name``'s distribution and every installed distribution it requires (extras excluded)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [name]
    while todo:
        key = canonicalize_name(todo.pop())
        if key in seen:
            continue
        dist = metadata.distribution(key)
        seen[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _top_level(dist: metadata.Distribution) -> set[str]:
    """The entries of site-packages that ``dist`` installed (packages, modules, its .dist-info)."""
    names = {Path(str(f)).parts[0] for f in dist.files or []}
    return {n for n in names if n not in ("..", "__pycache__")}


def link_torch(env: Path) -> None:
    """Link this interpreter's torch (with its dependency closure) into the environment ``env/venv``."""
    venv_python = env / "venv" / "bin" / "python"
    if not venv_python.is_file():
        sys.exit(f"no environment at {env / 'venv'}: create it first (python -m venv)")
    target = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    here = Path(metadata.distribution("torch").locate_file("")).resolve()
    shared = (env / SHARED).resolve()
    shared.mkdir(parents=True, exist_ok=True)
    linked = []
    for dist in _closure("torch"):
        site = Path(dist.locate_file("")).resolve()
        for name in sorted(_top_level(dist)):
            src, dst = site / name, shared / name
            if src.exists() and not dst.exists():
                os.symlink(src, dst)
        linked.append(f"{dist.metadata['Name']} {dist.version}")
    (Path(target) / PTH).write_text(f"{shared}\n")
    print(f"torch from {here}, shared with {env / 'venv'}: {', '.join(sorted(linked))}")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line)
            if not m:
                sys.exit(f"{path}: {line!r} is not of the form name==version")
            pins[canonicalize_name(m[1])] = m[2]
    return pins


def check(constraints: Path) -> None:
    """Exit 1, listing them, if installed versions differ from the pins (torch excepted)."""
    wrong = []
    for name, want in _pins(constraints).items():
        if name == "torch":
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "not installed"
        if have != want:
            wrong.append(f"{name}: {have}, Colab has {want}")
    torch = metadata.distribution("torch")
    print(f"torch {torch.version} from {Path(torch.locate_file('')).resolve()}")
    if wrong:
        sys.exit(f"installing dipnb changed what Colab preinstalls ({constraints}):\n  " + "\n  ".join(wrong))
    print(f"every version of {constraints} is installed as Colab has it (torch excepted)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("link-torch").add_argument("env", type=Path)
    sub.add_parser("check").add_argument("constraints", type=Path)
    args = parser.parse_args()
    if args.command == "link-torch":
        link_torch(args.env)
    else:
        check(args.constraints)


if __name__ == "__main__":
    main()

"""Rewrite the Colab install line of every notebook from ``_config.yml``'s ``repository.url``.

The repository URL lives in one place, ``repository.url`` in ``_config.yml``. The first code
cell of each notebook installs the package from it when the notebook runs on Colab::

    %pip install -q "dipnb @ git+https://github.com/OWNER/NAME"

After changing the URL in ``_config.yml``, run ``python tools/sync_colab_url.py`` to rewrite
that line in every notebook of ``notebooks/``; ``--check`` only reports notebooks that
disagree (exit status 1), which is what ``tests/test_notebooks.py`` relies on.

Every other address of the book follows from that URL too, through the helpers below:
:func:`site_url` (the GitHub Pages site, ``https://OWNER.github.io/REPO/``) and
:func:`colab_notebook_url` (a notebook of the ``colab`` branch, opened in Colab), used by
``tools/colab.py`` and by the site's Colab buttons (``tools/dipnb_book.py``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The install line's URL, wherever it appears in a cell (quoted requirement "dipnb @ git+URL").
INSTALL_URL = re.compile(r'(?P<head>"dipnb\s*@\s*git\+)(?P<url>[^"@\s]+)(?P<tail>(@[^"\s]+)?")')

COLAB = "https://colab.research.google.com"
# The branch the publish workflow pushes the Colab notebooks to (``launch_buttons.colab_branch``).
DEFAULT_COLAB_BRANCH = "colab"
GITHUB_REPO = re.compile(r"^https://github\.com/(?P<owner>[A-Za-z0-9-]+)/(?P<name>[A-Za-z0-9._-]+?)(\.git)?/?$")

__all__ = [
    "repository_url",
    "repo_slug",
    "site_url",
    "colab_branch",
    "colab_notebook_url",
    "install_urls",
    "sync_notebook",
    "main",
]


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """The book's repository URL, from ``repository.url`` in ``_config.yml``."""
    url = (yaml.safe_load(config.read_text()) or {}).get("repository", {}).get("url")
    if not url:
        raise SystemExit(f"{config} has no repository.url")
    return str(url).rstrip("/")


def repo_slug(url: str) -> tuple[str, str]:
    """``(owner, name)`` of a ``https://github.com/OWNER/NAME`` URL; ValueError for any other URL."""
    m = GITHUB_REPO.match(url.strip())
    if not m:
        raise ValueError(f"repository.url {url!r} is not of the form https://github.com/OWNER/NAME")
    return m.group("owner"), m.group("name")


def site_url(url: str) -> str:
    """The GitHub Pages address of the repository's site, ending in ``/``.

    A project site is served under a sub-path, ``https://OWNER.github.io/NAME/``; the repository
    named ``OWNER.github.io`` is the owner's site, served at the root. Host names are lower case.
    """
    owner, name = repo_slug(url)
    host = f"https://{owner.lower()}.github.io/"
    return host if name.lower() == f"{owner.lower()}.github.io" else f"{host}{name}/"


def colab_branch(config: Path = ROOT / "_config.yml") -> str:
    """The branch that holds the Colab notebooks: ``launch_buttons.colab_branch`` (default ``colab``)."""
    launch = (yaml.safe_load(config.read_text()) or {}).get("launch_buttons") or {}
    return str(launch.get("colab_branch") or DEFAULT_COLAB_BRANCH)


def colab_notebook_url(url: str, chapter: str, folder: str = "colab", branch: str = DEFAULT_COLAB_BRANCH) -> str:
    """The Colab address that opens ``<folder>/<chapter>.ipynb`` of ``branch`` of the repository.

    ``folder`` is ``colab`` (the notebooks ``make colab`` writes) or ``student`` (``make student``).
    """
    owner, name = repo_slug(url)
    return f"{COLAB}/github/{owner}/{name}/blob/{branch}/{folder}/{chapter}.ipynb"


def install_urls(nb) -> list[str]:
    """Every URL of a ``dipnb @ git+URL`` install line in the notebook's code cells."""
    return [
        m.group("url")
        for cell in nb.cells
        if cell.cell_type == "code"
        for m in INSTALL_URL.finditer(cell.source)
    ]


def sync_notebook(path: Path, url: str, write: bool = True) -> bool:
    """Point the notebook's install lines at ``url``. Returns True if anything differed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        new = INSTALL_URL.sub(lambda m: f"{m.group('head')}{url}{m.group('tail')}", cell.source)
        if new != cell.source:
            cell.source = new
            changed = True
    if changed and write:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="report notebooks that disagree; change nothing")
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    args = p.parse_args(argv)
    url = repository_url()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    differ = [path for path in paths if sync_notebook(path, url, write=not args.check)]
    for path in differ:
        print(f"{'differs' if args.check else 'rewritten'}: {path}")
    if args.check and differ:
        print(f"run `python tools/sync_colab_url.py` to point them at {url}", file=sys.stderr)
        return 1
    print(f"{len(paths)} notebooks, {len(differ)} {'differ' if args.check else 'rewritten'}; URL {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

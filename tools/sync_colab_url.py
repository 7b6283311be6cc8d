"""Rewrite the Colab install line of every notebook from ``_config.yml``'s ``repository.url``.

The repository URL lives in one place, ``repository.url`` in ``_config.yml``. The first code
cell of each notebook installs the package from it when the notebook runs on Colab::

    %pip install -q "dipnb @ git+https://github.com/OWNER/NAME"

After changing the URL in ``_config.yml``, run ``python tools/sync_colab_url.py`` to rewrite
that line in every notebook of ``notebooks/``; ``--check`` only reports notebooks that
disagree (exit status 1), which is what ``tests/test_notebooks.py`` relies on.
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

__all__ = ["repository_url", "install_urls", "sync_notebook", "main"]


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """The book's repository URL, from ``repository.url`` in ``_config.yml``."""
    url = (yaml.safe_load(config.read_text()) or {}).get("repository", {}).get("url")
    if not url:
        raise SystemExit(f"{config} has no repository.url")
    return str(url).rstrip("/")


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

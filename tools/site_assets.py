"""Copy the JavaScript the book serves itself (no CDN) from ``tools/node_modules`` into the site.

``npm ci --prefix tools`` installs the exact versions pinned in ``tools/package-lock.json``;
this script copies what the pages load into ``_build/site-assets/vendor/``, which
``_config.yml`` lists in ``html_static_path`` (Sphinx then copies it to ``_static/vendor/``):

- ``vendor/jupyter-widgets/``: ``@jupyter-widgets/html-manager``'s non-AMD ``embed.js`` (it
  renders the widget state saved in a page, no require.js needed) and the icon fonts it loads
  from its own folder;
- ``vendor/mathjax/``: MathJax 3's ``es5`` build (``tex-mml-chtml.js`` and the extensions, fonts
  and accessibility modules it loads on demand, relative to itself).

Usage: ``python tools/site_assets.py [--node-modules DIR] [--out DIR]``. Does nothing when the
copy is already up to date (a stamp records the installed versions).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the site needs from each package: (package, source folder, destination, files to skip).
MATHJAX_SKIP = {
    # combined components the book does not load (it uses tex-mml-chtml.js)
    "mml-chtml.js", "mml-svg.js", "tex-chtml.js", "tex-chtml-full.js", "tex-chtml-full-speech.js",
    "tex-mml-svg.js", "tex-svg.js", "tex-svg-full.js", "node-main.js", "latest.js",
}


def _version(node_modules: Path, package: str) -> str:
    meta = node_modules / package / "package.json"
    if not meta.is_file():
        raise SystemExit(
            f"site_assets: {meta} is missing; run `npm ci --prefix tools` first (make book does)"
        )
    return json.loads(meta.read_text())["version"]


def _copy_widgets(node_modules: Path, dest: Path) -> int:
    dist = node_modules / "@jupyter-widgets" / "html-manager" / "dist"
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(dist.iterdir()):
        # embed.js plus the font files its CSS references (hashed names, same folder)
        keep = f.name in ("embed.js", "embed.js.LICENSE.txt") or f.suffix in (
            ".woff", ".woff2", ".ttf", ".eot", ".svg"
        )
        if f.is_file() and keep:
            shutil.copy2(f, dest / f.name)
            n += 1
    return n


def _copy_mathjax(node_modules: Path, dest: Path) -> int:
    es5 = node_modules / "mathjax" / "es5"
    n = 0
    for f in sorted(es5.rglob("*")):
        rel = f.relative_to(es5)
        if not f.is_file() or (len(rel.parts) == 1 and rel.name in MATHJAX_SKIP):
            continue
        if rel.parts[0] == "output" and (rel.parts[1] == "svg" or rel.name == "svg.js"):
            continue  # the book renders math as CHTML
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        n += 1
    licence = node_modules / "mathjax" / "LICENSE"
    if licence.is_file():
        shutil.copy2(licence, dest / "LICENSE")
    return n


def build(node_modules: Path, out: Path, force: bool = False) -> str:
    """Copy the assets into ``out/vendor``; returns a one-line description of what was done."""
    versions = {
        "@jupyter-widgets/html-manager": _version(node_modules, "@jupyter-widgets/html-manager"),
        "mathjax": _version(node_modules, "mathjax"),
    }
    stamp = out / "vendor" / "versions.json"
    if not force and stamp.is_file() and json.loads(stamp.read_text()) == versions:
        return f"site assets up to date in {out} ({versions})"
    if (out / "vendor").exists():
        shutil.rmtree(out / "vendor")
    nw = _copy_widgets(node_modules, out / "vendor" / "jupyter-widgets")
    nm = _copy_mathjax(node_modules, out / "vendor" / "mathjax")
    stamp.write_text(json.dumps(versions, indent=1) + "\n")
    return f"site assets copied to {out}/vendor: {nw} widget-manager files, {nm} MathJax files ({versions})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node-modules", type=Path, default=ROOT / "tools" / "node_modules")
    p.add_argument("--out", type=Path, default=ROOT / "_build" / "site-assets")
    p.add_argument("--force", action="store_true", help="copy even if the stamp says up to date")
    args = p.parse_args(argv)
    print(build(args.node_modules, args.out, args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())

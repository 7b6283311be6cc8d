"""Student notebooks: ``make student`` writes ``_build/student/<chapter>.ipynb`` from the Colab ones.

Each notebook is the chapter's Colab notebook (``make colab``, ``tools/colab.py``) with every
exercise kept and every solution taken out. The Colab converter marks each cell of a solution
with ``metadata.dipnb.solution`` (the exercise's label); here each solution, its heading, code,
prose and figure captions, is replaced by

- a short code stub, ``# Your code here``, where the solution had code. If a later cell of the
  notebook reads a name that only the solution defined, the stub defines it as ``None`` and
  says so, so that the notebook still runs top to bottom;
- a Markdown prompt, "Your answer", where the solution had prose.

The notebook metadata is the Colab notebook's (GPU runtime, kernelspec), with the collapsed
sections of the removed solutions dropped. A banner under the title says that this is the
student version and links the full notebook. Published beside the Colab notebooks, in the
``student/`` folder of the ``colab`` branch. ``python tools/student.py --help``.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import re
import sys
from pathlib import Path

import nbformat

TOOLS = Path(__file__).resolve().parent
if str(TOOLS) not in sys.path:  # the URL helpers and the atomic writer live beside this file
    sys.path.insert(0, str(TOOLS))
import colab  # noqa: E402
import sync_colab_url as urls  # noqa: E402

ROOT = TOOLS.parent

__all__ = ["StudentError", "defined_and_used", "student_notebook", "main"]

STUB = "# Your code here"
PROMPT = "**Your answer to {exercise}.** *Write it here: double-click this cell to edit it.*"


class StudentError(Exception):
    """A Colab notebook the student converter cannot use (one line: the notebook and why)."""


def _python(source: str) -> str:
    """A code cell's source as plain Python (IPython's ``%magics`` turned into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def defined_and_used(source: str) -> tuple[set[str], set[str]]:
    """Names a code cell binds at any level, and names it reads (an over-approximation).

    Raises SyntaxError if the cell is not valid (IPython) Python.
    """
    tree = ast.parse(_python(source))
    defined: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, (ast.Store, ast.Del)) else used).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                defined.add((alias.asname or alias.name).split(".")[0])
    return defined, used


def _exercise_name(nb, label: str) -> str:
    for cell in nb.cells:
        meta = cell.metadata.get("dipnb") or {}
        if meta.get("role") == "exercise" and meta.get("exercise") == label:
            first = cell.source.split("\n", 1)[0].lstrip("#").strip()
            return first or "the exercise"
    return "the exercise"


def student_notebook(nb, name: str, full_url: str | None = None):
    """The student version of a Colab notebook ``nb`` (a new NotebookNode; ``nb`` is not changed)."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = copy.deepcopy(nb)
    cells = list(nb.cells)
    if not any((c.metadata.get("dipnb") or {}).get("role") == "setup" for c in cells):
        raise StudentError(f"{name}: not a Colab notebook of tools/colab.py (no setup cell); run `make colab`")
    # Group the solution cells: consecutive cells that name the same exercise.
    regions: list[tuple[int, int, str]] = []
    i = 0
    while i < len(cells):
        label = (cells[i].metadata.get("dipnb") or {}).get("solution")
        if not label:
            i += 1
            continue
        j = i
        while j < len(cells) and (cells[j].metadata.get("dipnb") or {}).get("solution") == label:
            j += 1
        regions.append((i, j, label))
        i = j
    # Names a solution defines that a later, kept cell reads without defining first.
    removed_defs: dict[int, set[str]] = {}
    for k, (a, b, _) in enumerate(regions):
        names: set[str] = set()
        for cell in cells[a:b]:
            if cell.cell_type == "code":
                try:
                    names |= defined_and_used(cell.source)[0]
                except SyntaxError as exc:
                    raise StudentError(f"{name}: a solution cell is not valid Python ({exc})") from exc
        removed_defs[k] = names
    in_region = {n: k for k, (a, b, _) in enumerate(regions) for n in range(a, b)}
    needed: dict[int, list[str]] = {k: [] for k in removed_defs}
    known = set(dir(builtins)) | {"get_ipython", "display", "In", "Out"}
    bound: set[str] = set()
    for n, cell in enumerate(cells):
        if n in in_region or cell.cell_type != "code":
            continue
        try:
            defs, uses = defined_and_used(cell.source)
        except SyntaxError as exc:
            raise StudentError(f"{name}: cell {n} is not valid Python ({exc})") from exc
        for used in sorted(uses - bound - known):
            for k in range(len(regions) - 1, -1, -1):  # the last solution before this cell that binds it
                if regions[k][0] < n and used in removed_defs[k]:
                    if used not in needed[k]:
                        needed[k].append(used)
                    break
        bound |= defs

    out: list = []
    dropped: set[str] = set()
    k = 0
    n = 0
    while n < len(cells):
        if n not in in_region:
            out.append(cells[n])
            n += 1
            continue
        a, b, label = regions[k]
        exercise = _exercise_name(nb, label)
        region = cells[a:b]
        dropped |= {c.get("id") for c in region}
        kinds = [c.cell_type for c in region if (c.metadata.get("dipnb") or {}).get("role") not in (
            "solution-heading", "caption")]
        emitted: set[str] = set()
        for kind in kinds:
            if kind in emitted:
                continue
            emitted.add(kind)
            if kind == "code":
                lines = [f"{STUB} ({exercise})"]
                lines += [f"{v} = None  # your code defines {v}: a later cell uses it" for v in needed[k]]
                cell = new_code_cell("\n".join(lines))
            else:
                cell = new_markdown_cell(PROMPT.format(exercise=exercise))
            cell.metadata["dipnb"] = {"role": "stub", "exercise": label}
            out.append(cell)
        n = b
        k += 1
    chapter = Path(name).stem
    for m, cell in enumerate(out):  # ids in step with the new order (stubs are new cells)
        cell["id"] = f"{chapter}-s{m}"[:64]
        cell.metadata["id"] = cell["id"]
    first = next((c for c in out if c.cell_type == "markdown"), None)
    if first is not None:
        note = "*Student version: the exercises without their solutions."
        note += f" [The notebook with the solutions]({full_url}).*" if full_url else "*"
        lines = first.source.split("\n")
        at = next((j + 1 for j, line in enumerate(lines) if re.match(r"^#\s", line)), 0)
        lines[at:at] = ["", note] if at else [note, ""]
        first.source = "\n".join(lines)
    result = new_notebook(cells=out)
    meta = nbformat.from_dict(nb.metadata)
    colab_meta = dict(meta.get("colab") or {})
    colab_meta["collapsed_sections"] = [s for s in colab_meta.get("collapsed_sections", []) if s not in dropped]
    meta["colab"] = colab_meta
    result.metadata = meta
    nbformat.validate(result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="Colab notebooks (default: every _build/colab/*.ipynb)")
    p.add_argument("--src", type=Path, default=ROOT / "_build" / "colab", help="the Colab notebooks' folder")
    p.add_argument("--out", type=Path, default=ROOT / "_build" / "student", help="output folder")
    args = p.parse_args(argv)
    paths = args.notebooks or sorted(args.src.glob("*.ipynb"))
    if not paths:
        print(f"student: no Colab notebooks in {args.src}; run `make colab` first", file=sys.stderr)
        return 2
    repo = urls.repository_url()
    branch = urls.colab_branch()
    failed = 0
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
            full = urls.colab_notebook_url(repo, path.stem, "colab", branch)
            student = student_notebook(nb, path.name, full)
        except StudentError as exc:
            print(f"student: {exc} (nothing written for {path.name})", file=sys.stderr)
            failed += 1
            continue
        colab.write_notebook(student, args.out / path.name)
    print(f"{len(paths) - failed} student notebooks in {args.out}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

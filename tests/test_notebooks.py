"""The chapters as files: stored without outputs, the setup cell with the Colab install line
pointing at ``_config.yml``'s repository, figure names and exercise labels that resolve.

Executing them is nbval's job (``pytest --nbval-lax notebooks/``); these checks take a second.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SETUP_HEAD = [
    "# Setup: on Colab this installs the book's package (elsewhere it does nothing).",
    "import sys",
    'if "google.colab" in sys.modules:',
    '    %pip install -q "dipnb @ git+{url}"',
]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = _load_tool("sync_colab_url")
REPO_URL = sync.repository_url(ROOT / "_config.yml")
ids = [p.stem for p in NOTEBOOKS]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_valid_and_stored_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    dirty = [i for i, c in code if c.outputs or c.execution_count is not None]
    assert not dirty, f"{path.name}: code cells {dirty} have stored outputs or execution counts; clear them"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in the metadata; clear it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_setup_cell_installs_from_the_configured_repository(path):
    cells = _code_cells(_read(path))
    assert cells, f"{path.name} has no code cell"
    setup = cells[0].source.splitlines()
    expected = [line.format(url=REPO_URL) for line in SETUP_HEAD]
    assert setup[: len(expected)] == expected, (
        f"{path.name}: the first code cell must start with the setup lines\n"
        + "\n".join(expected)
        + "\n(run `python tools/sync_colab_url.py` if only the URL differs)"
    )
    assert "plots.use_book_style()" in cells[0].source, f"{path.name}: the setup cell must call plots.use_book_style()"
    assert "resolve_profile()" in cells[0].source, f"{path.name}: the setup cell must resolve the profile"
    nb = _read(path)
    assert sync.install_urls(nb) == [REPO_URL], (
        f"{path.name}: install URLs {sync.install_urls(nb)} differ from repository.url {REPO_URL}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_exercises_have_solutions(path):
    text = "\n".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    exercises = re.findall(r"```\{exercise\}[^\n]*\n:label:\s*(\S+)", text)
    solutions = re.findall(r"```\{solution-start\}\s*(\S+)", text)
    missing = sorted(set(exercises) - set(solutions))
    assert not missing, f"{path.name}: exercises without a solution: {missing}"
    ends = len(re.findall(r"```\{solution-end\}", text))
    assert ends == len(solutions), f"{path.name}: {len(solutions)} solution-start but {ends} solution-end"


def test_figure_names_are_unique_and_prefixed():
    seen: dict[str, str] = {}
    for path in NOTEBOOKS:
        for cell in _code_cells(_read(path)):
            fig = cell.metadata.get("mystnb", {}).get("figure")
            if not fig:
                continue
            name = fig.get("name", "")
            assert fig.get("caption"), f"{path.name}: figure {name!r} has no caption"
            assert name.startswith("fig-"), f"{path.name}: figure name {name!r} must start with 'fig-'"
            assert name not in seen, f"figure name {name!r} is used in {seen.get(name)} and {path.name}"
            seen[name] = path.name


def test_every_notebook_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*(notebooks/[\w.-]+)", toc))
    missing = [p.stem for p in NOTEBOOKS if f"notebooks/{p.stem}" not in listed]
    assert not missing, f"notebooks not listed in _toc.yml (they would not be in the book): {missing}"


def test_the_repository_url_is_in_one_place():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == REPO_URL
    assert config["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    hard_coded = [
        p.relative_to(ROOT).as_posix()
        for p in [ROOT / "_toc.yml", *(ROOT / "book").glob("*.md")]
        if REPO_URL in p.read_text()
    ]
    assert not hard_coded, f"the repository URL is written out in {hard_coded}; keep it in _config.yml"


def test_sync_tool_rewrites_the_install_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("\n".join(SETUP_HEAD).format(url="https://github.com/someone/old-name")),
        nbformat.v4.new_code_cell('%pip install "dipnb @ git+https://example.org/x.git@v1"'),
    ]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    assert sync.sync_notebook(path, "https://github.com/new/place", write=False)
    assert sync.install_urls(_read(path)) == ["https://github.com/someone/old-name", "https://example.org/x.git"]
    assert sync.sync_notebook(path, "https://github.com/new/place")
    rewritten = _read(path)
    assert sync.install_urls(rewritten) == ["https://github.com/new/place"] * 2
    assert "git+https://github.com/new/place@v1" in rewritten.cells[1].source  # a pinned ref is kept
    assert not sync.sync_notebook(path, "https://github.com/new/place")
    assert sync.main(["--check", str(path)]) == 1

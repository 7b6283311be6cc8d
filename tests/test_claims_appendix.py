"""benchmarks/claims_appendix.py: the robustness appendix says exactly what the claims files say."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _appendix():
    spec = importlib.util.spec_from_file_location("claims_appendix", REPO / "benchmarks" / "claims_appendix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _outcome(claim, seed, passed, value, bound=1.0, op=">=", sentence="S"):
    return {"claim": claim, "sentence": sentence, "seed": seed, "passed": passed, "seconds": 6.0,
            "checks": [{"what": "ratio", "value": value, "op": op, "bound": bound, "passed": passed,
                        "margin": value - bound, "note": ""}]}


def _doc(outcomes, seeds=10):
    return {"profile": "quick", "seeds": seeds, "smoke": False, "created": "2026-12-01T10:00:00",
            "table": [], "outcomes": outcomes}


def test_the_page_counts_each_claim_and_marks_the_weak_ones(tmp_path):
    ca = _appendix()
    strong = [_outcome("gp-prior/smooth", s, True, 2.0 + s, sentence="Samples are smooth.") for s in range(10)]
    weak = [_outcome("gp-prior/decay", s, s < 7, 1.5 if s < 7 else 0.5, sentence="Power | decays.")
            for s in range(10)]
    f = tmp_path / "claims-gp-prior.json"
    f.write_text(json.dumps(_doc(strong + weak)))
    out = tmp_path / "robustness.md"
    assert ca.main([str(f), "--out", str(out), "--machine", "a test machine"]) == 0
    text = out.read_text()
    assert "| Samples are smooth. | 10/10 | ratio: 2 >= 1 |" in text, "the least margin over the seeds"
    assert "| Power \\| decays. | **7/10** | ratio: 0.5 >= 1 |" in text
    assert "- gp-prior: Power | decays. (7/10)" in text
    flat = " ".join(text.split())
    assert "seeds 0 to 9" in flat and "a test machine" in flat and "2026-12-01" in flat
    assert "{doc}`/notebooks/stopping`\n\nNot measured in this run" in text
    assert "2.0 minutes of compute" in text  # 20 outcomes of 6 s


@pytest.mark.parametrize("content, words", [
    ("not json", "is not a JSON file"),
    (json.dumps(_doc([_outcome("gp-prior/a", 0, True, 2.0), _outcome("stopping/b", 0, True, 2.0)])), "one chapter"),
    (json.dumps(_doc([_outcome("nochapter/a", 0, True, 2.0)])), "one chapter"),
])
def test_bad_files_are_refused_with_one_line(tmp_path, capsys, content, words):
    f = tmp_path / "c.json"
    f.write_text(content)
    out = tmp_path / "robustness.md"
    assert _appendix().main([str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not out.exists()


def test_a_claim_the_file_lacks_is_listed_as_not_measured():
    ca = _appendix()
    doc = _doc([_outcome("trajectories/a", s, True, 2.0, sentence="A holds.") for s in range(10)])
    registered = {"trajectories": [("trajectories/a", "A holds."), ("trajectories/b", "B holds.")]}
    text = ca.render({"trajectories": doc}, ["trajectories"], "m", registered)
    assert "| A holds. | 10/10 |" in text
    assert "Not measured in this run (the file holds no outcome for it):\n\n- B holds.\n" in text
    assert "- A holds." not in text

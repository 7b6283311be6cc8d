"""The result cache: keys that mean what they say, a format that is data, export and import."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import math
import pickle
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import dipnb
from dipnb import experiments as E
from dipnb.cli import _parse_sets, main
from dipnb.experiments import cache as C
from dipnb.experiments.cache import ResultStore, config_key

TINY_DECOUPLING = dict(length=64, k1=2, k2=10, depth=4, width=8, iterations=25)


def _key(name: str, cfg) -> str:
    return config_key(name, cfg, E.engine._version(name))


def _files(root: Path) -> list[str]:
    """Every file under ``root``, relative, sorted (``[]`` when it does not exist)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def test_int_float_and_command_line_values_give_one_key():
    as_int, _, _ = E.make_config("denoising", "quick", sigma=25)
    as_float, _, _ = E.make_config("denoising", "quick", sigma=25.0)
    from_cli, _, _ = E.make_config("denoising", "quick", **_parse_sets("denoising", ["sigma=25"]))
    assert type(as_int.sigma) is float, "the value is converted to the field's declared type"
    assert _key("denoising", as_int) == _key("denoising", as_float) == _key("denoising", from_cli)
    assert _key("denoising", as_int) != _key("denoising", E.make_config("denoising", "quick", sigma=26)[0])


def test_numpy_scalars_and_lists_are_converted_to_the_declared_types():
    a, _, _ = E.make_config("trajectories-area", "quick", areas=[0.2, 0.5, 1], seed=np.int64(3))
    b, _, _ = E.make_config("trajectories-area", "quick", areas=(0.2, 0.5, 1.0), seed=3)
    assert a.areas == (0.2, 0.5, 1.0) and all(type(x) is float for x in a.areas)
    assert type(a.seed) is int
    assert _key("trajectories-area", a) == _key("trajectories-area", b)


def test_bool_is_not_taken_for_a_number():
    with pytest.raises(dipnb.errors.ConfigError, match="sigma=True"):
        E.make_config("denoising", "quick", sigma=True)


def test_api_and_command_line_share_one_cache_entry(tiny_denoising, tmp_path, capsys, one_thread):
    dipnb.run("denoising", verbose=False, **{**tiny_denoising, "sigma": 25})
    out = tmp_path / "out.json"
    sets = [x for k, v in {**tiny_denoising, "sigma": "25"}.items() for x in ("--set", f"{k}={v}")]
    assert main(["run", "denoising", "--quiet", "--json", str(out), *sets]) == 0
    assert json.loads(out.read_text())["cached"] is True, "the command line loads what the API stored"


def _png(path: Path, seed: int) -> None:
    from PIL import Image

    rgb = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def test_an_edited_image_file_is_recomputed(tiny_denoising, tmp_path, one_thread):
    photo = tmp_path / "my_photo.png"
    _png(photo, 0)
    kw = {**tiny_denoising, "image": str(photo), "iterations": 3, "record_every": 1}
    first = dipnb.run("denoising", verbose=False, **kw)
    assert dipnb.run("denoising", verbose=False, **kw).cached, "the same file is loaded from the cache"
    _png(photo, 1)  # the user edits the photo, same path
    second = dipnb.run("denoising", verbose=False, **kw)
    assert not second.cached, "an edited file is recomputed, not served stale"
    assert not np.array_equal(first["clean"], second["clean"])
    photo.write_bytes(photo.read_bytes())  # rewritten with the same bytes: same content, same key
    assert dipnb.run("denoising", verbose=False, **kw).cached


def test_the_key_of_a_file_input_names_its_content(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    _png(a, 0)
    _png(b, 0)
    ka = _key("denoising", E.make_config("denoising", "quick", image=str(a))[0])
    kb = _key("denoising", E.make_config("denoising", "quick", image=str(b))[0])
    assert ka != kb, "the path is part of the key too"
    _png(a, 2)
    assert _key("denoising", E.make_config("denoising", "quick", image=str(a))[0]) != ka


def test_clear_removes_results_checkpoints_and_old_pickles(tmp_path):
    store = ResultStore(tmp_path / "s")
    store.save("x", "k1", {"data": {"a": 1}})
    store.save("y", "k2", {"data": {}})
    ckpt = store.checkpoint_path("x", "k3")
    ckpt.write_bytes(b"resumable state")
    (store.root / "y" / "k4.pkl").write_bytes(b"old format")
    assert store.clear("x") == 2
    assert _files(store.root) == ["y/k2.npz", "y/k4.pkl"]
    assert store.clear() == 2
    assert _files(store.root) == []


# --------------------------------------------------------------------------------------------
# Format: data, not code
# --------------------------------------------------------------------------------------------


def _every_kind_of_value() -> dict:
    rng = np.random.default_rng(0)
    return {
        "config": {"image": "house", "areas": (0.2, 1.0), "sigma": 25.0, "flag": None},
        "data": {
            "curve": rng.standard_normal(7),
            "runs": [rng.standard_normal((2, 3)).astype(np.float32), np.arange(4)],
            "nested": {"a": {"b": np.zeros((0, 3)), "c": np.float16([1.5, np.inf])}},
            "by_int": {2: np.ones(2, bool), 10: np.int64(7)},
            "by_tuple": {(1, "x"): 1.0},
            "scalars": [np.float32(0.1), np.float64(2.5), np.int32(-3), np.bool_(True), np.float64(np.nan)],
            "floats": [math.inf, -math.inf, math.nan, 0.1, -0.0, 1e-300],
            "ints": [0, -1, 2**70],
            "text": "héllo \"quoted\"\n",
            "none": None,
            "flags": (True, False),
            "transposed": np.arange(12.0).reshape(3, 4).T,
            "zero_d": np.array(3.0),
            "complex": np.array([1 + 2j], np.complex64),
            "empty": {},
            "tagged_key": {"__tuple__": [1, 2]},
        },
        "meta": {"seconds": 1.25, "torch": torch.__version__},
    }


def _same(a, b, path="") -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
        return
    if isinstance(a, np.generic):
        assert type(b) is type(a), (path, type(a), type(b))
        assert (np.isnan(a) and np.isnan(b)) if a.dtype.kind == "f" and np.isnan(a) else a == b, path
        return
    if isinstance(a, str):  # torch's version string is a str subclass
        assert type(b) is str and a == b, path
        return
    assert type(b) is type(a), (path, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}/{k!r}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path
        if isinstance(a, float):
            assert math.copysign(1, a) == math.copysign(1, b), path


def test_every_kind_of_value_round_trips(tmp_path):
    store = ResultStore(tmp_path)
    entry = _every_kind_of_value()
    store.save("x", "k", entry)
    _same(entry, store.load("x", "k"))


def test_tensors_come_back_as_numpy_arrays(tmp_path):
    store = ResultStore(tmp_path)
    store.save("x", "k", {"data": {"t": torch.arange(3.0), "bf16": torch.ones(2, dtype=torch.bfloat16)}})
    data = store.load("x", "k")["data"]
    np.testing.assert_array_equal(data["t"], np.arange(3.0, dtype=np.float32))
    assert data["bf16"].dtype == np.float32 and (data["bf16"] == 1).all()


def test_values_that_are_not_data_are_refused_by_name(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(TypeError, match=r"\['data'\]\['f'\]"):
        store.save("x", "k", {"data": {"f": object()}})
    with pytest.raises(TypeError, match="object"):
        store.save("x", "k", {"data": {"o": np.array([None, 1], dtype=object)}})
    assert store.load("x", "k") is None and _files(tmp_path) == []


def test_a_stored_result_is_json_and_npy_files_in_a_zip(tiny_denoising, one_thread):
    res = dipnb.run("denoising", verbose=False, **tiny_denoising)
    path = ResultStore().path("denoising", _key("denoising", res.config))
    assert path.suffix == ".npz"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        doc = json.loads(z.read("entry.json"))
        arrays = {n: np.lib.format.read_array(io.BytesIO(z.read(n)), allow_pickle=False)
                  for n in names if n != "entry.json"}
    assert all(n.endswith(".npy") for n in arrays) and len(arrays) >= 5
    assert "data" in doc["entry"] and "config" in doc["entry"]
    with np.load(path, allow_pickle=False) as f:  # numpy reads it as an .npz too
        assert len(f.files) == len(names)


class _Trap:
    """Unpickling this creates ``marker``: a stand-in for code a hostile pickle would run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_an_old_pickle_is_not_unpickled_but_recomputed_once(tiny_denoising, tmp_path, one_thread):
    cfg, _, _ = E.make_config("denoising", "quick", **tiny_denoising)
    old = ResultStore().path("denoising", _key("denoising", cfg)).with_suffix(".pkl")
    old.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    old.write_bytes(pickle.dumps({"config": {}, "data": {"x": _Trap(marker)}, "meta": {}}))
    with pytest.warns(UserWarning, match="old pickle format") as caught:
        res = dipnb.run("denoising", verbose=False, **tiny_denoising)
    assert not res.cached and not marker.exists(), "nothing in the old file was executed"
    assert len([w for w in caught if "pickle" in str(w.message)]) == 1
    assert not old.exists(), "the old file is deleted, so the message comes once"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dipnb.run("denoising", verbose=False, **tiny_denoising).cached


def test_a_results_file_holding_a_pickle_is_refused_without_running_it(tmp_path):
    store = ResultStore(tmp_path / "s")
    store.save("x", "k", {"data": {"a": np.arange(3)}})
    path = store.path("x", "k")
    marker = tmp_path / "code-ran"
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    hostile = io.BytesIO()
    np.save(hostile, np.array([_Trap(marker)], dtype=object), allow_pickle=True)
    array_name = next(n for n in members if n.endswith(".npy"))
    members[array_name] = hostile.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.warns(UserWarning, match="unreadable cache file"):
        assert store.load("x", "k") is None
    assert not marker.exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"not a zip at all",
        lambda b: _rezip(b, {"entry.json": b"{not json"}),
        lambda b: _rezip(b, {"entry.json": json.dumps({"format": "dipnb-result", "version": 1,
                                                        "entry": [1, 2]}).encode()}),
        lambda b: _rezip(b, drop=".npy"),  # an array it refers to is missing
        lambda b: _rezip(b, {"extra.txt": b"hello"}),  # a member that is not part of the result
    ],
    ids=["truncated", "garbage", "bad-json", "not-an-entry", "missing-array", "extra-member"],
)
def test_a_malformed_file_warns_in_one_line_and_reads_as_missing(tmp_path, damage):
    store = ResultStore(tmp_path)
    store.save("x", "k", {"data": {"a": np.arange(3), "b": [1.5]}})
    path = store.path("x", "k")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(UserWarning) as caught:
        assert store.load("x", "k") is None
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert str(path) in str(caught[0].message) and "recomputing" in str(caught[0].message)


def _rezip(blob: bytes, replace: dict | None = None, drop: str | None = None) -> bytes:
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        members = {n: z.read(n) for n in z.namelist() if not (drop and n.endswith(drop))}
    members.update(replace or {})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return out.getvalue()


def test_an_interrupted_write_leaves_the_old_entry_intact(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.save("x", "k", {"data": {"v": np.arange(5)}})
    before = store.path("x", "k").read_bytes()
    real = C._write_entry

    def half_then_fail(fileobj, entry):
        buf = io.BytesIO()
        real(buf, entry)
        fileobj.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(C, "_write_entry", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.save("x", "k", {"data": {"v": np.arange(1000)}})
    assert store.path("x", "k").read_bytes() == before, "no partial file under the final name"
    np.testing.assert_array_equal(store.load("x", "k")["data"]["v"], np.arange(5))
    assert _files(tmp_path) == ["x/k.npz"], "the temporary file is removed"


# --------------------------------------------------------------------------------------------
# Export and import
# --------------------------------------------------------------------------------------------


@pytest.fixture
def two_results(tiny_denoising, one_thread):
    """A cache holding one tiny denoising run and one tiny decoupling-1d run."""
    den = dipnb.run("denoising", verbose=False, **tiny_denoising)
    dec = dipnb.run("decoupling-1d", profile="quick", model="conv", verbose=False, **TINY_DECOUPLING)
    return den, dec


def test_export_then_import_moves_results_between_caches(two_results, tiny_denoising, tmp_path, monkeypatch,
                                                         capsys):
    den, dec = two_results
    archive = tmp_path / "demo.zip"
    assert main(["cache", "export", str(archive)]) == 0
    assert "2 results" in capsys.readouterr().out
    with zipfile.ZipFile(archive) as z:
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["engine"] == E.ENGINE_VERSION and len(manifest["entries"]) == 2
    assert {e["experiment"] for e in manifest["entries"]} == {"denoising", "decoupling-1d"}
    assert all("config" in e and "key" in e for e in manifest["entries"])

    monkeypatch.setenv("DIPNB_CACHE", str(tmp_path / "student"))
    assert main(["cache", "import", str(archive)]) == 0
    assert "2 results imported" in capsys.readouterr().out
    again = dipnb.run("denoising", verbose=False, **tiny_denoising)
    assert again.cached
    _same(den.data, again.data)
    assert dipnb.run("decoupling-1d", profile="quick", model="conv", verbose=False, **TINY_DECOUPLING).cached
    assert main(["cache", "import", str(archive)]) == 0, "importing twice is harmless"
    assert "2 already present" in capsys.readouterr().out


def test_export_of_one_experiment(two_results, tmp_path, capsys):
    archive = tmp_path / "one.zip"
    assert main(["cache", "export", str(archive), "--experiment", "decoupling-1d"]) == 0
    with zipfile.ZipFile(archive) as z:
        assert [e["experiment"] for e in json.loads(z.read("manifest.json"))["entries"]] == ["decoupling-1d"]
    assert main(["cache", "export", str(tmp_path / "x.zip"), "--experiment", "denoisng"]) == 2
    assert "denoisng" in capsys.readouterr().err


def test_export_of_the_used_results_holds_exactly_what_the_runs_returned(tiny_denoising, tmp_path, monkeypatch,
                                                                         capsys, one_thread):
    """DIPNB_USED lists every result a run returns, computed or loaded; --used exports those only."""
    other = dipnb.run("decoupling-1d", profile="quick", model="linear", verbose=False, **TINY_DECOUPLING)
    used = tmp_path / "used.txt"
    monkeypatch.setenv("DIPNB_USED", str(used))
    den = dipnb.run("denoising", verbose=False, **tiny_denoising)  # computed
    dec = dipnb.run("decoupling-1d", profile="quick", model="conv", verbose=False, **TINY_DECOUPLING)
    assert dipnb.run("denoising", verbose=False, **tiny_denoising).cached  # loaded: listed again
    monkeypatch.delenv("DIPNB_USED")
    keys = {(r.name, _key(r.name, r.config)) for r in (den, dec)}
    assert C.read_used(used) == keys and len(used.read_text().splitlines()) == 3
    archive = tmp_path / "used.zip"
    assert main(["cache", "export", str(archive), "--used", str(used)]) == 0
    with zipfile.ZipFile(archive) as z:
        listed = {(e["experiment"], e["key"]) for e in json.loads(z.read("manifest.json"))["entries"]}
    assert listed == keys, "the linear run was in the cache but no listed run used it"
    assert (other.name, _key(other.name, other.config)) not in listed


def test_export_of_a_used_result_that_is_gone_writes_nothing(two_results, tmp_path, capsys):
    den, _ = two_results
    used = tmp_path / "used.txt"
    used.write_text(f"denoising {_key('denoising', den.config)}\ndenoising {'0' * 20}\n")
    assert main(["cache", "export", str(tmp_path / "x.zip"), "--used", str(used)]) == 2
    err = capsys.readouterr().err
    assert "1 listed result(s) are not exportable" in err and "denoising/" + "0" * 20 in err
    assert not (tmp_path / "x.zip").exists()
    used.write_text("denoising not-a-key\n")
    assert main(["cache", "export", str(tmp_path / "x.zip"), "--used", str(used)]) == 2
    assert "line 1: expected '<experiment> <key>'" in capsys.readouterr().err
    assert main(["cache", "export", str(tmp_path / "x.zip"), "--used", str(tmp_path / "none.txt")]) == 2
    assert "no list of used results" in capsys.readouterr().err


def test_export_of_an_empty_cache_says_so(tmp_path, capsys):
    assert main(["cache", "export", str(tmp_path / "x.zip")]) == 2
    assert "no results" in capsys.readouterr().err and not (tmp_path / "x.zip").exists()


def _edit_archive(src: Path, dst: Path, edit) -> None:
    """Copy the archive ``src`` to ``dst``, passing its members ``{name: bytes}`` through ``edit``."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members = edit(members)
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)


def _manifest(members: dict) -> dict:
    return json.loads(members["manifest.json"])


def _entry_doc(blob: bytes) -> tuple[dict, dict]:
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        return json.loads(z.read("entry.json")), {n: z.read(n) for n in z.namelist()}


def _tamper_config(members: dict) -> dict:
    """Change sigma in a denoising entry's stored config (and in the manifest), keeping its key."""
    man = _manifest(members)
    e = next(e for e in man["entries"] if e["experiment"] == "denoising")
    doc, inner = _entry_doc(members[e["path"]])
    doc["entry"]["config"]["sigma"] = 50.0
    inner["entry.json"] = json.dumps(doc).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, b in inner.items():
            z.writestr(n, b)
    members[e["path"]] = out.getvalue()
    e["config"]["sigma"] = 50.0
    e["sha256"] = hashlib.sha256(out.getvalue()).hexdigest()
    members["manifest.json"] = json.dumps(man).encode()
    return members


def _rename_entry(members: dict, new_name: str) -> dict:
    man = _manifest(members)
    e = man["entries"][0]
    members[new_name] = members.pop(e["path"])
    e["path"] = new_name
    members["manifest.json"] = json.dumps(man).encode()
    return members


def _other_engine(members: dict) -> dict:
    man = _manifest(members)
    man["engine"] = "0.0.1+r0"
    members["manifest.json"] = json.dumps(man).encode()
    return members


BAD_ARCHIVES = {
    "not-an-archive": (lambda p, d: d.write_text("just text\n"), "not a results archive"),
    "truncated": (lambda p, d: d.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3]), "truncated"),
    "no-manifest": (lambda p, d: _edit_archive(p, d, lambda m: {k: v for k, v in m.items()
                                                                  if k != "manifest.json"}), "manifest"),
    "mismatched-key": (lambda p, d: _edit_archive(p, d, _tamper_config), "does not match"),
    "escaping-path": (lambda p, d: _edit_archive(p, d, lambda m: _rename_entry(m, "../evil.npz")), "../evil.npz"),
    "absolute-path": (lambda p, d: _edit_archive(p, d, lambda m: _rename_entry(m, "/tmp/evil.npz")),
                      "/tmp/evil.npz"),
    "other-file": (lambda p, d: _edit_archive(p, d, lambda m: {**m, "denoising/run.py": b"import os"}),
                   "denoising/run.py"),
    "other-engine": (lambda p, d: _edit_archive(p, d, _other_engine), "engine"),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_whole_in_one_line(case, two_results, tmp_path, monkeypatch, capsys):
    good = tmp_path / "good.zip"
    assert main(["cache", "export", str(good)]) == 0
    make, words = BAD_ARCHIVES[case]
    bad = tmp_path / "bad.zip"
    make(good, bad)
    student = tmp_path / "student"
    monkeypatch.setenv("DIPNB_CACHE", str(student))
    capsys.readouterr()
    assert main(["cache", "import", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dipnb: error:") and words in err, err
    assert _files(student) == [], "nothing is imported from a refused archive"
    assert not (tmp_path / "evil.npz").exists()


def test_import_from_a_url(two_results, tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    site.mkdir()
    assert main(["cache", "export", str(site / "demo-cache.zip")]) == 0

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(site), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("DIPNB_CACHE", str(tmp_path / "student"))
        capsys.readouterr()
        assert main(["cache", "import", f"{url}/missing.zip"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "404" in err
        assert main(["cache", "import", f"{url}/demo-cache.zip"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert dipnb.run("decoupling-1d", profile="quick", model="conv", verbose=False, **TINY_DECOUPLING).cached

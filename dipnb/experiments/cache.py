"""The on-disk result cache: one file per (experiment, config, engine version).

**Format.** A result is ``root/<experiment>/<key>.npz``: a zip holding ``entry.json`` (the
entry's config, data and metadata as JSON) and one ``.npy`` file per array. Loading it runs
JSON's parser and :func:`numpy.lib.format.read_array` with ``allow_pickle=False``, so a results
file made elsewhere (a lecturer's warmed cache, a colleague's sweep) is data, never code. Values
the JSON cannot hold as they are carry a tag: ``{"__array__": "a3.npy"}``, ``{"__numpy__": ...}``
(a numpy scalar, kept with its dtype), ``{"__tuple__": [...]}``, ``{"__float__": "nan"}``
(``inf``, ``-inf``) and ``{"__items__": [[key, value], ...]}`` (a dict whose keys are not all
strings). Torch tensors are stored as numpy arrays (bfloat16 as float32).

**Keys.** :func:`config_key` hashes the experiment's name, every config field that affects the
result, the engine version and, for each string value that names an existing file (an image
given by path), the sha256 of that file's content: an edited file gets a new key and is
recomputed. The engine converts each value to its field's declared type before (``25`` and
``25.0`` are one key). Each stored entry keeps what its key hashes (``entry["key"]``), so an
import can check that a key matches its config.

**Safety.** Writes go to a temporary file renamed into place, so an interrupted write never
leaves a partial file under the final name. A file that cannot be read as a result is reported
in one warning line and recomputed. Results of the old pickle format (``<key>.pkl``) are never
unpickled: they are deleted, with a message, and recomputed.

**Moving results.** :func:`export_results` writes a zip of result files and a manifest;
:func:`import_results` checks the whole archive (only result files at safe paths, each key
recomputed from its stored config, the same engine version) before it writes anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = [
    "ResultStore",
    "config_key",
    "key_payload",
    "default_root",
    "export_results",
    "import_results",
    "FORMAT",
    "ARCHIVE_FORMAT",
]

FORMAT = "dipnb-result"  # the ``format`` of entry.json in every result file
ARCHIVE_FORMAT = "dipnb-results-archive"  # the ``format`` of manifest.json in an exported archive
_VERSION = 1
_ENTRY = "entry.json"
_MANIFEST = "manifest.json"
_TAGS = ("__array__", "__numpy__", "__tuple__", "__float__", "__items__")


def default_root() -> Path:
    """``DIPNB_CACHE`` if set, else the user's cache folder (``~/.cache/dipnb/results`` on Linux)."""
    env = os.environ.get("DIPNB_CACHE")
    if env:
        return Path(env)
    import pooch

    return Path(pooch.os_cache("dipnb")) / "results"


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------

# (path, size, mtime_ns, inode) -> sha256, so that a file is hashed once per process while unchanged.
_FILE_HASHES: dict[tuple, str] = {}
# key -> what it hashes, for every key computed in this process: :meth:`ResultStore.save` stores
# it with the entry. It is the hash's inverse, not state: a key always maps to the same payload.
_PAYLOADS: dict[str, dict] = {}


def _file_sha256(path: str) -> str:
    st = os.stat(path)
    sig = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if sig not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[sig] = h.hexdigest()
    return _FILE_HASHES[sig]


def _file_inputs(values: dict) -> dict[str, str]:
    """``{path: sha256}`` of every string value (or string in a tuple) that names an existing file."""
    out = {}
    for v in values.values():
        for s in v if isinstance(v, (tuple, list)) else (v,):
            if isinstance(s, str) and s and os.path.isfile(s):
                out[s] = _file_sha256(s)
    return out


def _key_values(cfg_cls, values: dict) -> dict:
    """The config fields that change a result (``metadata={"cache": False}`` ones do not)."""
    return {f.name: values[f.name] for f in fields(cfg_cls) if f.metadata.get("cache", True)}


def key_payload(name: str, cfg, engine_version: str, *, files: dict | None = None) -> dict:
    """What :func:`config_key` hashes: the experiment, the config fields that change the result,
    the engine version and (when there are any) the sha256 of each file the config names.

    Args:
        files: ``{path: sha256}`` to use instead of reading the files (to check a key made on
            another machine).
    """
    values = _key_values(type(cfg), asdict(cfg))
    payload = {"experiment": name, "config": values, "engine": engine_version}
    files = _file_inputs(values) if files is None else files
    if files:
        payload["files"] = dict(sorted(files.items()))
    return payload


def _hash_payload(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def config_key(name: str, cfg, engine_version: str) -> str:
    """A stable hash of the experiment name, every config field, the engine version and the
    content of every file the config names (see :func:`key_payload`). 20 hex digits."""
    payload = key_payload(name, cfg, engine_version)
    key = _hash_payload(payload)
    _PAYLOADS[key] = payload
    return key


# --------------------------------------------------------------------------------------------
# The file format
# --------------------------------------------------------------------------------------------


class _Encoder:
    """Turns an entry into JSON-ready values plus ``{member name: array}``."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, a: np.ndarray, where: str) -> str:
        if a.dtype.hasobject:
            raise TypeError(f"{where}: cannot store an array of dtype object (only numeric, bool or string arrays)")
        name = f"a{len(self.arrays)}.npy"
        self.arrays[name] = a
        return name

    def encode(self, x, where: str):
        import torch

        if isinstance(x, np.generic):  # before float: np.float64 is a float subclass
            return {"__numpy__": self._array(np.asarray(x), where)}
        if x is None or isinstance(x, (bool, str)):
            return str(x) if isinstance(x, str) else x
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            if math.isfinite(x):
                return float(x)
            return {"__float__": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}
        if isinstance(x, np.ndarray):
            return {"__array__": self._array(x, where)}
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu()
            t = t.float() if t.dtype == torch.bfloat16 else t
            return {"__array__": self._array(t.numpy(), where)}
        if isinstance(x, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x) and not (len(x) == 1 and next(iter(x)) in _TAGS):
                return {k: self.encode(v, f"{where}[{k!r}]") for k, v in x.items()}
            return {"__items__": [[self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                                  for k, v in x.items()]}
        raise TypeError(
            f"{where}: cannot store a value of type {type(x).__module__}.{type(x).__qualname__} in a result "
            "(allowed: dict, list, tuple, str, int, float, bool, None, numpy arrays and scalars, tensors)"
        )


def _decode(x, arrays: dict[str, np.ndarray], used: set):
    if isinstance(x, list):
        return [_decode(v, arrays, used) for v in x]
    if not isinstance(x, dict):
        return x
    if len(x) == 1:
        [(tag, v)] = x.items()
        if tag in ("__array__", "__numpy__"):
            if not isinstance(v, str) or v not in arrays:
                raise ValueError(f"it refers to an array {v!r} that it does not hold")
            used.add(v)
            return arrays[v] if tag == "__array__" else arrays[v][()]
        if tag == "__tuple__":
            return tuple(_decode(e, arrays, used) for e in v)
        if tag == "__float__":
            if v not in ("nan", "inf", "-inf"):
                raise ValueError(f"bad float {v!r}")
            return float(v)
        if tag == "__items__":
            out = {}
            for pair in v:
                k, val = pair
                k = _decode(k, arrays, used)
                out[tuple(k) if isinstance(k, list) else k] = _decode(val, arrays, used)
            return out
    return {k: _decode(v, arrays, used) for k, v in x.items()}


def _write_entry(fileobj, entry: dict) -> None:
    """Write ``entry`` to the open binary file ``fileobj`` in the result format."""
    enc = _Encoder()
    doc = {"format": FORMAT, "version": _VERSION, "entry": enc.encode(entry, "entry")}
    text = json.dumps(doc, allow_nan=False, ensure_ascii=False)
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo(_ENTRY, date_time=(1980, 1, 1, 0, 0, 0)), text.encode(),
                   compress_type=zipfile.ZIP_DEFLATED)
        for name, a in enc.arrays.items():
            with z.open(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)


def _read_entry(source) -> dict:
    """Read an entry written by :func:`_write_entry` (a path or bytes). Never runs code.

    Raises:
        ValueError, zipfile.BadZipFile, KeyError, OSError: the file is not a valid result.
    """
    src = io.BytesIO(source) if isinstance(source, bytes) else source
    with zipfile.ZipFile(src) as z:
        names = z.namelist()
        if _ENTRY not in names:
            raise ValueError(f"it holds no {_ENTRY}")
        doc = json.loads(z.read(_ENTRY).decode())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a dipnb result")
        if doc.get("version") != _VERSION:
            raise ValueError(f"result format version {doc.get('version')!r}; this dipnb reads {_VERSION}")
        arrays = {}
        for n in names:
            if n == _ENTRY:
                continue
            if not re.fullmatch(r"a\d+\.npy", n):
                raise ValueError(f"it holds {n!r}, which is not part of a result")
            with z.open(n) as f:
                arrays[n] = np.lib.format.read_array(f, allow_pickle=False)
    used: set = set()
    entry = _decode(doc["entry"], arrays, used)
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
        raise ValueError("not a dipnb result")
    if used != set(arrays):
        raise ValueError("it holds arrays that its entry does not refer to")
    return entry


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def _temp_beside(path: Path) -> Path:
    """A new, unique temporary file name in ``path``'s folder (removed by :meth:`ResultStore.clear`)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def _atomic_write(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ResultStore:
    """Results of experiments on disk under ``root/<experiment>/<key>.npz`` (see the module docs)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()

    def path(self, name: str, key: str) -> Path:
        """Where the result of ``name`` under ``key`` is stored."""
        return self.root / name / f"{key}.npz"

    def checkpoint_path(self, name: str, key: str) -> Path:
        """Where a run in progress keeps its resumable state."""
        return self.root / name / f"{key}.ckpt"

    def load(self, name: str, key: str) -> dict | None:
        """The stored entry ``{"config", "data", "meta", ...}``, or None if absent or unreadable.

        An unreadable file gives one warning line and reads as absent (it is recomputed and
        overwritten). A result in the old pickle format is not unpickled: it is deleted with a
        message, and recomputed.
        """
        p = self.path(name, key)
        old = p.with_suffix(".pkl")
        if old.exists():
            old.unlink(missing_ok=True)
            warnings.warn(
                f"ignoring {old}: a result in the old pickle format, which is not loaded any more "
                "(unpickling can run code); deleted, recomputing", stacklevel=2,
            )
        if not p.exists():
            return None
        try:
            return _read_entry(p)
        except Exception as e:  # truncated, corrupt, hostile, or from an incompatible version
            warnings.warn(f"ignoring unreadable cache file {p} ({type(e).__name__}: {_first_line(e)}); recomputing",
                          stacklevel=2)
            return None

    def save(self, name: str, key: str, entry: dict) -> Path:
        """Store ``entry`` (``{"config": ..., "data": ..., "meta": ...}``) atomically; returns its path.

        What ``key`` hashes is stored with it (``entry["key"]``) when the key was computed in
        this process by :func:`config_key`, so that an export can be checked on import.

        Raises:
            TypeError: a value that is not data (see the module docs), naming where it is;
                nothing is written then.
        """
        p = self.path(name, key)
        if "key" not in entry and key in _PAYLOADS:
            entry = {**entry, "key": _PAYLOADS[key]}
        _atomic_write(p, lambda f: _write_entry(f, entry))
        return p

    def clear(self, name: str | None = None) -> int:
        """Delete stored results, checkpoints, old pickles and stray temporary files (of one
        experiment, or all). Returns how many files were removed."""
        base = self.root / name if name else self.root
        n = 0
        if base.exists():
            for pattern in ("*.npz", "*.ckpt", "*.pkl", ".*.tmp"):
                for p in base.rglob(pattern):
                    p.unlink()
                    n += 1
        return n

    def entries(self, name: str | None = None) -> Iterable[tuple[str, str, Path]]:
        """``(experiment, key, path)`` of every stored result (of one experiment, or all), sorted."""
        dirs = [self.root / name] if name else sorted(d for d in self.root.iterdir() if d.is_dir()) \
            if self.root.exists() else []
        for d in dirs:
            for p in sorted(d.glob("*.npz")) if d.is_dir() else []:
                yield d.name, p.stem, p


# --------------------------------------------------------------------------------------------
# Export and import
# --------------------------------------------------------------------------------------------

_MEMBER = re.compile(r"(?P<experiment>[a-z0-9][a-z0-9-]*)/(?P<key>[0-9a-f]{20})\.npz")


def _engine():
    from . import engine

    return engine


def read_used(path: str | os.PathLike) -> set[tuple[str, str]]:
    """The ``(experiment, key)`` pairs listed in a ``DIPNB_USED`` file (one ``name key`` a line).

    Raises:
        ConfigError: the file is missing, or a line is not ``<experiment> <20-hex key>``.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no list of used results at {p}: run the chapters with DIPNB_USED={p} first")
    pairs = set()
    for n, line in enumerate(p.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{20}", parts[1]):
            raise ConfigError(f"{p}, line {n}: expected '<experiment> <key>', got {line.strip()[:60]!r}")
        pairs.add((parts[0], parts[1]))
    return pairs


def export_results(path: str | os.PathLike, *, store: ResultStore | None = None,
                   experiments: Iterable[str] | None = None,
                   only: Iterable[tuple[str, str]] | None = None) -> dict:
    """Write the stored results (of some experiments, or all) to one zip archive at ``path``.

    ``only``, a set of ``(experiment, key)`` pairs (see :func:`read_used`), narrows the archive to
    those results; a pair with no stored result is an error, so an archive never silently lacks
    a result that a chapter used.

    The archive holds the result files unchanged, at ``<experiment>/<key>.npz``, and
    ``manifest.json``: the engine version and each entry's experiment, key, config and sha256.
    Results of another engine version, smoke runs and files that do not read as results are left
    out (and counted).

    Returns:
        ``{"path", "results", "bytes", "skipped"}``.

    Raises:
        ConfigError: an unknown experiment name, or no result to export.
    """
    eng = _engine()
    store = store or ResultStore()
    names = list(experiments) if experiments else None
    for n in names or []:
        eng.get(n)  # ConfigError naming the known experiments
    wanted = set(only) if only is not None else None
    members, entries, skipped = [], [], 0
    known = set(eng.names())
    for exp_name in names or [None]:
        for name, key, p in store.entries(exp_name):
            if wanted is not None and (name, key) not in wanted:
                continue
            if name not in known:
                skipped += 1
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    entry = _read_entry(p)
            except Exception:
                skipped += 1
                continue
            payload = entry.get("key")
            if (not isinstance(payload, dict) or _hash_payload(payload) != key
                    or payload.get("engine") != eng._version(name) or entry.get("meta", {}).get("smoke")):
                skipped += 1
                continue
            blob = p.read_bytes()
            arc = f"{name}/{key}.npz"
            members.append((arc, blob))
            entries.append({
                "experiment": name, "key": key, "path": arc,
                "config": _Encoder().encode(entry.get("config", {}), "config"),
                "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
            })
    if wanted is not None:
        missing = wanted - {(e["experiment"], e["key"]) for e in entries}
        if names:
            missing = {(n, k) for n, k in missing if n in names}
        if missing:
            n, k = sorted(missing)[0]
            raise ConfigError(f"{len(missing)} listed result(s) are not exportable from {store.root}, e.g."
                              f" {n}/{k} (missing, a smoke run or another engine version); nothing written")
    if not entries:
        which = f" of {', '.join(names)}" if names else ""
        raise ConfigError(f"no results{which} to export in {store.root}" + (f" ({skipped} skipped)" if skipped else ""))
    manifest = {
        "format": ARCHIVE_FORMAT, "version": _VERSION, "engine": eng.ENGINE_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "entries": entries,
    }

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            z.writestr(_MANIFEST, json.dumps(manifest, indent=1, allow_nan=False))
            for arc, blob in members:
                z.writestr(arc, blob)

    out = Path(path)
    _atomic_write(out, write)
    return {"path": out, "results": len(entries), "bytes": out.stat().st_size, "skipped": skipped}


def _refuse(source: str, why: str):
    raise ConfigError(f"refusing {source}: {why}; nothing was imported")


def _download(url: str, dest: Path) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except urllib.error.HTTPError as e:
        raise ConfigError(f"could not download {url}: HTTP {e.code} {e.reason}; nothing was imported") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ConfigError(f"could not download {url}: {_first_line(Exception(reason))}; nothing was imported") from None


def import_results(source: str | os.PathLike, *, store: ResultStore | None = None) -> dict:
    """Import an archive written by :func:`export_results`, from a path or an http(s) URL.

    The whole archive is checked before anything is written, and refused whole if it is not a
    results archive, is truncated or corrupt, was made by another engine version, holds
    anything but ``manifest.json`` and result files at ``<experiment>/<key>.npz`` of known
    experiments, or holds an entry whose key does not match its stored config (the key is
    recomputed from the config, the engine version and the recorded file hashes). Nothing in
    it is executed. Results already in the cache are kept.

    Returns:
        ``{"imported": n, "present": m}``.

    Raises:
        ConfigError: the archive is refused (one line saying why), or cannot be downloaded.
    """
    eng = _engine()
    store = store or ResultStore()
    src = str(source)
    with tempfile.TemporaryDirectory(prefix="dipnb-import-") as tmpdir:
        if re.match(r"https?://", src):
            local = Path(tmpdir) / "archive.zip"
            _download(src, local)
        else:
            local = Path(src)
            if not local.is_file():
                raise ConfigError(f"no such archive file: {src}")
        checked = _check_archive(src, local, eng)
        # Write everything beside its final place first, then rename: a failure leaves nothing half-done.
        staged, present = [], 0
        try:
            for name, key, blob in checked:
                dest = store.path(name, key)
                if dest.exists():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        if store.load(name, key) is not None:
                            present += 1
                            continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = _temp_beside(dest)
                staged.append((tmp, dest))
                with open(tmp, "xb") as f:
                    f.write(blob)
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, dest in staged:
            os.replace(tmp, dest)
    return {"imported": len(staged), "present": present}


def _check_archive(src: str, local: Path, eng) -> list[tuple[str, str, bytes]]:
    """Every check of :func:`import_results`; returns ``(experiment, key, file bytes)`` per entry."""
    with open(local, "rb") as f:
        head = f.read(4)
    try:
        z = zipfile.ZipFile(local)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        if head == b"PK\x03\x04":
            _refuse(src, f"the archive is truncated or corrupt ({_first_line(e)})")
        _refuse(src, "not a results archive (not a zip file)")
    with z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            _refuse(src, "the archive holds the same name twice")
        for n in names:
            if n != _MANIFEST and not _MEMBER.fullmatch(n):
                _refuse(src, f"{n!r} is not a result file (only manifest.json and <experiment>/<key>.npz are allowed)")
        if _MANIFEST not in names:
            _refuse(src, f"not a results archive (no {_MANIFEST})")
        try:
            bad = z.testzip()
        except Exception as e:  # a member cut short
            _refuse(src, f"the archive is truncated or corrupt ({_first_line(e)})")
        if bad is not None:
            _refuse(src, f"the archive is corrupt ({bad!r} fails its checksum)")
        try:
            manifest = json.loads(z.read(_MANIFEST))
        except ValueError as e:
            _refuse(src, f"its {_MANIFEST} is not JSON ({_first_line(e)})")
        if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
            _refuse(src, f"not a results archive ({_MANIFEST} is not a dipnb results manifest)")
        if manifest.get("version") != _VERSION:
            _refuse(src, f"archive format version {manifest.get('version')!r}; this dipnb reads {_VERSION}")
        if manifest.get("engine") != eng.ENGINE_VERSION:
            _refuse(src, f"it was made by engine {manifest.get('engine')!r} and this is engine "
                         f"{eng.ENGINE_VERSION!r}: its results would never be loaded")
        entries = manifest.get("entries")
        if not isinstance(entries, list) or not entries:
            _refuse(src, f"its {_MANIFEST} lists no results")
        listed = {e.get("path") for e in entries if isinstance(e, dict)}
        if listed != set(names) - {_MANIFEST} or len(listed) != len(entries):
            _refuse(src, f"its files and its {_MANIFEST} do not agree")
        known = set(eng.names())
        out = []
        for e in entries:
            arc = e["path"]
            m = _MEMBER.fullmatch(arc)
            name, key = m["experiment"], m["key"]
            if name not in known:
                _refuse(src, f"{arc}: unknown experiment {name!r}")
            if e.get("experiment") != name or e.get("key") != key:
                _refuse(src, f"{arc}: its manifest entry names another experiment or key")
            blob = z.read(arc)
            if hashlib.sha256(blob).hexdigest() != e.get("sha256"):
                _refuse(src, f"{arc}: its sha256 does not match the manifest")
            try:
                entry = _read_entry(blob)
            except Exception as err:
                _refuse(src, f"{arc} is not a valid result ({type(err).__name__}: {_first_line(err)})")
            why = _key_mismatch(name, key, entry, eng)
            if why:
                _refuse(src, f"{arc}: {why}")
            if _Encoder().encode(entry.get("config"), "config") != e.get("config"):
                _refuse(src, f"{arc}: its config does not match the manifest's")
            out.append((name, key, blob))
    return out


def _key_mismatch(name: str, key: str, entry: dict, eng) -> str | None:
    """Why ``key`` is not the key of ``entry``'s stored config, or None if it is."""
    payload = entry.get("key")
    config = entry.get("config")
    if not isinstance(payload, dict) or not isinstance(config, dict):
        return "it does not record its config and key"
    version = eng._version(name)
    if payload.get("engine") != version:
        return f"made by engine {payload.get('engine')!r}, this is {version!r}"
    cls = eng.get(name).config
    wanted = {f.name for f in fields(cls)}
    if set(config) != wanted:
        return f"its config's fields do not match experiment {name!r}'s"
    files = payload.get("files") or {}
    if not isinstance(files, dict):
        return "its key does not match its stored config"
    recomputed = {"experiment": name, "config": _key_values(cls, config), "engine": version}
    if files:
        recomputed["files"] = dict(sorted(files.items()))
    # Both hashes: the payload recorded in the entry, and the one rebuilt from its config.
    if _hash_payload(recomputed) != key or _hash_payload(payload) != key:
        return "its key does not match its stored config"
    return None

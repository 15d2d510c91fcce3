"""The one model contract: every model is a directory with a ``model.json`` of one schema.

Schema ``greatai-model/1`` (see README, "Model contract"):

    schema       "greatai-model/1"
    name         short name, e.g. "amc_ee"
    task         machine-readable kind: "amc", "protobeam", "forecast", "msm-backbone" or "segment"
    description  one line for people
    version      model version (a string)
    files        {role: {"path": file name beside model.json, "sha256": hex digest}}
    inputs       {role: {"name", "shape", "dtype", ...}}
    outputs      {role: {"names" | "name", "shape", ...}}
    classes      class names, in output order (classification tasks)
    normalisation  what the graph does to its input (text or a dict)
    thresholds   operating points, e.g. {"exit": 0.22} or {"occupied": 0.3}
    evaluation   measured accuracy, from data the model never saw
    training     at least {"command": the one command that retrains it}

plus task fields (``frame_length``, ``embedding_dim``, ``channels`` ...; see TASKS).

:func:`load` is the one loader: it resolves a model (empty for the shipped default of a
task), migrates the three earlier layouts in memory, checks the fields the task needs,
and verifies every file's SHA-256, so a file altered after export is refused with its
path named.  :func:`write` is the one writer (atomic).  No GNU Radio, no onnxruntime.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import fileio

SCHEMA = "greatai-model/1"

# task -> (shipped default model, file roles, required task fields)
TASKS = {
    "amc": ("amc_ee", ("stage1", "stage2"), ("classes", "frame_length")),
    "protobeam": ("protobeam", ("encoder",), ("classes", "frame_length", "embedding_dim", "default_prototypes")),
    "forecast": ("forecast", ("forecaster",), ("channels", "steps", "horizons")),
    "msm-backbone": ("forecast", ("onnx",), ("channels", "steps")),
    "segment": ("segment", ("segmenter",), ("classes", "channels", "steps")),
}
_LEGACY_TASK = {"early-exit automatic modulation classification": "amc",
                "transmit-beam inference from IQ (prototypical network)": "protobeam",
                "spectrum occupancy forecasting (H future frames from T past)": "forecast",
                "masked spectrogram modelling (self-supervised)": "msm-backbone"}


class ModelError(ValueError):
    """A model file or its metadata is missing, corrupt or does not fit the block."""


def models_dirs() -> list[Path]:
    """Where shipped models are looked up, in order: $GREATAI_MODELS, the source checkout,
    then ``share/gr-greatai/models`` under $GREATAI_PREFIX, this installation's prefix,
    /usr/local and /usr."""
    dirs = []
    if os.environ.get("GREATAI_MODELS"):
        dirs.append(Path(os.environ["GREATAI_MODELS"]))
    dirs += [p / "models" for p in fileio.source_roots()]
    for prefix in fileio.prefixes():
        dirs.append(prefix / "share" / "gr-greatai" / "models")
    return list(dict.fromkeys(dirs))


def resolve(path, default_name: str) -> Path:
    """The model's metadata path: ``path`` may be empty (the shipped ``default_name``), a
    shipped model's name (``amc_ee_int8``), a model directory, or the metadata file itself."""
    if path is None or str(path).strip() in ("", "default"):
        for d in models_dirs():
            cand = d / default_name / "model.json"
            if cand.is_file():
                return cand
        raise ModelError(f"shipped model {default_name!r} not found in: " + ", ".join(map(str, models_dirs())))
    p = Path(path).expanduser()
    name = str(path).strip()
    if not p.exists() and "/" not in name and not p.suffix:          # a shipped model by name
        for d in models_dirs():
            if (d / name / "model.json").is_file():
                return d / name / "model.json"
    if p.is_dir():
        p = p / "model.json"
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return p


def read_json(path: Path) -> dict:
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"model metadata {path} is unreadable or not JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"model metadata {path} is not a JSON object")
    return meta


def migrate(meta: dict) -> dict:
    """An earlier layout (AMC's ``checksums``/``inputs``/``default_threshold``, ProtoBeam's
    and the forecaster's ``sha256``/``input``/``threshold``) in this schema.  A document
    already in the schema comes back unchanged."""
    if meta.get("schema") == SCHEMA:
        return meta
    m = dict(meta)
    task = str(m.get("task", ""))
    if task in _LEGACY_TASK:
        m["task"] = _LEGACY_TASK[task]
        m.setdefault("description", task)
    sums = dict(m.pop("checksums", {}) or {}, **(m.pop("sha256", {}) or {}))
    files = m.get("files", {})
    if isinstance(files, dict):
        m["files"] = {role: (f if isinstance(f, dict) else {"path": f, "sha256": sums.get(f)})
                      for role, f in files.items()}
    main_role = TASKS[m["task"]][1][0] if m.get("task") in TASKS else "model"
    for old, new in (("input", "inputs"), ("output", "outputs")):
        if old in m:
            m[new] = {main_role: m.pop(old)}
    th = dict(m.get("thresholds", {}))
    if "default_threshold" in m:
        th["exit"] = m.pop("default_threshold")
    if "threshold" in m and not isinstance(m["threshold"], dict):
        th["occupied"] = m.pop("threshold")
    if th:
        m["thresholds"] = th
    m.setdefault("version", "1")
    m["schema"] = SCHEMA
    return m


@dataclass
class Model:
    """A loaded, verified model: its metadata and the paths of its files."""
    path: Path           # model.json
    meta: dict

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.dir.name))

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "1"))

    @property
    def classes(self) -> list:
        return list(self.meta.get("classes", []))

    def file(self, role: str) -> Path:
        try:
            return self.dir / self.meta["files"][role]["path"]
        except (KeyError, TypeError):
            raise ModelError(f"model {self.path} has no {role!r} file in 'files'") from None

    def sha256(self, role: str) -> str:
        return self.meta["files"][role]["sha256"]

    def threshold(self, kind: str, default: float) -> float:
        return float(self.meta.get("thresholds", {}).get(kind, default))

    def field(self, key, cast=None):
        """A required task field, as a ModelError naming the file when missing or mistyped."""
        try:
            v = self.meta[key]
            return cast(v) if cast else v
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"model metadata {self.path} lacks a required field: {key!r} ({e})") from None

    def identity(self) -> dict:
        """What every result carries to say which model made it."""
        return {"model": self.name, "model_version": self.version}


def load(model, task: str, verify: bool = True) -> Model:
    """Resolve, migrate, check and verify a model of ``task`` (see the module doc)."""
    if task not in TASKS:
        raise ValueError(f"unknown model task {task!r}; known: {', '.join(TASKS)}")
    default, roles, fields = TASKS[task]
    path = resolve(model, default)
    if task == "msm-backbone" and path.name == "model.json" and (path.parent / "backbone.json").is_file():
        path = path.parent / "backbone.json"
    meta = migrate(read_json(path))
    m = Model(path, meta)
    if meta.get("task") != task:
        raise ModelError(f"model {path} is a {meta.get('task')!r} model; this needs a {task!r} model")
    for key in fields:
        m.field(key)
    for role in amc_roles(meta) if task == "amc" else roles:
        m.file(role)
    if not isinstance(meta.get("files"), dict):
        raise ModelError(f"model metadata {path}: 'files' must map roles to {{path, sha256}}")
    if verify:
        for role, f in meta["files"].items():
            p = path.parent / str(f.get("path"))
            if not p.is_file():
                raise ModelError(f"model file not found: {p} (listed as {role!r} in {path})")
            want = f.get("sha256")
            if not want:
                raise ModelError(f"model metadata {path} gives no sha256 for {p.name}: it cannot be verified")
            if fileio.sha256(p) != want:
                raise ModelError(f"model file {p} fails its SHA-256 check (corrupt, truncated or altered after "
                                 f"export; {path} expects {want[:12]}…)")
    return m


def single_exit(meta: dict) -> bool:
    """An AMC model with one exit (``"exits": 1``, BacalhauNet): stage 1 alone, no stage 2."""
    return meta.get("exits", 2) == 1


def amc_roles(meta: dict) -> tuple:
    """The graphs of an AMC model: both stages, or stage 1 alone for a one-exit network."""
    return ("stage1",) if single_exit(meta) else ("stage1", "stage2")


def file_entry(path) -> dict:
    """A ``files`` entry for a file just written: name and SHA-256."""
    return {"path": Path(path).name, "sha256": fileio.sha256(path)}


def write(path, meta: dict) -> Path:
    """Write model metadata in this schema, atomically; checks it reads back."""
    meta = migrate(dict(meta))
    path = Path(path)
    fileio.atomic_write(path, json.dumps(meta, indent=1))
    return path

"""The only module that imports a TFLite runtime.

``ai-edge-litert`` is tried first, ``tflite-runtime`` (2.14; it needs numpy < 2) second.
Every model is found through ``models/manifest.json`` and its sha256 is checked before
the interpreter sees a byte of it. XNNPACK is applied by default by both runtimes; the
thread count is a config value (on a 2-core x86 machine a second thread did not help at
these model sizes; measure with ``consentry bench`` before raising it).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ConfigError, ModelError, ModelIntegrityError, RuntimeUnavailable

log = logging.getLogger(__name__)

RuntimeName = Literal["auto", "ai-edge-litert", "tflite-runtime"]
_BACKENDS = {
    "ai-edge-litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
}
ROLES = ("detector", "landmarks", "embedder", "landmarks5", "antispoof")


@dataclass(frozen=True)
class RuntimeInfo:
    """Which TFLite runtime loaded a model, and its package version."""

    name: str
    version: str


@dataclass(frozen=True)
class ModelEntry:
    """One entry of models/manifest.json (paths resolved against the manifest's folder)."""

    name: str
    role: str
    path: Path
    sha256: str
    precision: str
    input: dict[str, Any]
    output: dict[str, Any]
    license: str
    source: str
    training_data: dict[str, Any]  # what the weights were trained on: summary, consent, reference

    def describe(self) -> dict[str, Any]:
        """What `consentry models --json` prints: identity, hash, licence and provenance."""
        return {"name": self.name, "role": self.role, "file": self.path.name, "sha256": self.sha256,
                "license": self.license, "source": self.source, "training_data": self.training_data}


@dataclass(frozen=True)
class TensorInfo:
    """Shape, dtype and quantisation of one model input or output."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int


def default_models_dir() -> Path:
    """``$CONSENTRY_MODELS``, else the checkout's ``models/``, else the system path."""
    env = os.environ.get("CONSENTRY_MODELS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "models"
    if (repo / "manifest.json").is_file():
        return repo
    return Path("/usr/share/consentry/models")


class Manifest:
    """The list of models the appliance may load; nothing else is used to find one."""

    def __init__(self, entries: list[ModelEntry], path: Path) -> None:
        self.entries = entries
        self.path = path

    @classmethod
    def load(cls, models_dir: Path | None = None) -> Manifest:
        folder = Path(models_dir) if models_dir else default_models_dir()
        path = folder / "manifest.json"
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ModelError(f"no model manifest at {path}; set CONSENTRY_MODELS or run `make models`") from exc
        except json.JSONDecodeError as exc:
            raise ModelError(f"model manifest {path} is not valid JSON: {exc}") from exc
        entries = []
        for item in raw.get("models", []):
            try:
                entry = ModelEntry(
                    name=item["name"], role=item["role"], path=folder / item["file"],
                    sha256=item["sha256"], precision=item["precision"], input=item["input"],
                    output=item["output"], license=item["license"], source=item["source"],
                    training_data=item["training_data"],
                )
            except KeyError as exc:
                raise ModelError(f"manifest {path}: entry {item.get('name')!r} lacks {exc}") from exc
            if entry.role not in ROLES:
                raise ModelError(f"manifest {path}: {entry.name} has unknown role {entry.role!r}")
            entries.append(entry)
        return cls(entries, path)

    def get(self, name: str) -> ModelEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        names = ", ".join(e.name for e in self.entries)
        raise ConfigError(f"model {name!r} is not in {self.path} (known: {names})")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Files this process has verified: path -> (size, mtime, ctime, inode, sha256) as they were then.
_VERIFIED: dict[Path, tuple[int, int, int, int, str]] = {}


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    # ctime and the inode cannot be set back by whoever rewrites the file, unlike the mtime
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def verified_bytes(entry: ModelEntry) -> bytes:
    """The model file's bytes, after checking them against the manifest's sha256."""
    try:
        with open(entry.path, "rb") as fh:
            before = _stamp(os.fstat(fh.fileno()))
            content = fh.read()
            unchanged = _stamp(os.fstat(fh.fileno())) == before
    except OSError as exc:
        raise ModelError(f"cannot read model file {entry.path}: {exc.strerror}") from exc
    actual = hashlib.sha256(content).hexdigest()
    if actual != entry.sha256:
        _VERIFIED.pop(entry.path, None)
        raise ModelIntegrityError(str(entry.path), entry.sha256, actual)
    if unchanged:
        _VERIFIED[entry.path] = (*before, entry.sha256)
    return content


def check_model(entry: ModelEntry, *, rehash: bool = True) -> None:
    """Raise unless the file matches the manifest. Without ``rehash``, a file whose size, mtime,
    ctime and inode are those it had when this process last verified it is not read again
    (the staff page asks on every load; the models are ~49 MB). Start-up and doctor re-hash."""
    if not rehash:
        try:
            stamp = _stamp(entry.path.stat())
        except OSError as exc:
            raise ModelError(f"cannot read model file {entry.path}: {exc.strerror}") from exc
        if _VERIFIED.get(entry.path) == (*stamp, entry.sha256):
            return
    verified_bytes(entry)


def _import_backend(runtime: RuntimeName) -> tuple[Any, RuntimeInfo]:
    if runtime != "auto" and runtime not in _BACKENDS:
        raise ConfigError(f"unknown TFLite runtime {runtime!r}; use auto, ai-edge-litert or tflite-runtime")
    names = list(_BACKENDS) if runtime == "auto" else [runtime]
    errors = []
    for name in names:
        module_name, dist = _BACKENDS[name]
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - tflite-runtime raises odd errors under numpy 2
            errors.append(f"{name}: {exc}")
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return module, RuntimeInfo(name, version)
    raise RuntimeUnavailable(
        "no TFLite runtime could be imported (" + "; ".join(errors) + "). Install ai-edge-litert, "
        "or tflite-runtime==2.14 with numpy<2."
    )


def _tensor_info(detail: dict) -> TensorInfo:
    scale, zero = detail.get("quantization", (0.0, 0))
    return TensorInfo(int(detail["index"]), str(detail["name"]), tuple(int(d) for d in detail["shape"]),
                      np.dtype(detail["dtype"]), float(scale), int(zero))


class Model:
    """One verified model in one interpreter. Not shared between threads: ``run`` locks.

    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, entry: ModelEntry, *, threads: int = 1, runtime: RuntimeName = "auto") -> None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        module, self.runtime = _import_backend(runtime)
        self.entry = entry
        content = verified_bytes(entry)
        try:
            self._interp = module.Interpreter(model_content=content, num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.runtime.name} could not load {entry.path}: {exc}") from exc
        self.inputs = [_tensor_info(d) for d in self._interp.get_input_details()]
        self.outputs = [_tensor_info(d) for d in self._interp.get_output_details()]
        self._lock = threading.Lock()
        log.debug("loaded %s with %s %s (%d threads)", entry.name, self.runtime.name,
                  self.runtime.version, threads)

    def run(self, *arrays: np.ndarray, out: np.ndarray | None = None) -> list[np.ndarray]:
        """Run once; returns copies of every output in the interpreter's output order.

        With ``out`` (single-output models), the output is written into that caller-owned
        buffer and returned in the list, so no other copy of it exists outside the interpreter.
        """
        if len(arrays) != len(self.inputs):
            raise ValueError(f"{self.entry.name} takes {len(self.inputs)} inputs, got {len(arrays)}")
        with self._lock:
            if self._interp is None:
                raise ModelError(f"model {self.entry.name} is closed")
            for spec, arr in zip(self.inputs, arrays, strict=True):
                if tuple(arr.shape) != spec.shape or arr.dtype != spec.dtype:
                    raise ValueError(
                        f"{self.entry.name} input {spec.name} wants {spec.shape} {spec.dtype}, "
                        f"got {tuple(arr.shape)} {arr.dtype}"
                    )
                self._interp.set_tensor(spec.index, arr)
            self._interp.invoke()
            if out is not None:
                if len(self.outputs) != 1:
                    raise ValueError(f"{self.entry.name} has {len(self.outputs)} outputs; out= needs one")
                np.copyto(out, self._interp.tensor(self.outputs[0].index)().reshape(out.shape))
                return [out]
            return [self._interp.get_tensor(o.index) for o in self.outputs]  # get_tensor copies already

    def close(self) -> None:
        with self._lock:
            self._interp = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

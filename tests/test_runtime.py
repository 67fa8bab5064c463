import json
import shutil

import numpy as np
import pytest
from consentry.errors import ConfigError, ModelError, ModelIntegrityError
from consentry.runtime import Manifest, Model, sha256_file

pytestmark = pytest.mark.pi  # also run on arm64 by `make pi-check`


def test_manifest_lists_every_role_with_matching_hashes(manifest):
    roles = {e.role for e in manifest.entries}
    assert roles == {"detector", "landmarks", "embedder", "landmarks5", "antispoof"}
    names = {e.name for e in manifest.entries}
    assert {"dlib_resnet_v1_int8", "dlib_resnet_v1_float16", "blazeface_short_range", "face_mesh"} <= names
    for entry in manifest.entries:
        assert sha256_file(entry.path) == entry.sha256, entry.name
        assert entry.license and entry.source and entry.input and entry.output


def test_model_reports_runtime_and_tensor_contract(manifest):
    with Model(manifest.get("dlib_resnet_v1_int8")) as model:
        assert model.runtime.name in ("ai-edge-litert", "tflite-runtime")
        assert model.runtime.version
        spec = model.inputs[0]
        assert spec.shape == (1, 150, 150, 3)
        assert spec.dtype == np.uint8 and (spec.scale, spec.zero_point) == (1.0, 0)
        assert model.outputs[0].dtype == np.float32


def _copy_models(manifest, tmp_path):
    for entry in manifest.entries:
        shutil.copy(entry.path, tmp_path / entry.path.name)
    shutil.copy(manifest.path, tmp_path / "manifest.json")
    return Manifest.load(tmp_path)


def test_tampered_model_is_refused_with_both_hashes(manifest, tmp_path):
    copy = _copy_models(manifest, tmp_path)
    entry = copy.get("face_mesh")
    blob = bytearray(entry.path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    entry.path.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError) as err:
        Model(entry)
    message = str(err.value)
    assert str(entry.path) in message and entry.sha256 in message and sha256_file(entry.path) in message


def test_missing_manifest_and_unknown_names_are_clear(tmp_path, manifest):
    with pytest.raises(ModelError, match="no model manifest"):
        Manifest.load(tmp_path)
    with pytest.raises(ConfigError, match="not in"):
        manifest.get("no_such_model")
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [{"name": "x"}]}))
    with pytest.raises(ModelError, match="lacks"):
        Manifest.load(tmp_path)


def test_unknown_runtime_and_bad_threads_are_config_errors(manifest):
    with pytest.raises(ConfigError, match="unknown TFLite runtime"):
        Model(manifest.get("face_mesh"), runtime="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="threads"):
        Model(manifest.get("face_mesh"), threads=0)


def test_run_rejects_wrong_input_shape(manifest):
    with Model(manifest.get("face_mesh")) as model, pytest.raises(ValueError, match="wants"):
        model.run(np.zeros((1, 10, 10, 3), np.float32))


def test_fallback_runtime_used_when_first_is_missing(manifest, monkeypatch):
    import importlib

    import consentry.runtime as rt

    real_import = importlib.import_module

    def fake_import(name, *args, **kwargs):
        if name == "ai_edge_litert.interpreter":
            raise ImportError("not installed here")
        if name == "tflite_runtime.interpreter":
            return real_import("ai_edge_litert.interpreter")  # stands in for tflite-runtime
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(rt.importlib, "import_module", fake_import)
    with Model(manifest.get("face_mesh")) as model:
        assert model.runtime.name == "tflite-runtime"


def test_no_runtime_at_all_says_what_to_install(manifest, monkeypatch):
    import consentry.runtime as rt
    from consentry.errors import RuntimeUnavailable

    def no_import(name, *args, **kwargs):
        raise ImportError(f"no module {name}")

    monkeypatch.setattr(rt.importlib, "import_module", no_import)
    with pytest.raises(RuntimeUnavailable, match="numpy<2"):
        Model(manifest.get("face_mesh"))

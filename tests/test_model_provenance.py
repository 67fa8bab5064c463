"""Every model says what it was trained on: the manifest carries it, the recipe that writes the
manifest keeps it (so `make models` cannot drop it), and `consentry models --json` prints it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from consentry import cli
from consentry.errors import ModelError
from consentry.runtime import Manifest

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("summary", "consent", "reference")


def _recipe():
    spec = importlib.util.spec_from_file_location("build_manifest", ROOT / "models" / "recipe" / "build_manifest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_manifest_entry_says_what_it_was_trained_on(manifest):
    raw = json.loads(manifest.path.read_text())["models"]
    assert raw and len(raw) == len(manifest.entries)
    for item in raw:
        data = item.get("training_data")
        assert isinstance(data, dict), item["name"]
        for field in FIELDS:
            assert isinstance(data.get(field), str) and len(data[field]) > 20, (item["name"], field)


def test_the_recognition_model_is_described_as_its_author_does(manifest):
    for entry in manifest.entries:
        if entry.role == "embedder":
            data = entry.training_data
            assert (data["images"], data["identities"]) == (3_000_000, 7485)
            assert "7,485 people" in data["summary"] and "3 million" in data["summary"]
            assert "not asked" in data["consent"]


def test_the_recipe_writes_the_same_provenance_and_hashes(manifest, tmp_path):
    recipe = _recipe()
    assert all(spec.get("training_data") for spec in recipe.SPECS)
    for entry in manifest.entries:
        (tmp_path / entry.path.name).symlink_to(entry.path)
    rebuilt = json.loads(recipe.write(tmp_path).read_text())
    assert rebuilt == json.loads(manifest.path.read_text())


def test_an_entry_without_provenance_is_refused(manifest, tmp_path):
    raw = json.loads(manifest.path.read_text())
    del raw["models"][0]["training_data"]
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="training_data"):
        Manifest.load(tmp_path)


def test_models_json_prints_each_models_provenance(capsys):
    assert cli.main(["models", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)["models"]
    assert {m["name"] for m in printed} == {e.name for e in Manifest.load().entries}
    for model in printed:
        assert all(model["training_data"][field] for field in FIELDS), model["name"]
        assert len(model["sha256"]) == 64 and model["license"] and model["source"]

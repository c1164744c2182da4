"""Publishing against a stand-in for the Hub API (no network): repo ids, privacy, files, cards, and no token
anywhere in what we write or print."""

import json
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from helpers import ROOT
from secml_recipes.deploy import push as push_mod
from secml_recipes.evaluation.report import write_report

TOKEN = "hf_PLANTEDsecretTOKEN0123456789abcdef"


class FakeHub:
    """Records every call the way HfApi would receive it."""

    instances = []

    def __init__(self, token=None, **kwargs):
        self.token = token
        self.calls = []
        FakeHub.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return SimpleNamespace(repo_id=repo_id, url=f"https://hub.invalid/{repo_id}")

    def upload_folder(self, repo_id, folder_path, **kwargs):
        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        self.calls.append(("upload_folder", repo_id, {"files": files, **kwargs}))
        result = SimpleNamespace(commit_url=f"https://hub.invalid/{repo_id}/commit/0")
        if kwargs.get("run_as_future"):
            future = Future()
            future.set_result(result)
            return future
        return result

    def upload_file(self, repo_id, path_or_fileobj, path_in_repo, **kwargs):
        content = path_or_fileobj.decode() if isinstance(path_or_fileobj, bytes) else Path(path_or_fileobj).read_text()
        self.calls.append(("upload_file", repo_id, {"path_in_repo": path_in_repo, "content": content}))


@pytest.fixture
def models(tmp_path, small_corpus):
    m = tmp_path / "models"
    spec = m / "specialist_model"
    spec.mkdir(parents=True)
    (spec / "config.json").write_text("{}")
    save_file({"w": torch.ones(2, 2)}, str(spec / "model.safetensors"))
    (spec / "training_args.bin").write_bytes(b"pickled")
    (spec / "checkpoint-10").mkdir()
    (spec / "checkpoint-10" / "optimizer.pt").write_bytes(b"x")
    (spec / "secml_recipe.json").write_text(
        json.dumps(
            {
                "recipe": "recipes/full/specialist.yaml",
                "resolved": {
                    "model_name_or_path": "meta-llama/Llama-3.1-8B-Instruct",
                    "dataset_path": str(small_corpus),
                    "learning_rate": 1e-5,
                },
            }
        )
    )
    gen = m / "generalist_model_lora"
    gen.mkdir()
    (gen / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "mistralai/Mixtral-8x7B-Instruct-v0.1", "r": 16})
    )
    save_file({"lora_A": torch.ones(2, 2)}, str(gen / "adapter_model.safetensors"))
    gguf = m / "specialist-gguf"
    gguf.mkdir()
    (gguf / "specialist-q4_K_M.gguf").write_bytes(b"GGUF")
    (gguf / "Modelfile.q4_K_M").write_text("FROM ./specialist-q4_K_M.gguf\n")
    (m / "specialist-quant-report.json").write_text(
        json.dumps(
            {
                "name": "specialist",
                "artifacts": {
                    "q4_K_M:llama.cpp": {
                        "client": "llama-cpp-python",
                        "top1_agreement": 0.91,
                        "kl_divergence": 0.05,
                        "max_logit_diff": 1.2,
                        "perplexity_source": 3.0,
                        "perplexity": 3.2,
                        "bytes": 4_000_000,
                        "load_seconds": 0.5,
                        "ok": True,
                    }
                },
            }
        )
    )
    # written by the evaluation's own writer: the card shows the table the evaluation wrote
    write_report(
        tmp_path / "eval" / "specialist", {}, {"model": {"json_parse_rate": 0.97}, "rule": {"json_parse_rate": 1.0}}
    )
    return m


def test_push_creates_private_repos_with_files_and_cards(models, tmp_path):
    api = FakeHub()
    done = push_mod.push("acme", models, tmp_path / "eval", TOKEN, api=api)
    repos = [d["repo_id"] for d in done]
    assert repos == ["acme/secml-specialist", "acme/secml-specialist-gguf", "acme/secml-generalist-lora"]
    creates = [c for c in api.calls if c[0] == "create_repo"]
    assert all(c[2]["private"] is True for c in creates)
    upload = next(c for c in api.calls if c[0] == "upload_folder" and c[1] == "acme/secml-specialist")
    assert "model.safetensors" in upload[2]["files"] and "checkpoint-*" in upload[2]["ignore_patterns"]
    assert "training_args.bin" in upload[2]["ignore_patterns"]
    cards = {c[1]: c[2]["content"] for c in api.calls if c[0] == "upload_file"}
    spec_card = cards["acme/secml-specialist"]
    assert "base_model: meta-llama/Llama-3.1-8B-Instruct" in spec_card and "license: llama3.1" in spec_card
    assert (
        "Data manifest sha256: `" in spec_card and "unknown`" not in spec_card.split("Data manifest")[1].split("\n")[0]
    )
    assert "| json_parse_rate | 0.970 | 1.000 |" in spec_card
    assert "| specialist | q4_K_M | llama-cpp-python | 0.910 |" in spec_card
    assert "ollama create" in cards["acme/secml-specialist-gguf"]
    gen_card = cards["acme/secml-generalist-lora"]
    assert "license: apache-2.0" in gen_card and "library_name: peft" in gen_card
    assert all(TOKEN not in json.dumps(c, default=str) for c in api.calls)


def test_a_card_carries_the_license_of_its_own_base_model(models, tmp_path, monkeypatch):
    # recipes/qwen3/ write the same folders as the defaults: the license follows the base model, not the task.
    # With no card of Qwen3 on this machine, the card says which license applies instead of guessing.
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kwargs: None)
    recipe = models / "specialist_model" / "secml_recipe.json"
    recipe.write_text(json.dumps({"resolved": {"model_name_or_path": "Qwen/Qwen3-8B"}}))
    done = push_mod.push("acme", models, tmp_path / "eval", TOKEN, only="specialist", dry_run=True)
    card = str(push_mod.model_card(push_mod.find_artifacts(models, "specialist")[0], models, tmp_path / "eval"))
    assert done and "license: other" in card and "the license of its base model `Qwen/Qwen3-8B`" in card
    assert "Llama" not in card


def test_a_local_base_folder_gives_its_license_and_hub_id_to_the_card(models, tmp_path):
    # make smoke's base: a folder written by `make base-models`, which records its Hub id and license.
    base = tmp_path / "smollm2-135m-instruct"
    base.mkdir()
    (base / "secml_base_model.json").write_text(
        json.dumps({"hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "apache-2.0"})
    )
    recipe = models / "specialist_model" / "secml_recipe.json"
    recipe.write_text(json.dumps({"resolved": {"model_name_or_path": str(base)}}))
    card = str(push_mod.model_card(push_mod.find_artifacts(models, "specialist")[0], models, tmp_path / "eval"))
    assert "license: apache-2.0" in card and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "apache-2.0 (derivative of HuggingFaceTB/SmolLM2-135M-Instruct; its license applies)" in card
    # A plain HF snapshot folder: its own README's front matter.
    snapshot = tmp_path / "gemma"
    snapshot.mkdir()
    (snapshot / "README.md").write_text("---\nlicense: gemma\nlibrary_name: transformers\n---\n# Gemma\n")
    assert push_mod.license_of(str(snapshot)) == ("gemma", f"gemma (derivative of {snapshot}; its license applies)")
    (snapshot / "README.md").write_text("no front matter here")
    assert push_mod.license_of(str(snapshot))[0] == "other"


def test_a_hub_base_reads_the_license_from_the_hub_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub

    card = tmp_path / "README.md"
    card.write_text("---\nlicense: apache-2.0\n---\n")
    asked = []

    def cached(repo_id, filename, **kwargs):
        asked.append((repo_id, filename))
        return str(card) if repo_id == "Qwen/Qwen3-8B" else None

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", cached)
    assert push_mod.license_of("Qwen/Qwen3-8B") == (
        "apache-2.0",
        "apache-2.0 (derivative of Qwen/Qwen3-8B; its license applies)",
    )
    # Not cached: the defaults' table, then an honest "unknown".
    assert push_mod.license_of("meta-llama/Llama-3.1-8B-Instruct")[0] == "llama3.1"
    assert push_mod.license_of("google/gemma-3-4b-it")[0] == "other"
    # No base recorded, or a name no repo can have: an honest "unknown", never this repository's own README.
    assert push_mod.license_of("")[0] == "other"
    monkeypatch.undo()
    assert push_mod.license_of("not/a/valid repo id")[0] == "other"
    assert ("google/gemma-3-4b-it", "README.md") in asked


def test_cli_uses_env_token_warns_on_flag_and_never_prints_it(models, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    FakeHub.instances.clear()
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    args = ["--namespace", "acme", "--models-dir", str(models), "--eval-dir", str(tmp_path / "eval")]
    assert push_mod.main(args) == 0
    assert FakeHub.instances[-1].token == TOKEN
    out = capsys.readouterr()
    assert "acme/secml-specialist (private)" in out.out and TOKEN not in out.out + out.err
    monkeypatch.delenv("HF_TOKEN")
    assert push_mod.main(args + ["--huggingface-token", TOKEN]) == 0
    out = capsys.readouterr()
    assert "shell history" in out.err and TOKEN not in out.out + out.err
    assert push_mod.main(args) == 2
    assert "export HF_TOKEN" in capsys.readouterr().err


def test_hub_errors_are_scrubbed_of_the_token(models, tmp_path, capsys, monkeypatch):
    class Failing(FakeHub):
        def create_repo(self, repo_id, **kwargs):
            raise ValueError(f"401 Unauthorized for token {self.token}")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", Failing)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert push_mod.main(["--namespace", "acme", "--models-dir", str(models)]) == 1
    err = capsys.readouterr().err
    assert "401 Unauthorized" in err and TOKEN not in err and "***" in err


def test_training_run_with_push_leaks_the_token_nowhere(
    tiny_models, small_corpus, tmp_path, monkeypatch, capsys, caplog
):
    """Train with push_to_hub against the stand-in Hub and a planted token; then scan every file and log."""
    import transformers.trainer

    from secml_recipes.train.sft import main

    recorder = FakeHub(token=None)
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: recorder)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "run"
    rc = main(
        [
            str(ROOT / "recipes/tiny/specialist.yaml"),
            "--model_name_or_path",
            str(tiny_models["llama"]),
            "--dataset_path",
            str(small_corpus),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--max_train_samples",
            "2",
            "--save_steps",
            "1",
            "--push_to_hub",
            "true",
            "--hub_model_id",
            "acme/run",
        ]
    )
    assert rc == 0
    assert any(c[0] == "create_repo" and c[1] == "acme/run" for c in recorder.calls)
    assert any(c[0] == "upload_folder" for c in recorder.calls)
    logs = capsys.readouterr()
    texts = [logs.out, logs.err, caplog.text, json.dumps(recorder.calls, default=str)]
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data, path
    assert all(TOKEN not in t for t in texts)


def test_push_refuses_nan_weights_and_artifacts_quantize_did_not_verify(models, tmp_path):
    """A diverged run is never published, nor a GGUF whose quantize report says broken (or is missing)."""
    report = models / "specialist-quant-report.json"
    verified = json.loads(report.read_text())
    broken = json.loads(report.read_text())
    broken["artifacts"]["q4_K_M:llama.cpp"]["ok"] = False
    report.write_text(json.dumps(broken))
    with pytest.raises(RuntimeError, match="q4_K_M:llama.cpp as not ok"):
        push_mod.push("acme", models, tmp_path / "eval", TOKEN, dry_run=True)
    report.unlink()
    with pytest.raises(RuntimeError, match="no quantize report"):
        push_mod.push("acme", models, tmp_path / "eval", TOKEN, dry_run=True)
    report.write_text(json.dumps(verified))
    save_file({"w": torch.tensor([1.0, float("nan")])}, str(models / "specialist_model" / "model.safetensors"))
    api = FakeHub()
    with pytest.raises(RuntimeError, match=r"non-finite \(NaN/inf\) weights \(model.safetensors:w\)"):
        push_mod.push("acme", models, tmp_path / "eval", TOKEN, api=api)
    assert api.calls == []  # nothing at all was pushed

"""A full disk or an unreachable Hub is one line saying what happened and how the run resumes."""

import errno

import pytest

from helpers import ROOT
from secml_recipes.env_errors import describe_environment_error


def _chained(outer, inner):
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer from err
    except BaseException as err:
        return err


def test_environment_errors_are_recognised_through_the_chain():
    import requests
    from huggingface_hub.errors import OfflineModeIsEnabled

    enospc = OSError(errno.ENOSPC, "No space left on device", "/out/checkpoint-2/optimizer.pt")
    assert describe_environment_error(_chained(RuntimeError("save failed"), enospc)) == (
        "disk",
        "the disk is full writing /out/checkpoint-2/optimizer.pt",
    )
    torch_full = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 128 vs 64")
    assert describe_environment_error(torch_full)[0] == "disk"
    assert describe_environment_error(OSError(errno.EDQUOT, "Disk quota exceeded"))[1] == "the disk quota is exceeded"
    assert describe_environment_error(requests.ConnectionError("Max retries exceeded"))[0] == "network"
    assert describe_environment_error(OfflineModeIsEnabled("offline"))[0] == "network"
    assert describe_environment_error(ValueError("a bug")) is None  # everything else stays a traceback


def test_an_unreachable_hub_with_push_to_hub_is_one_line(tiny_models, small_corpus, tmp_path, capsys, monkeypatch):
    from secml_recipes.train.sft import main

    monkeypatch.setenv("HF_TOKEN", "hf_PLANTEDtokenNEVERshown")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(
        [
            str(ROOT / "recipes/tiny/specialist.yaml"),
            "--model_name_or_path",
            str(tiny_models["llama"]),
            "--dataset_path",
            str(small_corpus),
            "--output_dir",
            str(tmp_path / "o"),
            "--max_train_samples",
            "2",
            "--max_steps",
            "1",
            "--push_to_hub",
            "true",
            "--hub_model_id",
            "me/x",
        ]
    )
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("error: the network or the Hugging Face Hub is unreachable")
    assert "Traceback" not in err and "hf_PLANTED" not in err


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed"),
    ],
)
def test_a_full_disk_while_checkpointing_is_one_line_that_says_how_it_resumes(tmp_path, capsys, monkeypatch, exc):
    """sft.train's handler, without training: the checkpoint write is what fails."""
    from types import SimpleNamespace

    import secml_recipes.train.sft as sft

    def failing(*args):
        (tmp_path / "o" / "checkpoint-2").mkdir(parents=True)  # a half-written checkpoint, as a full disk leaves
        raise exc

    monkeypatch.setattr(sft, "_train", failing)
    args = SimpleNamespace(output_dir=str(tmp_path / "o"), process_index=0, push_to_hub=False)
    assert sft.train(None, None, args, None, {}, "r.yaml") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: the disk is full")
    assert "free space and rerun the same command: it starts over (no complete checkpoint yet)" in err


def test_disk_check_refuses_an_install_that_does_not_fit(tmp_path, capsys, monkeypatch):
    import shutil

    from secml_recipes import disk_check

    free = shutil.disk_usage(tmp_path).free / 1024**3
    assert disk_check.main([str(tmp_path / "not" / "yet"), f"{free / 2:.3f}", "a small thing"]) == 0
    assert disk_check.main([str(tmp_path / "venv"), f"{free + 1000:.0f}", "the XLA test environment"]) == 2
    err = capsys.readouterr().err
    assert "not enough disk for the XLA test environment" in err
    assert f"{free + 1000:.0f} GiB needed" in err and "GiB free" in err
    assert "Traceback" not in err

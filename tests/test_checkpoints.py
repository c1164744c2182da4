"""Checkpoints complete or set aside: a crash while checkpoint-N is written never stops a resume."""

import json

import pytest
import torch
from safetensors.torch import save_file

from secml_recipes.train.checkpoints import (
    CheckpointError,
    checkpoint_problem,
    newest_complete_checkpoint,
    require_complete,
)


def make_checkpoint(folder, step):
    """Every file the Trainer writes for a full fine-tune, in its real formats (tiny tensors)."""
    folder.mkdir(parents=True)
    save_file({"w": torch.ones(64, 64)}, str(folder / "model.safetensors"))
    torch.save({"state": {0: {"exp_avg": torch.zeros(64, 64)}}, "param_groups": []}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    torch.save({"python": 1, "cpu": torch.get_rng_state()}, folder / "rng_state.pth")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return folder


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


BREAKS = {
    "no trainer state": lambda c: (c / "trainer_state.json").unlink(),
    "trainer state cut": lambda c: truncate(c / "trainer_state.json"),
    "optimizer cut": lambda c: truncate(c / "optimizer.pt"),
    "weights cut": lambda c: truncate(c / "model.safetensors", 0.9),
    "no scheduler": lambda c: (c / "scheduler.pt").unlink(),
    "rng cut": lambda c: truncate(c / "rng_state.pth"),
}


def test_a_complete_checkpoint_passes(tmp_path):
    assert checkpoint_problem(make_checkpoint(tmp_path / "checkpoint-2", 2)) is None


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_an_incomplete_newest_checkpoint_falls_back_to_the_complete_one(tmp_path, name):
    make_checkpoint(tmp_path / "checkpoint-2", 2)
    BREAKS[name](make_checkpoint(tmp_path / "checkpoint-4", 4))
    resume = newest_complete_checkpoint(tmp_path)
    assert resume.checkpoint == tmp_path / "checkpoint-2"
    assert (tmp_path / "incomplete-checkpoint-4").is_dir() and not (tmp_path / "checkpoint-4").exists()
    message = resume.message()
    assert message.startswith("checkpoint-4 is incomplete (") and message.endswith("resuming from checkpoint-2")
    assert "\n" not in message


def test_no_complete_checkpoint_starts_over_and_says_so(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    resume = newest_complete_checkpoint(tmp_path)
    assert resume.checkpoint is None and "starting over" in resume.message()


def test_a_model_only_checkpoint_needs_no_optimizer(tmp_path):
    folder = make_checkpoint(tmp_path / "checkpoint-1", 1)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (folder / name).unlink()
    assert checkpoint_problem(folder, model_only=True) is None
    assert "optimizer state missing" in checkpoint_problem(folder)


def test_a_named_incomplete_checkpoint_is_refused_not_replaced(tmp_path):
    folder = make_checkpoint(tmp_path / "checkpoint-5", 5)
    truncate(folder / "optimizer.pt")
    with pytest.raises(CheckpointError, match="resume_from_checkpoint: .*optimizer.pt is"):
        require_complete(folder)
    assert folder.is_dir()


def test_sharded_weights_check_every_shard(tmp_path):
    folder = make_checkpoint(tmp_path / "checkpoint-1", 1)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}})
    )
    assert "model-00002-of-00002.safetensors (listed in model.safetensors.index.json) is missing" in checkpoint_problem(
        folder
    )


def test_sft_resumes_from_the_newest_complete_checkpoint_and_says_so(tmp_path, caplog):
    from types import SimpleNamespace

    from secml_recipes.train.sft import _resume_checkpoint

    make_checkpoint(tmp_path / "checkpoint-2", 2)
    (tmp_path / "checkpoint-4").mkdir()  # killed before trainer_state.json was written
    args = SimpleNamespace(resume_from_checkpoint=None, save_only_model=False, process_index=0)
    with caplog.at_level("WARNING", logger="secml_recipes.train.sft"):
        assert _resume_checkpoint(SimpleNamespace(model_name_or_path="m"), args, tmp_path) == str(
            tmp_path / "checkpoint-2"
        )
    assert (
        "checkpoint-4 is incomplete (trainer state missing" in caplog.text
        and "resuming from checkpoint-2" in caplog.text
    )

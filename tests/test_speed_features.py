"""Every speed feature leaves the loss and gradients of identical batches unchanged."""

import pytest
import torch

from secml_recipes.data.fixtures import real_reports
from secml_recipes.data.split import specialist_examples

from helpers import make_trainer

SEQUENTIAL = ("--train_sampling_strategy", "sequential", "--shuffle_dataset", "false", "--per_device_train_batch_size", "4")


@pytest.fixture(scope="module")
def rows():
    return [{k: r[k] for k in ("prompt", "completion")} for r in specialist_examples(next(real_reports()), "fx", 2500)[:4]]


def _loss_and_grads(trainer, model, batch):
    model.zero_grad()
    n = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n)
    loss.backward()
    return float(loss), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_padding_free_gives_the_padded_loss_and_gradients(tiny_models, tmp_path, rows):
    padded = make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "a", *SEQUENTIAL,
                          "--padding_free", "false", "--max_length", "16384")
    flat = make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "b", *SEQUENTIAL,
                        "--padding_free", "true", "--max_length", "16384")
    model = padded.model.train()
    pb, fb = next(iter(padded.get_train_dataloader())), next(iter(flat.get_train_dataloader()))
    assert fb["input_ids"].numel() < pb["input_ids"].numel()  # the padding is gone
    la, ga = _loss_and_grads(padded, model, pb)
    lb, gb = _loss_and_grads(flat, model, fb)
    assert lb == pytest.approx(la, rel=1e-5)
    for name in ga:
        torch.testing.assert_close(gb[name], ga[name], rtol=1e-4, atol=1e-5, msg=name)


def test_padding_free_still_enforces_max_length(tiny_models, tmp_path, rows):
    full = make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "a", *SEQUENTIAL, "--max_length", "16384")
    longest = max(len(ids) for ids in full.train_dataset["input_ids"])
    cut = make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "b", *SEQUENTIAL,
                       "--padding_free", "true", "--max_length", str(longest - 10))
    assert cut.args.max_length == longest - 10 and len(cut.train_dataset) == len(rows)
    assert max(len(ids) for ids in cut.train_dataset["input_ids"]) == longest - 10
    # A limit inside every prompt leaves no trained token: those rows are dropped (and counted in the log).
    none = make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "c", *SEQUENTIAL,
                        "--padding_free", "true", "--max_length", "64")
    assert len(none.train_dataset) == 0


def test_xla_turns_padding_free_off_and_pads_to_buckets(tiny_models, tmp_path, rows, monkeypatch):
    import secml_recipes.trainers as trainers

    monkeypatch.setattr(trainers, "is_xla_device", lambda device=None: True)
    trainer = make_trainer("specialist", tiny_models["llama"], rows, tmp_path, *SEQUENTIAL,
                           "--padding_free", "true", "--max_length", "4096")
    assert not trainer.args.padding_free and "fused" not in str(trainer.args.optim.value)
    assert isinstance(trainer.data_collator, trainers.CompletionOnlyCollator)
    assert trainer.data_collator.bucket_lengths == [1024, 2048, 4096]
    batch = trainer.data_collator([trainer.train_dataset[0]])
    assert batch["input_ids"].shape[1] in (1024, 2048, 4096)

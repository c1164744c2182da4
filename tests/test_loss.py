"""The loss: shifted causal-LM cross-entropy over trained tokens, divided by the trained tokens of the whole
accumulated batch, so accumulation (and data parallelism) does not change it."""

import pytest
import torch
from transformers import TrainerCallback

from helpers import make_trainer
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.tasks.split import specialist_examples

SEQUENTIAL = ("--train_sampling_strategy", "sequential", "--shuffle_dataset", "false", "--padding_free", "false")


@pytest.fixture(scope="module")
def rows():
    report = next(real_reports())
    # Four examples of different lengths, so padding and per-example token counts differ.
    return [{k: r[k] for k in ("prompt", "completion")} for r in specialist_examples(report, "fx", 2500)[:4]]


def _batch(trainer, examples):
    return trainer.data_collator([trainer.train_dataset[i] for i in examples])


def _hand_loss(model, batch):
    """Textbook shifted CE in float64: logits[t] predicts labels[t+1]; mean over trained positions."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
    logits, labels = logits[:, :-1], batch["labels"][:, 1:]
    mask = labels != -100
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return float(-(picked * mask).sum() / mask.sum()), int(mask.sum())


def test_loss_equals_hand_computation(tiny_models, tmp_path, rows):
    trainer = make_trainer("specialist", tiny_models["llama"], rows, tmp_path, *SEQUENTIAL, "--max_length", "16384")
    model = trainer.model.eval()
    batch = _batch(trainer, [0, 1])
    expected, n_trained = _hand_loss(model, batch)
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
    assert n_trained > 100
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # With num_items_in_batch (the trainer's own count over shifted labels), the same number.
    n_items = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    assert int(n_items) == n_trained
    with torch.no_grad():
        assert float(trainer.compute_loss(model, dict(batch), num_items_in_batch=n_items)) == pytest.approx(
            expected, rel=1e-5
        )


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_four_micro_batches_equal_one_batch_of_four(tiny_models, tmp_path, rows):
    trainer = make_trainer("specialist", tiny_models["llama"], rows, tmp_path, *SEQUENTIAL, "--max_length", "16384")
    model = trainer.model.train()

    micro = [_batch(trainer, [i]) for i in range(4)]
    n_items = trainer._get_num_items_in_batch(micro, torch.device("cpu"))
    model.zero_grad()
    total = 0.0
    for b in micro:
        loss = trainer.compute_loss(model, dict(b), num_items_in_batch=n_items)
        loss.backward()
        total += float(loss.detach())
    grads_accumulated = _grads(model)

    full = _batch(trainer, [0, 1, 2, 3])
    model.zero_grad()
    loss_full = trainer.compute_loss(
        model, dict(full), num_items_in_batch=trainer._get_num_items_in_batch([full], torch.device("cpu"))
    )
    loss_full.backward()
    grads_full = _grads(model)

    assert total == pytest.approx(float(loss_full.detach()), abs=1e-5)
    assert grads_accumulated.keys() == grads_full.keys() and grads_full
    for name in grads_full:
        torch.testing.assert_close(grads_accumulated[name], grads_full[name], rtol=1e-5, atol=1e-5, msg=name)


class _GradCapture(TrainerCallback):
    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = _grads(model)


@pytest.mark.slow
@pytest.mark.parametrize("padding_free", ["false", "true"])
def test_trainer_step_with_accumulation_matches_big_batch(tiny_models, tmp_path, rows, padding_free):
    """The whole Trainer loop: one optimizer step of 4x1 with accumulation vs 1x4 gives the same gradients,
    with padded and with padding-free batches."""
    captured = []
    for bs, ga in ((1, 4), (4, 1)):
        trainer = make_trainer(
            "specialist",
            tiny_models["llama"],
            rows,
            tmp_path / f"{bs}x{ga}",
            *SEQUENTIAL,
            "--padding_free",
            padding_free,
            "--per_device_train_batch_size",
            str(bs),
            "--gradient_accumulation_steps",
            str(ga),
            "--max_steps",
            "1",
            "--max_grad_norm",
            "0",
            "--max_length",
            "16384",
        )
        cb = _GradCapture()
        trainer.add_callback(cb)
        trainer.train()
        captured.append(cb.grads)
    acc, big = captured
    assert acc and acc.keys() == big.keys()
    for name in big:
        torch.testing.assert_close(acc[name], big[name], rtol=1e-5, atol=1e-5, msg=name)


def test_router_aux_loss_is_added_for_the_generalist(tiny_models, tmp_path, episode_with_tools):
    row = {"messages": episode_with_tools["messages"], "tools": episode_with_tools["tools"]}
    trainer = make_trainer("generalist", tiny_models["mixtral"], [row], tmp_path, *SEQUENTIAL, "--max_length", "16384")
    assert trainer.aux_loss_enabled and trainer.router_aux_loss_coef == pytest.approx(0.02)
    batch = _batch(trainer, [0])
    with torch.no_grad():
        with_aux = float(trainer.compute_loss(trainer.model, dict(batch)))
        trainer.aux_loss_enabled = False
        without = float(trainer.compute_loss(trainer.model, dict(batch)))
    assert with_aux > without


@pytest.mark.parametrize("task, loss_type", [("specialist", "nll"), ("specialist", "dft"), ("generalist", "nll")])
def test_loss_and_gradients_are_trls_own(tiny_models, tmp_path, rows, episode_with_tools, task, loss_type):
    """`token_loss` is TRL's loss, copied so that metrics stay tensors: on the same batch TRL's own
    `SFTTrainer.compute_loss` gives the same loss and gradients (accumulation's num_items_in_batch, DFT, and the
    generalist's router auxiliary loss included)."""
    from trl import SFTTrainer

    data = (
        rows
        if task == "specialist"
        else [{"messages": episode_with_tools["messages"], "tools": episode_with_tools["tools"]}] * 2
    )
    trainer = make_trainer(
        task,
        tiny_models["llama" if task == "specialist" else "mixtral"],
        data,
        tmp_path,
        *SEQUENTIAL,
        "--max_length",
        "16384",
        "--loss_type",
        loss_type,
        "--lora_dropout",
        "0.0",
    )
    model = trainer.model.train()
    batch = _batch(trainer, [0, 1])
    n_items = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    trainer.current_gradient_accumulation_steps = 2  # as inside an accumulated step
    results = []
    for compute in (trainer.compute_loss, lambda *a, **k: SFTTrainer.compute_loss(trainer, *a, **k)):
        model.zero_grad()
        loss = compute(model, dict(batch), num_items_in_batch=n_items)
        loss.backward()
        results.append((float(loss.detach()), _grads(model)))
    (ours, ours_grads), (trl, trl_grads) = results
    assert ours == pytest.approx(trl, rel=1e-6) and ours_grads.keys() == trl_grads.keys() and ours_grads
    for name in trl_grads:
        torch.testing.assert_close(ours_grads[name], trl_grads[name], rtol=1e-6, atol=1e-7, msg=name)
    assert trainer.aux_loss_enabled == (task == "generalist")

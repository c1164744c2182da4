"""Non-finite numbers never become a model: the training guard stops (or skips) a NaN step naming it, never saves
non-finite weights, warns when the loss explodes; evaluate, quantize and push refuse NaN models."""

import logging
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file
from transformers import TrainerControl, TrainerState

from helpers import ROOT, make_trainer
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.tasks.split import specialist_examples
from secml_recipes.train.guards import (
    NonFiniteError,
    NonFiniteGuard,
    NonFiniteModelError,
    nonfinite_tensors,
    refuse_nonfinite_model,
)


def _guard(tmp_path, **kwargs):
    trainer = SimpleNamespace(args=SimpleNamespace(output_dir=str(tmp_path), learning_rate=1e3))
    return NonFiniteGuard(trainer, **kwargs)


def _state(step):
    state = TrainerState()
    state.global_step = step
    return state


def test_a_nan_gradient_stops_the_run_naming_the_step_before_the_update(tmp_path):
    guard = _guard(tmp_path)
    guard.record_grad_norm(torch.tensor(float("nan")))
    with pytest.raises(NonFiniteError, match=r"training stopped at step 7: the gradient norm is nan .*no checkpoint"):
        guard.on_pre_optimizer_step(None, _state(6), TrainerControl(), optimizer=None)


def test_the_skip_budget_skips_updates_then_stops(tmp_path):
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([param], lr=1.0)
    guard = _guard(tmp_path, skip_budget=1)
    param.grad = torch.full((2,), float("inf"))
    guard.record_grad_norm(torch.tensor(float("inf")))
    guard.on_pre_optimizer_step(None, _state(2), TrainerControl(), optimizer=optimizer)
    optimizer.step()
    assert param.grad is None and torch.equal(param.detach(), torch.ones(2))  # the update was skipped
    guard.record_grad_norm(torch.tensor(float("nan")))
    with pytest.raises(NonFiniteError, match=r"step 5: .* after skipping steps \[3\] \(nonfinite_skip_steps=1\)"):
        guard.on_pre_optimizer_step(None, _state(4), TrainerControl(), optimizer=optimizer)


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    control = TrainerControl(should_save=True)
    with pytest.raises(NonFiniteError, match=r"weights became non-finite \(weight\)"):
        _guard(tmp_path).on_step_end(None, _state(3), control, model=model)


def test_a_loss_explosion_warns_once(tmp_path, caplog):
    guard = _guard(tmp_path)
    args = SimpleNamespace(learning_rate=1e3)
    with caplog.at_level(logging.WARNING, logger="secml_recipes.train.guards"):
        for step, loss in enumerate([7.0, 7.1, 6.9, 7.2, 7.0, 8.0, 2.6e7, 3e7], 1):
            guard.on_log(args, _state(step), TrainerControl(), logs={"loss": loss})
        second = _guard(tmp_path)  # a learning rate of 1e3 diverges at the second step
        for step, loss in enumerate([7.17, 2.4e7, 7.15], 1):
            second.on_log(args, _state(step), TrainerControl(), logs={"loss": loss})
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings[1].startswith("step 2: loss 2.4e+07 is") and len(warnings) == 2
    warnings = warnings[:1]
    assert len(warnings) == 1 and warnings[0].startswith("step 7: loss 2.6e+07 is") and "early median 7" in warnings[0]


def test_saved_nan_weights_are_found_and_refused(tmp_path):
    save_file({"a": torch.ones(3), "b": torch.tensor([1.0, float("inf")])}, str(tmp_path / "model.safetensors"))
    assert nonfinite_tensors(tmp_path) == ["model.safetensors:b"]
    with pytest.raises(NonFiniteModelError, match="quantize: .* non-finite"):
        refuse_nonfinite_model(tmp_path, "quantize")


def test_evaluate_and_quantize_refuse_a_nan_model_before_loading_it(tmp_path, capsys):
    from secml_recipes.deploy import quantize
    from secml_recipes.evaluation import evaluate

    model = tmp_path / "specialist_model"
    model.mkdir()
    save_file({"w": torch.tensor([float("nan")])}, str(model / "model.safetensors"))
    assert evaluate.main([str(ROOT / "recipes/tiny/eval-specialist.yaml"), "--model", str(model)]) == 2
    assert "evaluate: " in capsys.readouterr().err
    spec = quantize.ModelQuantSpec(name="specialist", source=str(model), task="specialist")
    with pytest.raises(NonFiniteModelError, match="quantize: "):
        quantize.quantize_model(spec, quantize.QuantizeArguments())


def test_a_poisoned_step_stops_real_training_and_saves_nothing(tiny_models, tmp_path):
    rows = [
        {k: r[k] for k in ("prompt", "completion")} for r in specialist_examples(next(real_reports()), "fx", 1500)[:2]
    ]
    trainer = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path,
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "1",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
    )
    compute_loss = trainer.compute_loss

    def poisoned(*args, **kwargs):
        loss = compute_loss(*args, **kwargs)
        return loss * float("nan") if trainer.state.global_step == 1 else loss

    trainer.compute_loss = poisoned
    with pytest.raises(
        NonFiniteError, match="training stopped at step 2: the gradient norm is nan.*checkpoint-1, is intact"
    ):
        trainer.train()
    out = tmp_path / "out-specialist"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint-1"]

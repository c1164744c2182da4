"""Non-finite numbers never become a model: the training guard, and the check every later stage makes.

`NonFiniteGuard` is a `TrainerCallback` the trainers add. Before each optimizer step it reads the gradient norm the
Trainer has just computed (one scalar; on XLA only at logging and saving steps, where the Trainer synchronises
anyway). A non-finite norm (a NaN or infinite loss always gives one) either skips that update, while the recipe's
`nonfinite_skip_steps` budget lasts, or stops the run with `NonFiniteError` naming the step, before the optimizer
applies it. Before every checkpoint it checks the trainable weights: non-finite weights are never saved. It also
warns once when a logged loss climbs above `loss_explosion_factor` times the median of the first logs before it (a
learning rate too high diverges long before it overflows, often from the second step).

`nonfinite_tensors(folder)` reads saved safetensors weights; evaluate, quantize and push refuse a model with any
non-finite weight (`NonFiniteModelError`, one line naming the folder and the first tensors).
"""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path

from transformers import TrainerCallback

from secml_recipes.train.checkpoints import newest_complete_checkpoint

logger = logging.getLogger(__name__)
EARLY_LOGS = 5  # logged losses that make the reference median of the loss-explosion warning


class NonFiniteError(RuntimeError):
    """Training met a non-finite loss, gradient or weight; nothing from that step on was saved."""


class NonFiniteModelError(ValueError):
    """A saved model holds NaN or infinite weights: it is refused by evaluate, quantize and push."""


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def nonfinite_parameters(model, trainable_only: bool = True) -> list[str]:
    """Names of the (trainable) parameters holding a NaN or an infinity; one synchronisation for all of them."""
    # lazy: the torch stack loads only when a model is touched
    import torch

    named = [
        (n, p) for n, p in model.named_parameters() if p.is_floating_point() and (p.requires_grad or not trainable_only)
    ]
    if not named:
        return []
    local = [p.to_local() if hasattr(p, "to_local") else p for _, p in named]  # a DTensor shard under FSDP2
    flags = torch.stack([torch.isfinite(t.detach()).all() for t in local]).cpu().tolist()
    return [name for (name, _), ok in zip(named, flags) if not ok]


def nonfinite_tensors(folder: str | Path, limit: int = 5) -> list[str]:
    """Up to `limit` names of non-finite tensors in the safetensors files of `folder` (or one file)."""
    # lazy: the torch stack loads only when a model is touched
    import torch
    from safetensors import safe_open

    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(folder.glob("*.safetensors"))
    bad: list[str] = []
    for path in files:
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
                tensor = fh.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    bad.append(f"{path.name}:{key}")
                    if len(bad) >= limit:
                        return bad
    return bad


def refuse_nonfinite_model(folder: str | Path, stage: str) -> None:
    """`stage` (evaluate, quantize, push) refuses a local model whose saved weights are not all finite."""
    folder = Path(folder)
    if not folder.exists():
        return
    try:
        bad = nonfinite_tensors(folder)
    except Exception as err:  # a file safetensors cannot read is no model to publish either
        raise NonFiniteModelError(f"{stage}: {folder}: weights are not readable safetensors ({err})") from None
    if bad:
        raise NonFiniteModelError(
            f"{stage}: {folder} has non-finite (NaN/inf) weights ({', '.join(bad)}): the training run diverged; "
            "retrain with a lower learning_rate (the run's checkpoints before the divergence can resume)"
        )


class NonFiniteGuard(TrainerCallback):
    """Stops (or skips, within a budget) a step whose gradient norm is not finite; never lets non-finite weights
    reach a checkpoint; warns when the loss explodes. `record_grad_norm` is fed by the trainer."""

    def __init__(self, trainer, skip_budget: int = 0, explosion_factor: float = 10.0, per_step: bool = True):
        self.trainer, self.skip_budget, self.explosion_factor, self.per_step = (
            trainer,
            skip_budget,
            explosion_factor,
            per_step,
        )
        self.skipped: list[int] = []
        self.early: list[float] = []
        self.warned = False
        self._grad_norm = None

    def record_grad_norm(self, grad_norm) -> None:
        self._grad_norm = grad_norm

    # --- the checks -------------------------------------------------------------------------------------------

    def _stop(self, step: int, what: str) -> None:
        last = newest_complete_checkpoint(self.trainer.args.output_dir, set_aside=False).checkpoint
        resume = f"the newest checkpoint, {last.name}, is intact" if last else "no checkpoint was saved"
        skipped = (
            f" after skipping steps {self.skipped} (nonfinite_skip_steps={self.skip_budget})" if self.skipped else ""
        )
        raise NonFiniteError(
            f"training stopped at step {step}: {what}{skipped}; no weights from this step on were saved ({resume}); "
            f"lower learning_rate (now {self.trainer.args.learning_rate:g}) or check the data"
        )

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if not self.per_step or self._grad_norm is None:
            return
        norm, self._grad_norm = float(self._grad_norm), None
        if math.isfinite(norm):
            return
        if len(self.skipped) < self.skip_budget and optimizer is not None:
            optimizer.zero_grad(set_to_none=True)  # the optimizer leaves parameters without a gradient alone
            self.skipped.append(state.global_step + 1)
            logger.warning(
                "step %d: gradient norm %s, update skipped (%d of nonfinite_skip_steps=%d)",
                state.global_step + 1,
                norm,
                len(self.skipped),
                self.skip_budget,
            )
            return
        self._stop(state.global_step + 1, f"the gradient norm is {norm} (a NaN or infinite loss or gradient)")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.per_step and self._grad_norm is not None and (control.should_log or control.should_save):
            norm, self._grad_norm = float(self._grad_norm), None
            if not math.isfinite(norm):
                self._stop(state.global_step, f"the gradient norm is {norm}")
        if control.should_save and model is not None:
            self.check_weights(state, model)

    def check_weights(self, state, model) -> None:
        """Raise `NonFiniteError` when a trainable weight is NaN/inf (before a checkpoint or the final save)."""
        # lazy: the torch stack loads only when a model is touched
        import torch

        bad = nonfinite_parameters(model)
        accelerator = getattr(self.trainer, "accelerator", None)
        count = torch.tensor(float(len(bad)))
        if accelerator is not None and accelerator.num_processes > 1:  # every process stops together
            count = accelerator.reduce(count.to(accelerator.device), "sum").cpu()
        if count.item():
            names = ", ".join(bad[:3]) or "on another process"
            self._stop(state.global_step, f"weights became non-finite ({names})")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is None:
            return
        if not _finite(loss):
            self._stop(state.global_step, f"the logged loss is {loss}")
        loss = float(loss)
        if self.early and self.explosion_factor and not self.warned:
            reference = statistics.median(self.early)
            if reference > 0 and loss > self.explosion_factor * reference:
                self.warned = True
                logger.warning(
                    "step %d: loss %.4g is %.0fx its early median %.4g (loss_explosion_factor=%g): the run is "
                    "diverging; lower learning_rate (now %g) or raise warmup",
                    state.global_step,
                    loss,
                    loss / reference,
                    reference,
                    self.explosion_factor,
                    args.learning_rate,
                )
                return
        if len(self.early) < EARLY_LOGS:
            self.early.append(loss)

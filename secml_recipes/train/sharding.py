"""Sharded training through accelerate's and transformers' own backends, and a final model that loads.

- FSDP2 (GPUs, `accelerate_configs/fsdp*.yaml`): checkpoints stay sharded (`SHARDED_STATE_DICT`, one DCP shard per
  rank, resumable, 8-bit optimizer state included); the final model is gathered once into full safetensors, or
  the LoRA adapter, through accelerate's documented switch to `FULL_STATE_DICT` for the last save.
- TPU: an FSDP accelerate config on a TPU host (`accelerate_configs/tpu_fsdp.yaml`) runs as XLA SPMD FSDPv2,
  transformers' `fsdp_config: {xla: true, xla_fsdp_v2: true}` over every chip of the host, one process per host.
  Two gaps of transformers 5.24 in that path are closed here: it never creates the optimizer (it delays it for XLA
  FSDP and then prepares `None`), and its output-sharding hook knows logits only, not TRL's fused LM-head outputs.
  Its saving writes the wrapper's state dict as `pytorch_model.bin`; the final model is saved from the unwrapped
  model instead.
"""

from __future__ import annotations

import logging
import os

from secml_recipes.train.machine import detect_machine, torch_xla_installed

logger = logging.getLogger(__name__)


def xla_fsdp_requested() -> bool:
    """An FSDP accelerate config launched on an XLA device (accelerate itself turns FSDP on for GPUs only)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or not os.environ.get("PJRT_DEVICE"):
        return False
    return torch_xla_installed()  # not detect_machine(): that touches the device, which SPMD must precede


def launch_settings(resolved: dict) -> dict:
    """Recipe values that follow from the launch, not the recipe: XLA SPMD FSDPv2 on a TPU host. SPMD must be on
    before anything touches the device, so this runs before the recipe's dataclasses are built."""
    if not xla_fsdp_requested():
        return resolved
    import torch_xla.runtime as xr  # lazy: optional TPU dependency, importing it starts the XLA runtime
    from trl import SFTConfig  # lazy: seconds to import, only needed on a TPU host

    xr.use_spmd()
    devices = detect_machine().device_count  # the first probe of the machine, now that SPMD is on
    defaults = SFTConfig.__dataclass_fields__
    settings = dict(resolved)
    fsdp_config = {"xla": True, "xla_fsdp_v2": True}
    layer_classes = os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP")
    if layer_classes:
        fsdp_config["transformer_layer_cls_to_wrap"] = layer_classes.split(",")
    settings.update(fsdp=True, fsdp_config=fsdp_config)
    # One process feeds every device and FSDPv2 splits each batch's rows over them: feed devices x rows so that
    # `per_device_*_batch_size` keeps its meaning (and the recipe's batch per update).
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        settings[key] = resolved.get(key, defaults[key].default) * devices
    logger.info(
        "XLA SPMD FSDPv2 over %d devices: %s rows per step (%s per device)",
        devices,
        settings["per_device_train_batch_size"],
        settings["per_device_train_batch_size"] // devices,
    )
    return settings


def _shard_fused_output(output, mesh) -> None:
    """FSDPv2's output hook for TRL's fused LM head: per-token outputs, batch dimension over the `fsdp` axis."""
    # lazy: the torch stack loads only when a model is touched
    import torch
    import torch_xla.distributed.spmd as xs

    tensor = output if isinstance(output, torch.Tensor) else getattr(output, "log_probs", None)
    if tensor is None:
        tensor = output.logits if getattr(output, "logits", None) is not None else output[0]
    xs.mark_sharding(tensor, mesh, ("fsdp",) + (None,) * (tensor.dim() - 1))


def finish_xla_fsdp_v2(trainer, wrapped) -> None:
    """After transformers wrapped the model in FSDPv2: shard TRL's outputs, and create the optimizer it skipped."""
    wrapped._shard_output = _shard_fused_output
    if trainer.optimizer is None:
        trainer.create_optimizer(wrapped)


def save_final_model(trainer, output_dir: str) -> None:
    """The trained model (or adapter) in `output_dir` as safetensors that `from_pretrained` loads, whatever the
    sharding. Every rank must call it (gathering is collective); only the main process writes."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if trainer.is_fsdp_enabled and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        plugin.set_state_dict_type("FULL_STATE_DICT")  # checkpoints stayed sharded; the final model is whole
        trainer.save_model(output_dir)
        return
    if getattr(trainer, "is_fsdp_xla_v2_enabled", False):
        # lazy: only on TPU (torch_xla)
        import torch_xla.core.xla_model as xm
        from accelerate.utils import extract_model_from_parallel

        # accelerate's recursive unwrap puts the original decoder layers back in place of their FSDPv2 wrappers (the
        # parameters keep their sharding, so evaluation still runs sharded), giving the names from_pretrained and
        # PEFT expect.
        model = extract_model_from_parallel(trainer.model_wrapped, recursive=True)
        state = xm._maybe_convert_to_cpu(model.state_dict())  # SPMD tensors come back whole
        if trainer.accelerator.is_main_process:
            model.save_pretrained(output_dir, state_dict=state)
        return
    trainer.save_model(output_dir)

"""What the machine offers a Hugging Face Trainer, shared by fine-tuning and pre-training: the
device, mixed precision and the DDP backend.

Precision ``auto`` picks bf16 on a CUDA GPU that supports it (fp16 on an older one) and bf16 on a
CPU with native bf16 matrix units (Intel AMX: about 2x the fp32 speed for BERT training on 2
cores); plain fp32 elsewhere. Weights stay fp32 either way (autocast). Results are reproducible
on the same kind of machine; a machine that resolves ``auto`` differently trains a different
(equally good) model from the same seed.
"""

from __future__ import annotations

import os

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX tiles)."""
    import torch

    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_precision(choice: str) -> str:
    """``auto`` made concrete for this machine: "bf16", "fp16" or "fp32"."""
    import torch

    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16_units() else "fp32"


def device_name() -> str:
    """The device training runs on, for model cards: the GPU's name, or the CPU threads."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU, {torch.get_num_threads()} threads" + (", AMX bf16" if cpu_has_bf16_units() else "")


def trainer_device_arguments(precision: str) -> dict:
    """TrainingArguments keys for the device, precision and distributed backend."""
    import torch

    cuda = torch.cuda.is_available()
    resolved = resolve_precision(precision)
    if resolved == "fp16" and not cuda:
        raise ValueError("fp16 training needs a CUDA GPU; use bf16 or fp32 on a CPU")
    return {
        "bf16": resolved == "bf16",
        "fp16": resolved == "fp16",
        # torchrun on CPU: gloo (the default, nccl, needs GPUs); naming a backend outside torchrun fails.
        "ddp_backend": "gloo" if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        # Without it, accelerate leaves a CPU torchrun process undistributed: each rank would train alone.
        "use_cpu": not cuda,
        # On a GPU, batches are made by worker processes: pre-training's whole-word masking runs in Python
        # per sequence and would keep the GPU waiting. On a CPU the cores are busy with the model.
        "dataloader_num_workers": min(8, (os.cpu_count() or 1) // 2) if cuda else 0,
        "dataloader_pin_memory": cuda,
    }

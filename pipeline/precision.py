"""How the models compute: bfloat16 autocast or float32 (run.precision), and the memory
layout of their convolutions.

Under "bf16" the models' forward passes run in bfloat16 where autocast allows it (oneDNN's bf16
convolutions and matmuls on CPUs with AVX-512 bf16, tensor cores on GPUs since Ampere); what
comes after a model (softDTW's costs, the losses, softmax) runs in float32 or float64 inside
`full_precision`, since softDTW with gamma 0.001 and a 0.1 temperature would read bfloat16's
three significant digits as noise. bfloat16 keeps float32's exponent range, so no loss
scaling is needed. "fp32" runs everything in float32.

Convolution weights are stored channels-last whatever the precision: the same arithmetic,
about 1.2-1.4x faster with oneDNN (docs/benchmarks.md).
"""

from contextlib import AbstractContextManager

import torch
from torch import nn


def model_autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The context a model's forward pass runs in."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def full_precision(device: torch.device) -> AbstractContextManager:
    """Autocast off, for what follows a model inside an autocast region."""
    return torch.autocast(device.type, enabled=False)


def channels_last(module: nn.Module) -> nn.Module:
    """Store `module`'s 2-d (4-dim weights) and 3-d (5-dim) convolution weights channels-last,
    in place; returns the module."""
    for parameter in module.parameters():
        if parameter.dim() == 4:
            parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)
        elif parameter.dim() == 5:
            parameter.data = parameter.data.contiguous(memory_format=torch.channels_last_3d)
    return module

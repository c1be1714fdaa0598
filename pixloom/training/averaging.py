"""Weight averaging for the Trainer: an exponential moving average of the weights (Polyak and
Juditsky 1992, "Acceleration of stochastic approximation by averaging"), as PixelCNN++ (Salimans et
al. 2017) used for its likelihoods.

The average lives beside the trained model (torch's ``AveragedModel`` with an EMA update); the
Trainer validates, picks and saves the averaged weights, while the optimiser keeps stepping the raw
ones. Buffers (masks, constant filterbanks, frozen batch-norm statistics) are copied from the raw
model rather than averaged.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pixloom.errors import PixloomError


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise PixloomError(f"--ema must lie strictly between 0 and 1 (e.g. 0.999), got {decay}")
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))

    def update(self, model: torch.nn.Module) -> None:
        """Fold the model's current weights into the average (the first call copies them)."""
        self.averaged.update_parameters(model)

    def model(self, source: torch.nn.Module) -> torch.nn.Module:
        """The averaged model, with ``source``'s buffers, ready to validate or save."""
        if int(self.averaged.n_averaged) == 0:
            self.update(source)
        with torch.no_grad():
            for mine, theirs in zip(self.averaged.module.buffers(), source.buffers()):
                mine.copy_(theirs)
        return self.averaged.module

    def state_tensors(self) -> dict[str, torch.Tensor]:
        # Cloned so that tied weights become separate tensors, as safetensors requires.
        return {k: v.detach().clone().contiguous() for k, v in self.averaged.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.averaged.load_state_dict(tensors)

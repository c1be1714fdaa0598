"""Differentially private training (DP-SGD; Abadi et al. 2016) through Opacus.

The shared Trainer with its batching and its step overridden:

- Poisson sampling: at every step each training example joins the batch independently with
  probability q = batch_size / N (the sampling the privacy analysis assumes), drawn from a generator
  seeded with (seed, step), so a resumed run draws the same batches;
- per-example gradients (Opacus' ``GradSampleModule``; torch's fused LSTM/GRU/RNN layers are swapped
  for Opacus' ``DPLSTM``/``DPGRU``/``DPRNN``, which hold the same weights under the same names), each
  clipped to ``max_grad_norm``, summed, and Gaussian noise of ``noise_multiplier * max_grad_norm`` added
  (Opacus' ``DPOptimizer``);
- the RDP accountant (Mironov 2017; Opacus' ``RDPAccountant``) counts every step; the noise multiplier
  is the smallest that keeps the planned steps within the target epsilon at the target delta, and a
  step that would take the spent epsilon past the target is not taken. The accountant's history is in
  every checkpoint, so a resumed run reports what an uninterrupted one does.

A model that mixes examples within a batch (batch normalisation), or a layer Opacus cannot compute
per-example gradients for, is refused with one line before any training.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from torch import nn

from pixloom.errors import ArgumentError, PixloomError
from pixloom.io import atomic_write_text
from pixloom.training.trainer import Trainer

PRIVACY_EXTRA = 'pip install "pixloom[privacy]"'
# Opacus' notices that do not concern a user: the RDP orders (the bound is still valid) and a hook detail.
warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with respect to module outputs")


def _opacus():
    try:
        import opacus  # noqa: F401
    except ImportError:
        raise PixloomError(f"private training needs Opacus: {PRIVACY_EXTRA}") from None


def swap_recurrent_layers(model: nn.Module) -> int:
    """Replace every ``nn.LSTM``/``nn.GRU``/``nn.RNN`` of ``model`` by Opacus' DP layer with the same
    configuration and weights; returns how many were replaced."""
    from opacus.layers import DPGRU, DPLSTM, DPRNN

    kinds = {nn.LSTM: DPLSTM, nn.GRU: DPGRU, nn.RNN: DPRNN}
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            kind = kinds.get(type(child))
            if kind is None:
                continue
            options = dict(input_size=child.input_size, hidden_size=child.hidden_size, num_layers=child.num_layers,
                           bias=child.bias, batch_first=child.batch_first, dropout=child.dropout,
                           bidirectional=child.bidirectional)
            if kind is DPRNN:
                options["nonlinearity"] = child.nonlinearity
            replacement = kind(**options).to(next(child.parameters()).device)
            replacement.load_state_dict(child.state_dict())
            setattr(parent, name, replacement)
            swapped += 1
    return swapped


def check_privatizable(model: nn.Module) -> None:
    """One-line refusal for a model DP-SGD cannot train correctly."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        first = str(errors[0]).split(".")[0]
        raise PixloomError(f"{getattr(model, 'name', type(model).__name__)} cannot be trained privately: {first}")


def privacy_statement(privacy: dict) -> str:
    """A model's privacy guarantee in words (its README says it; config.json holds the figures)."""
    return (f"Trained with differential privacy: {privacy['mechanism']}. The saved weights are "
            f"({privacy['epsilon_spent']:.3g}, {privacy['delta']:g})-differentially private with respect to the "
            f"training examples (target epsilon {privacy['target_epsilon']:g}; each example's gradient clipped to "
            f"norm {privacy['max_grad_norm']:g}, noise multiplier {privacy['noise_multiplier']:.4g}, sampling rate "
            f"{privacy['sample_rate']:.4g}). Validation data, used to pick the saved model, is not covered.")


class PrivateTrainer(Trainer):
    """DP-SGD with Poisson sampling and the RDP accountant; ``privacy`` holds ``epsilon`` (the target),
    ``delta`` and ``max_grad_norm``."""

    def __init__(self, model, train_data, valid_data, config, run_dir, run_info=None, privacy: dict | None = None,
                 **kwargs):
        _opacus()
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier

        privacy = dict(privacy or {})
        self.target_epsilon = float(privacy["epsilon"])
        self.delta = float(privacy.get("delta") or 1e-5)
        self.max_grad_norm = float(privacy.get("max_grad_norm") or 1.0)
        for name, value, low in (("dp_epsilon", self.target_epsilon, 0), ("dp_delta", self.delta, 0),
                                 ("dp_max_grad_norm", self.max_grad_norm, 0)):
            if not (math.isfinite(value) and value > low):
                raise ArgumentError(name, f"must be a finite number above {low}, got {value}")
        if self.delta >= 1:
            raise ArgumentError("dp_delta", f"must be below 1 (1e-5 is usual; below 1/N), got {self.delta}")
        model.train()  # Opacus checks the model in training mode (a resumed run's is loaded in eval mode)
        swap_recurrent_layers(model)
        check_privatizable(model)
        if config.grad_clip:  # per-example clipping replaces the global clip
            import dataclasses

            config = dataclasses.replace(config, grad_clip=0.0)
        super().__init__(model, train_data, valid_data, config, run_dir, run_info=run_info, **kwargs)
        if self.world.distributed:
            raise PixloomError("private training runs in one process; start it without torchrun")
        n = len(train_data)
        if self.delta >= 1 / n:
            run_info = self.run_info
            run_info.setdefault("privacy_notes", []).append(
                f"delta {self.delta:g} is not below 1/N = {1 / n:.2g}: the guarantee is weak")
        self.sample_rate = min(1.0, config.batch_size / n)
        try:
            self.noise_multiplier = get_noise_multiplier(target_epsilon=self.target_epsilon, target_delta=self.delta,
                                                         sample_rate=self.sample_rate, steps=max(1, self.total_steps),
                                                         accountant="rdp")
        except ValueError as exc:
            raise ArgumentError("dp_epsilon", f"cannot be met with these settings ({exc})") from None
        self.accountant = RDPAccountant()
        self.counters.setdefault("dp_history", [])
        self.private = self._wrap()
        self.run_info["privacy"] = self.description()

    def _wrap(self):
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        try:
            self.grad_sample = GradSampleModule(self.model, loss_reduction="mean")
        except (NotImplementedError, ValueError, TypeError):
            raise PixloomError(f"{self.model.name} cannot be trained privately: Opacus cannot compute per-example "
                               "gradients of all its layers (custom layers such as masked convolutions or the "
                               "spatial LSTMs are not supported)") from None
        optimizer = self.optimizers["model"]
        private = DPOptimizer(optimizer, noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
                              expected_batch_size=self.config.batch_size, loss_reduction="mean")
        self.optimizers["model"] = private
        self.schedulers = {name: self.make_scheduler(opt) for name, opt in self.optimizers.items()}
        return private

    def description(self) -> dict:
        return {"trained_privately": True, "mechanism": "DP-SGD (Opacus), Poisson sampling, RDP accountant",
                "target_epsilon": self.target_epsilon, "delta": self.delta, "max_grad_norm": self.max_grad_norm,
                "noise_multiplier": round(self.noise_multiplier, 6), "sample_rate": self.sample_rate,
                "epsilon_spent": round(self.epsilon(), 6)}

    # -- accounting ----------------------------------------------------------------------------------------
    def _history(self, extra_steps: int = 0) -> list:
        history = [tuple(h) for h in self.counters.get("dp_history", [])]
        if extra_steps:
            history.append((self.noise_multiplier, self.sample_rate, extra_steps))
        return history

    def epsilon(self, extra_steps: int = 0) -> float:
        history = self._history(extra_steps)
        if not history:
            return 0.0
        self.accountant.history = history
        return float(self.accountant.get_epsilon(self.delta))

    def _count_step(self) -> None:
        history = self.counters.setdefault("dp_history", [])
        if history and history[-1][0] == self.noise_multiplier and history[-1][1] == self.sample_rate:
            history[-1] = [self.noise_multiplier, self.sample_rate, history[-1][2] + 1]
        else:
            history.append([self.noise_multiplier, self.sample_rate, 1])

    def validate(self) -> dict[str, float]:
        figures = super().validate()
        figures["epsilon"] = self.epsilon()  # spent so far: metrics.csv's valid_epsilon
        return figures

    def save_best(self) -> None:
        model = self.evaluated_model()
        model.provenance["privacy"] = self.description()
        model.save_pretrained(self.run_dir)
        atomic_write_text(Path(self.run_dir) / "README.md", f"# {model.name} ({Path(self.run_dir).name})\n\n"
                          + privacy_statement(model.provenance["privacy"]) + "\n")

    # -- batching and the step -------------------------------------------------------------------------------
    def batch_indices(self, order: torch.Tensor, index_in_epoch: int) -> torch.Tensor:
        """Poisson sampling: each example with probability q, from a generator seeded by (seed, step)."""
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + 7 + self.counters["global_step"])
        chosen = torch.rand(len(self.train_data), generator=generator) < self.sample_rate
        return chosen.nonzero()[:, 0]

    def budget_left(self) -> bool:
        return self.epsilon(extra_steps=1) <= self.target_epsilon

    def train_step(self, batch: dict) -> dict[str, float]:
        self.model.train()
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        out = self.model.loss(batch)
        loss = out["loss"]
        self.check_finite(loss)
        loss.backward()
        self.optimizer_step(optimizer)
        self._count_step()
        self.schedulers["model"].step()
        figures = {k: float(v.detach()) for k, v in out.items()}
        figures["epsilon"] = self.epsilon()
        return figures

"""GAN training: the shared Trainer with only its step (and its optimizers) overridden.

Each step is one discriminator (critic) update on a batch of real images; every ``critic_steps``-th
step the generator is updated too. Two Adam optimizers (betas (0.5, 0.999) for the non-saturating
loss as DCGAN, (0.0, 0.9) for WGAN-GP as Gulrajani et al.), each with the run's warm-up and cosine
schedule; checkpoints keep both, so a resumed GAN run continues exactly like any other.
"""

from __future__ import annotations

import warnings

from pixloom.errors import PixloomError
from pixloom.training.trainer import Trainer



class GANTrainer(Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.world.distributed:
            raise PixloomError("GAN training runs in one process; start it without torchrun")
        self.critic_steps = self.model.config.critic_steps

    def _final_warnings(self) -> None:
        """A GAN's losses do not say how good it is (the monitor's figures do): no loss warnings."""

    def make_optimizers(self):
        import torch

        betas = (0.0, 0.9) if self.model.config.loss == "wgan-gp" else (0.5, 0.999)
        lr = self.config.lr
        d_lr = lr * self.model.config.d_lr_ratio
        return {"generator": torch.optim.Adam(self.model.generator_parameters(), lr=lr, betas=betas),
                "discriminator": torch.optim.Adam(self.model.discriminator_parameters(), lr=d_lr, betas=betas)}

    def train_step(self, batch: dict) -> dict[str, float]:
        import torch

        self.model.train()
        d_opt, g_opt = self.optimizers["discriminator"], self.optimizers["generator"]
        d_opt.zero_grad(set_to_none=True)
        d = self.model.discriminator_loss(batch)
        self.check_finite(d["d_loss"])
        d["d_loss"].backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.discriminator_parameters(), self.config.grad_clip)
        self.optimizer_step(d_opt)
        figures = {k: float(v.detach()) for k, v in d.items()}
        if (self.counters["global_step"] + 1) % self.critic_steps == 0:
            g_opt.zero_grad(set_to_none=True)
            g = self.model.generator_loss(batch)
            self.check_finite(g["g_loss"])
            g["g_loss"].backward()
            if self.config.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.generator_parameters(), self.config.grad_clip)
            self.optimizer_step(g_opt)
            self.last_g_loss = float(g["g_loss"].detach())
        with warnings.catch_warnings():  # with critic steps the generator's schedule may advance before its
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")  # first update
            for scheduler in self.schedulers.values():
                scheduler.step()
        figures["g_loss"] = getattr(self, "last_g_loss", 0.0)  # the latest generator loss
        figures["loss"] = figures["d_loss"]
        return figures

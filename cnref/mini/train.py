"""Lightning training: pretraining of the mini SD base, and ControlNet training (Eq. 3).

Every batch and every random draw is a pure function of (seed, global step), so an interrupted run
resumes from its last checkpoint and continues exactly as if it had never stopped.

The step loader, the trainer's set-up, its progress bar and checkpoint handling are in `cnref.mini.engine`.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch

from .base import MiniSD
from ..checks import check_positive, fail
from ..paper.controlnet import set_gradient_checkpointing, unlock_decoder
from ..successors.controlnext import unlock_attention_out
from .data import TRAIN_SEED, dataset, to_uint8
from .data.io import Fill50KFolder
from .ema import EMA
from .engine import (check_step, controlnet_optimizer, last_checkpoint, plateaued, quiet_lightning, step_generator,
                     step_loader, trainer_kwargs, validates_at, warmup_cosine)
from ..paper.loss import curriculum_floor, eq3_loss
from .metrics import fidelity_fn, summarize
from .probe import gate, probe_inputs, readable, readout
from .presets import BaseTrainConfig, ControlNetTrainConfig, check_run, preset
from ..provenance import provenance
from .shipping import SHIPPED_MAX_BYTES, load_base, save_base
from .use import condition_use
from .validation import run_dataset, validation_images, validation_inputs


# --------------------------------------------------------------------------------------- base model
class BasePretraining(L.LightningModule):
    """Trains the mini SD (UNet + text encoder jointly) with Eq. 3 on a procedural set (Fill50K or Scenes)."""

    def __init__(self, cfg: BaseTrainConfig):
        super().__init__()
        self.cfg = cfg
        self.base_cfg = preset(cfg.preset, cfg.data).base
        self.model = MiniSD(self.base_cfg)
        self.ema = EMA(self.model, cfg.ema_decay)
        # the base never sees conditions: rendering them at cond_factor 1 leaves the images as they are
        self.data = dataset(cfg.data, size=self.base_cfg.size, cond_factor=1, seed=TRAIN_SEED)

    def training_step(self, batch, _):
        step, cfg = self.global_step, self.cfg
        b, = check_step(batch, step)
        unet = self.model.unet
        loss = eq3_loss(lambda z_t, t, c_t: unet(z_t, t, c_t).sample, self.model.encode_prompt,
                        b["image"].to(self.device), b["prompt"], self.model.alpha_bar,
                        prompt_dropout=cfg.prompt_dropout, offset_noise=self.base_cfg.offset_noise,
                        generator=step_generator(cfg.seed, step))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, *_):
        self.ema.update(self.model, self.global_step)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_cosine(self.cfg.warmup, self.cfg.steps, self.cfg.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def train_dataloader(self):
        return step_loader(self, self.data, self.cfg.batch_size)


def pretrain_base(cfg: BaseTrainConfig, run_dir: Path, weights: Path) -> Path:
    """Train (or resume) the base, then write its EMA weights to `weights` with provenance: float32 in
    `run_dir`, and at `weights` compacted to the shipped size limit where float32 would not fit."""
    check_positive("steps", cfg.steps, integer=True)
    L.seed_everything(cfg.seed, workers=False, verbose=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    module = BasePretraining(cfg)
    with quiet_lightning():
        trainer = L.Trainer(**trainer_kwargs(run_dir, cfg.steps, cfg.ckpt_every))
        trainer.fit(module, ckpt_path=last_checkpoint(run_dir))
    prov = provenance(config=asdict(cfg), steps_done=trainer.global_step)
    save_base(module.ema.shadow, run_dir / "ema_float32.safetensors", meta={"provenance": json.dumps(prov)})
    save_base(module.ema.shadow, weights, meta={"provenance": json.dumps(prov)}, max_bytes=SHIPPED_MAX_BYTES)
    (run_dir / "provenance.json").write_text(json.dumps(prov, indent=2))
    return weights


# ----------------------------------------------------------------------------------- ControlNet
class ControlNetTraining(L.LightningModule):
    """Eq. 3 with a locked mini SD and a trainable control (the ControlNet, or any design of the control protocol:
    cnref.successors); validation by sampling + re-detection."""

    def __init__(self, cfg: ControlNetTrainConfig, base: MiniSD | None = None):
        super().__init__()
        self.cfg = cfg
        self.automatic_optimization = False
        self.strict_loading = False       # checkpoints leave out the locked base: see on_save_checkpoint
        self.base = base if base is not None else load_base(cfg.preset, cfg.data)
        self.base.lock()
        bc = self.base.cfg
        self.controlnet = cfg.control.build(self.base.unet, bc.num_train_timesteps)
        if cfg.instrument and not self.controlnet.residual:
            fail("instrument", "a design with 13 residuals (cnref.mini.probe reads its zero convs and residuals)",
                 cfg.control.design)
        self.decoder_params = unlock_decoder(self.base.unet) if cfg.unlock_decoder else []
        self.to_out_params = unlock_attention_out(self.base.unet) if cfg.base_to_out_lr is not None else []
        if cfg.gradient_checkpointing:
            set_gradient_checkpointing(self.controlnet)
            set_gradient_checkpointing(self.base.unet)
        if bc.data != cfg.data:
            fail("base", f"a base trained on {cfg.data!r} (cfg.data)", repr(bc.data))
        self.data = (Fill50KFolder(cfg.train_folder, bc.size, cfg.cond_factor) if cfg.train_folder else
                     run_dataset(self.base, cfg, TRAIN_SEED, cfg.n_train))
        self.val_batch, self.use_batch = validation_inputs(self.base, cfg)
        self.probe = probe_inputs(self.base, self.val_batch, cfg.seed) if cfg.instrument else None
        self.history: list[dict] = []
        self.samples: list[torch.Tensor] = []     # uint8 (val_keep, 3, s, s) per validation
        self.elapsed = 0.0
        self.val_elapsed = 0.0        # of which validating: training seconds are the rest (equal-compute comparisons)
        self._losses: list[float] = []
        self._t0 = None

    # the trainable state is the ControlNet (and the decoder if unlocked); the locked base ships separately
    def on_save_checkpoint(self, ckpt):
        # the locked base ships separately: a checkpoint holds what trains (and the decoder, when unlocked)
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("base.") or k in trainable}
        # the training losses since the last validation too: a resumed run's next validation reports their mean
        ckpt["cnref"] = {"history": self.history, "samples": self.samples, "elapsed": self._elapsed(),
                         "val_elapsed": self.val_elapsed,
                         "losses": list(self._losses)}

    def on_load_checkpoint(self, ckpt):
        check_trained_state(self, ckpt["state_dict"])
        st = ckpt["cnref"]
        self.history, self.samples, self.elapsed = st["history"], st["samples"], st["elapsed"]
        self.val_elapsed = st.get("val_elapsed", 0.0)     # checkpoints written before it was kept: 0
        self._losses = list(st.get("losses", []))        # checkpoints written before they were kept: none

    def _elapsed(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t0 if self._t0 else 0.0)

    def on_train_start(self):
        self._t0 = time.perf_counter()

    def training_step(self, batch, _):
        cfg, step = self.cfg, self.global_step
        if validates_at(cfg, step):
            self.validate()
            if cfg.plateau_tol is not None and plateaued(self.history, fidelity_fn(cfg.data)[1], cfg.plateau_window,
                                                         cfg.plateau_tol):
                self.trainer.should_stop = True      # before this step's update: the model ends as validated
                return
        opt = self.optimizers()
        opt.zero_grad()
        total = 0.0
        for k, b in enumerate(check_step(batch, step)):
            micro = step * cfg.accumulate + k
            # DDP: every process renders the same logical batch and takes its rows rank::W (DDP averages
            # the gradients, so the update is the one-process update), with its own noise
            W, rank = self.trainer.world_size, self.global_rank
            loss = self.loss_on(b if W == 1 else {k_: v[rank::W] for k_, v in b.items()},
                                step_generator(cfg.seed, micro * W + rank))
            self.manual_backward(loss / cfg.accumulate)
            total += loss.item() / cfg.accumulate
        opt.step()
        self._losses.append(total)
        self.log("train/loss", total, prog_bar=True)
        if self.global_step == cfg.steps:
            self.validate()

    def loss_on(self, b: dict, g: torch.Generator) -> torch.Tensor:
        """Eq. 3: || eps - eps_theta(z_t, t, c_t, c_f) ||^2, the locked UNet under the control module."""
        cond, unet = b["cond"].to(self.device), self.base.unet

        def eps_theta(z_t, t, c_t):
            return self.controlnet.eps(unet, z_t, t, c_t, cond)

        @torch.no_grad()
        def encode_prompt(prompts):       # the text encoder is locked too
            return self.base.encode_prompt(prompts)
        T = self.base.cfg.num_train_timesteps
        floor = curriculum_floor(self.global_step, T) if self.cfg.timesteps == "curriculum" else 0
        return eq3_loss(eps_theta, encode_prompt, b["image"].to(self.device), b["prompt"], self.base.alpha_bar,
                        prompt_dropout=self.cfg.prompt_dropout, offset_noise=self.base.cfg.offset_noise,
                        timesteps=self.cfg.timesteps, t_floor=floor, generator=g)

    @torch.no_grad()
    def validate(self):
        if self.history and self.history[-1]["step"] == self.global_step:
            return
        cfg, proto, vb = self.cfg, self.cfg.protocol, self.val_batch
        t0, train_s = time.perf_counter(), self._elapsed() - self.val_elapsed
        was_training = self.controlnet.training
        self.controlnet.eval()
        images = self._sample(vb, cfg.seed)
        use = condition_use(self.controlnet, self.base.unet, self.use_batch)      # cnref.mini.use
        fid, key = fidelity_fn(cfg.data)
        scores = summarize(fid(images, vb))
        # the same checkpoint under more sampler seeds: the validation's own noise, apart from any change of the model
        noise = {f"{key}_seeds": [scores[key]] + [summarize(fid(self._sample(vb, cfg.seed + 1000 * k), vb))[key]
                                                  for k in range(1, proto.noise_seeds + 1)]} if proto.noise_seeds else {}
        self.controlnet.train(was_training)
        row = {"step": self.global_step, **scores, **noise, **use,
               **(self.instrumentation() if self.probe else {}),
               "loss": round(sum(self._losses) / len(self._losses), 6) if self._losses else None,
               # the standard error of that mean: the loss curve's own noise at this validation
               "loss_se": round(float(np.std(self._losses, ddof=1) / np.sqrt(len(self._losses))), 7)
               if len(self._losses) > 1 else None,
               "elapsed_s": round(self._elapsed(), 1), "train_s": round(train_s, 1)}
        self._losses = []
        self.history.append(row)
        self.samples.append(to_uint8(images[: proto.val_keep]))
        self.log_dict({f"val/{k}": v for k, v in row.items() if isinstance(v, float) and k != "loss"})
        self.val_elapsed += time.perf_counter() - t0

    def _sample(self, vb: dict, seed: int) -> torch.Tensor:
        return validation_images(self.base, self.controlnet, vb, self.cfg.protocol, seed)

    @torch.no_grad()
    def instrumentation(self) -> dict:
        """cnref.mini.probe at this step: the gate on noisy training-like inputs, the readout from pure noise (t = T-1,
        where only the condition says where the disc is)."""
        p, dev = self.probe, self.device
        was_training = self.controlnet.training
        self.controlnet.eval()
        out = {"gate": gate(self.controlnet, self.base.unet, *(x.to(dev) for x in p["gate"]))}
        if "mask" in self.val_batch and readable(self.controlnet):
            out["readout"] = readout(self.controlnet, *(x.to(dev) for x in p["readout"]), self.val_batch["mask"].to(dev))
        self.controlnet.train(was_training)
        return out

    def configure_optimizers(self):
        groups = lr_groups(self.controlnet, self.cfg)
        if self.decoder_params:
            groups.append({"params": self.decoder_params, "lr": self.cfg.decoder_lr})
        if self.to_out_params:
            groups.append({"params": self.to_out_params, "lr": self.cfg.base_to_out_lr})
        return controlnet_optimizer(groups, self.cfg.lr)

    def train_dataloader(self):
        return step_loader(self, self.data, self.cfg.batch_size, self.cfg.accumulate, self.cfg.seed)


def lr_groups(control, cfg: ControlNetTrainConfig) -> list[dict]:
    """The control's optimiser groups: one at cfg.lr, or, where a part trains at its own scale, the zero convs
    (Z1, Z2) at lr x zero_conv_lr_scale and the rest at lr x copy_lr_scale."""
    if cfg.zero_conv_lr_scale == cfg.copy_lr_scale == 1.0:
        return [{"params": control.trainable(), "lr": cfg.lr}]
    if not hasattr(control, "zero_convs"):
        fail("zero_conv_lr_scale", "a design with zero convs (controlnet) when a part trains at its own lr",
             type(control).__name__)
    zero = {id(p) for z in control.zero_convs() for p in z.parameters()}
    params = list(control.trainable())
    return [{"params": [p for p in params if id(p) in zero], "lr": cfg.lr * cfg.zero_conv_lr_scale},
            {"params": [p for p in params if id(p) not in zero], "lr": cfg.lr * cfg.copy_lr_scale}]


def check_trained_state(module: L.LightningModule, state: dict) -> None:
    """A checkpoint must hold every trainable tensor (the base's locked ones may be left out)."""
    missing = sorted(n for n, p in module.named_parameters() if p.requires_grad and n not in state)
    if missing:
        fail("checkpoint", "every trainable tensor of the run", f"{len(missing)} missing, e.g. {missing[0]}")


def train_controlnet(cfg: ControlNetTrainConfig, run_dir: Path, base: MiniSD | None = None,
                     devices: int = 1) -> ControlNetTraining:
    """Train (or resume from run_dir/ckpt/last.ckpt) one ControlNet; returns the module with its history
    (the final evaluation is `cnref.measure.evaluate.final_evaluation`, run by the lab's runner).
    devices > 1 splits each batch over that many DDP processes (the logical batch stays cfg.batch_size)."""
    check_run(cfg)
    if cfg.batch_size % devices:
        fail("devices", f"a divisor of batch_size {cfg.batch_size}", devices)
    L.seed_everything(cfg.seed, workers=False, verbose=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    module = ControlNetTraining(cfg, base)
    kw = trainer_kwargs(run_dir, cfg.steps, cfg.ckpt_every, devices=devices, precision=cfg.precision)
    with quiet_lightning():
        trainer = L.Trainer(**kw)
        trainer.fit(module, ckpt_path=last_checkpoint(run_dir))
    # Lightning's teardown leaves the module on the CPU: the final evaluation ran there on a GPU lease
    # (16 busy cores, the GPU idle, unfinished when the lease ended)
    module.to(trainer.strategy.root_device)
    if not module.history or module.history[-1]["step"] != cfg.steps:
        module.validate()     # resumed at the end: make sure the final validation is there
    return module

"""The mini Stable Diffusion that every ControlNet here is trained on top of (locked, like SD).

SD's structure at a size a 2-core CPU can train: a diffusers `UNet2DConditionModel` with 4 resolution
levels and 2 layers per block (SD's exact 12 encoder skips + 1 middle block = 13 ControlNet
connections), a small transformers `CLIPTextModel` with an offline word-level tokenizer, SD's noise
schedule (scaled-linear betas 0.00085..0.012, T = 1000, epsilon prediction). Pixel space stands in for
SD's latent space: there is no VAE to train or ship. Its presets are in `cnref.mini.presets`; how its weights
are stored and shipped, in `cnref.mini.shipping`.
"""
from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

from ..checks import fail
from .data import vocabulary
from .presets import BaseConfig

SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>"]


def build_unet(cfg: BaseConfig):
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.cross_attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.cross_attention))
    return UNet2DConditionModel(
        sample_size=cfg.size, in_channels=3, out_channels=3, block_out_channels=tuple(cfg.channels),
        down_block_types=down, up_block_types=up, layers_per_block=2, cross_attention_dim=cfg.text_width,
        attention_head_dim=cfg.heads, norm_num_groups=cfg.norm_groups)


def build_tokenizer(cfg: BaseConfig):
    """A word-level tokenizer over the data vocabulary, built offline (no hub download)."""
    vocab = {w: i for i, w in enumerate(SPECIAL + vocabulary(cfg.data))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=cfg.max_tokens, pad_token="<pad>",
                                   bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")


def build_text_encoder(cfg: BaseConfig, vocab_size: int):
    ids = {w: i for i, w in enumerate(SPECIAL)}
    conf = CLIPTextConfig(vocab_size=vocab_size, hidden_size=cfg.text_width, intermediate_size=4 * cfg.text_width,
                          num_hidden_layers=cfg.text_layers, num_attention_heads=2,
                          max_position_embeddings=cfg.max_tokens, pad_token_id=ids["<pad>"],
                          bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"])
    return CLIPTextModel(conf)


def train_scheduler(cfg: BaseConfig):
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start,
                         beta_end=cfg.beta_end, beta_schedule="scaled_linear", prediction_type="epsilon",
                         clip_sample=False)


def sample_scheduler(cfg: BaseConfig):
    """DDIM with SD's inference settings (steps_offset=1, set_alpha_to_one=False)."""
    return DDIMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start,
                         beta_end=cfg.beta_end, beta_schedule="scaled_linear", prediction_type="epsilon",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


class MiniSD(nn.Module):
    """UNet + text encoder + tokenizer + schedule constants of one preset."""

    def __init__(self, cfg: BaseConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = build_tokenizer(cfg)
        self.unet = build_unet(cfg)
        self.text_encoder = build_text_encoder(cfg, len(self.tokenizer))
        self.register_buffer("alpha_bar", train_scheduler(cfg).alphas_cumprod.clone(), persistent=False)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """c_t: the text encoder's last hidden state, (B, max_tokens, text_width)."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            fail("prompts", "a list of strings", type(prompts).__name__)
        ids = self.tokenizer(list(prompts), padding="max_length", truncation=True,
                             max_length=self.cfg.max_tokens, return_tensors="pt").input_ids
        return self.text_encoder(ids.to(self.alpha_bar.device)).last_hidden_state

    def lock(self) -> "MiniSD":
        """Freeze every weight: the base is locked during ControlNet training (Θ in Eq. 2)."""
        self.requires_grad_(False)
        self.eval()
        return self


def sd15_unet(width: int = 320, cross_attention_dim: int = 768, sample_size: int = 64, heads: int = 8,
              norm_groups: int = 32):
    """Stable Diffusion 1.5's UNet topology (diffusers' defaults) at a chosen base width.

    width=320, cross_attention_dim=768 is SD1.5 itself (859.5M parameters, random weights); a small
    width keeps the exact block structure (3 cross-attention levels + a plain one, 13 connections).
    """
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4,
        block_out_channels=(width, 2 * width, 4 * width, 4 * width),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=2, cross_attention_dim=cross_attention_dim, attention_head_dim=heads,
        norm_num_groups=norm_groups)

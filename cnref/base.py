"""The mini Stable Diffusion that every ControlNet here is trained on top of (locked, like SD).

SD's structure at a size a 2-core CPU can train: a diffusers `UNet2DConditionModel` with 4 resolution
levels and 2 layers per block (SD's exact 12 encoder skips + 1 middle block = 13 ControlNet
connections), a small transformers `CLIPTextModel` with an offline word-level tokenizer, SD's noise
schedule (scaled-linear betas 0.00085..0.012, T = 1000, epsilon prediction). Pixel space stands in for
SD's latent space: there is no VAE to train or ship.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .checks import check_choice, fail
from .data import DATASETS, vocabulary

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_MAX_BYTES = 16 * 2 ** 20      # DESIGN.md: a shipped checkpoint stays <= 16 MiB
INT8_GROUP = 32
SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>"]


@dataclass(frozen=True)
class BaseConfig:
    size: int = 32                                   # pixel-space sample size (SD: 64x64 latents)
    channels: tuple = (32, 32, 64, 64)               # SD1.5: (320, 640, 1280, 1280)
    cross_attention: tuple = (False, False, True, True)  # attention per level (SD: first three + middle)
    heads: int = 4
    norm_groups: int = 8
    text_width: int = 32                             # SD1.5: 768
    text_layers: int = 2
    max_tokens: int = 16                             # SD: 77
    cond_factor: int = 1                             # condition resolution / sample resolution (SD: 8)
    offset_noise: float = 0.1                        # see DESIGN.md section 2: fixes dull colours
    data: str = "fill50k"                            # what it was trained on (and its vocabulary): see DATASETS
    # SD's schedule
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000

    @staticmethod
    def smoke() -> "BaseConfig":
        return BaseConfig(size=16, channels=(8, 8, 16, 16), heads=2, norm_groups=4, text_width=16,
                          text_layers=1)

    @staticmethod
    def cpu() -> "BaseConfig":
        return BaseConfig()

    @staticmethod
    def gpu() -> "BaseConfig":
        return BaseConfig(size=64, channels=(32, 64, 128, 128), cross_attention=(False, True, True, True),
                          text_width=64, text_layers=4, cond_factor=8)

    @staticmethod
    def preset(name: str, data: str = "fill50k") -> "BaseConfig":
        """A preset's architecture for a dataset. Scenes prompts run to 15 words (3 shapes with two-word
        colours), more than Fill50K's 16 tokens hold with <bos>/<eos>: 24 tokens."""
        check_choice("preset", name, {"smoke", "cpu", "gpu"})
        check_choice("data", data, DATASETS)
        cfg = getattr(BaseConfig, name)()
        return cfg if data == "fill50k" else replace(cfg, data=data, max_tokens=24)


def build_unet(cfg: BaseConfig):
    from diffusers import UNet2DConditionModel
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.cross_attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.cross_attention))
    return UNet2DConditionModel(
        sample_size=cfg.size, in_channels=3, out_channels=3, block_out_channels=tuple(cfg.channels),
        down_block_types=down, up_block_types=up, layers_per_block=2, cross_attention_dim=cfg.text_width,
        attention_head_dim=cfg.heads, norm_num_groups=cfg.norm_groups)


def build_tokenizer(cfg: BaseConfig):
    """A word-level tokenizer over the data vocabulary, built offline (no hub download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    vocab = {w: i for i, w in enumerate(SPECIAL + vocabulary(cfg.data))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=cfg.max_tokens, pad_token="<pad>",
                                   bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")


def build_text_encoder(cfg: BaseConfig, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel
    ids = {w: i for i, w in enumerate(SPECIAL)}
    conf = CLIPTextConfig(vocab_size=vocab_size, hidden_size=cfg.text_width, intermediate_size=4 * cfg.text_width,
                          num_hidden_layers=cfg.text_layers, num_attention_heads=2,
                          max_position_embeddings=cfg.max_tokens, pad_token_id=ids["<pad>"],
                          bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"])
    return CLIPTextModel(conf)


def train_scheduler(cfg: BaseConfig):
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start,
                         beta_end=cfg.beta_end, beta_schedule="scaled_linear", prediction_type="epsilon",
                         clip_sample=False)


def sample_scheduler(cfg: BaseConfig):
    """DDIM with SD's inference settings (steps_offset=1, set_alpha_to_one=False)."""
    from diffusers import DDIMScheduler
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

    def save(self, path: str | Path, meta: dict | None = None, max_bytes: int | None = None) -> None:
        """float32 safetensors; with `max_bytes`, the smallest lossy storage that fits (see `compact_state`)."""
        from safetensors.torch import save_file
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: (v.float() if v.is_floating_point() else v).detach().contiguous()
                 for k, v in self.state_dict().items()}
        meta = {"config": json.dumps(asdict(self.cfg)), **(meta or {})}
        if max_bytes is not None and _nbytes(state) > max_bytes:
            state, meta["stored_dtype"] = compact_state(state, max_bytes, meta)
        save_file(state, str(path), metadata={k: str(v) for k, v in meta.items()})

    @classmethod
    def load(cls, path: str | Path) -> "MiniSD":
        from safetensors import safe_open
        from safetensors.torch import load_file
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no base weights at {path}; rebuild them with "
                                    f"`python -m cnref.train base --preset <preset> [--data scenes]` (see README)")
        with safe_open(str(path), "pt") as f:
            conf = json.loads(f.metadata()["config"])
        cfg = BaseConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in conf.items()})
        model = cls(cfg)
        model.load_state_dict(expand_state(load_file(str(path))))
        return model


def _nbytes(state: dict) -> int:
    return sum(v.numel() * v.element_size() for v in state.values())


def compact_state(state: dict, max_bytes: int, metadata: dict | None = None,
                  group: int = INT8_GROUP) -> tuple[dict, str]:
    """Fit a float32 state into a safetensors file of `max_bytes` (header and `metadata` included):
    everything in float16, then the largest weight tensors in int8 until it fits.

    int8 is symmetric per group of `group` consecutive weights, w ≈ q · s with s = max|w_group| / 127
    (s stored as float16 under `<name>.int8_scale`). Largest-first because the small tensors (embeddings,
    norms, time MLP) are the sensitive ones: on the gpu base, int8 for every weight raised the eps loss by
    4%, int8 for its ~30 largest tensors (about half the parameters) changed the eps prediction by an MSE
    of 3e-8 against a loss of 1.8e-3. Returns the state and a description for the file's metadata.
    """
    from safetensors.torch import save
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    out = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    header = len(save(out, meta)) - _nbytes(out) + 1024     # + room for the scales' entries and this note
    by_size = sorted((k for k, v in state.items() if v.dim() >= 2 and v.is_floating_point()),
                     key=lambda k: -state[k].numel())
    quantized = []
    for k in by_size:
        if _nbytes(out) + header + 96 * len(quantized) <= max_bytes:
            break
        w = state[k]
        rows = w.reshape(-1, group) if w.numel() % group == 0 else w.reshape(w.shape[0], -1)
        s = (rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-4) / 127).half().float()  # q from the stored s
        out[k] = torch.round(rows / s).clamp(-127, 127).to(torch.int8).reshape(w.shape)
        out[k + ".int8_scale"] = s.half()
        quantized.append(k)
    n = sum(state[k].numel() for k in quantized)
    note = (f"float16; int8 (groups of {group}, float16 scales) for the {len(quantized)} largest weight "
            f"tensors ({n} of {sum(v.numel() for v in state.values())} values); loading upcasts to float32")
    size = len(save(out, {**meta, "stored_dtype": note}))
    if size > max_bytes:
        fail("max_bytes", f"room for the compacted state ({size} bytes)", max_bytes)
    return out, note


def expand_state(state: dict) -> dict:
    """Inverse of `compact_state`: float32 tensors, int8 groups times their scales."""
    out = {}
    for k, v in state.items():
        if k.endswith(".int8_scale"):
            continue
        if k + ".int8_scale" in state:
            s = state[k + ".int8_scale"].float()
            v = (v.float().reshape(s.shape[0], -1) * s).reshape(v.shape)
        out[k] = v.float() if v.is_floating_point() else v
    return out


def base_path(preset: str, data: str = "fill50k") -> Path:
    check_choice("preset", preset, {"smoke", "cpu", "gpu"})
    check_choice("data", data, DATASETS)
    return WEIGHTS_DIR / (f"base_{preset}.safetensors" if data == "fill50k" else f"base_{preset}_{data}.safetensors")


def load_base(preset: str = "cpu", data: str = "fill50k") -> MiniSD:
    """The shipped, locked base of a preset and dataset (offline: read from the package)."""
    return MiniSD.load(base_path(preset, data)).lock()


def sd15_unet(width: int = 320, cross_attention_dim: int = 768, sample_size: int = 64, heads: int = 8,
              norm_groups: int = 32):
    """Stable Diffusion 1.5's UNet topology (diffusers' defaults) at a chosen base width.

    width=320, cross_attention_dim=768 is SD1.5 itself (859.5M parameters, random weights); a small
    width keeps the exact block structure (3 cross-attention levels + a plain one, 13 connections).
    """
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4,
        block_out_channels=(width, 2 * width, 4 * width, 4 * width),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=2, cross_attention_dim=cross_attention_dim, attention_head_dim=heads,
        norm_num_groups=norm_groups)

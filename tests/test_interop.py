"""An exported cnref ControlNet runs in diffusers' StableDiffusionControlNetPipeline (tiny offline parts)."""
import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionControlNetPipeline

from cnref.base import build_text_encoder, build_tokenizer
from cnref.presets import BaseConfig
from cnref.controlnet import ControlNet, ControlNetConfig
from cnref.interop import to_diffusers

from conftest import randomize_zero_convs, tiny_unet


def test_exported_controlnet_runs_in_the_sd_pipeline():
    unet = tiny_unet("sd15")                      # latent UNet, 4 channels, 16x16 latents
    cfg = BaseConfig(text_width=unet.config.cross_attention_dim, text_layers=1)
    tokenizer = build_tokenizer(cfg)
    torch.manual_seed(0)
    text_encoder = build_text_encoder(cfg, len(tokenizer)).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        norm_num_groups=4, sample_size=128).eval()
    assert 2 ** (len(vae.config.block_out_channels) - 1) == 8   # 128 px -> 16 latents, SD's 8x
    net = ControlNet(unet, ControlNetConfig(factor=8))             # SD's 8x hint encoder
    randomize_zero_convs(net)
    pipe = StableDiffusionControlNetPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, controlnet=to_diffusers(net, unet),
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    cond = torch.rand(1, 3, 128, 128)
    kwargs = dict(prompt="red circle with lime background", height=128, width=128, num_inference_steps=2,
                  guidance_scale=3.0, output_type="np")
    out = pipe(image=cond, generator=torch.Generator().manual_seed(0), **kwargs).images
    assert out.shape == (1, 128, 128, 3) and np.isfinite(out).all()
    # the control changes the result: with conditioning scale 0 the pipeline gives another image
    off = pipe(image=cond, generator=torch.Generator().manual_seed(0), controlnet_conditioning_scale=0.0,
               **kwargs).images
    assert np.abs(out - off).max() > 1e-4

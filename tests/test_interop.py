"""An exported cnref ControlNet runs in diffusers' StableDiffusionControlNetPipeline (tiny offline parts)."""
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionControlNetPipeline

from cnref.mini.base import build_text_encoder, build_tokenizer
from cnref.mini.presets import BaseConfig
from cnref.paper.controlnet import ControlNet, ControlNetConfig

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
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, controlnet=net.diffusers_model(unet),
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
    # inside the pipeline, at every denoising step, diffusers' ControlNet hands the UNet exactly cnref's residuals
    seen = []
    hook = pipe.controlnet.register_forward_hook(lambda m, args, kw, out: seen.append((args, kw, out)), with_kwargs=True)
    try:
        pipe(image=cond, generator=torch.Generator().manual_seed(0), **kwargs)
    finally:
        hook.remove()
    assert len(seen) == kwargs["num_inference_steps"]
    for (z_t, t), kw, (down, mid) in seen:                # the pipeline passes (sample, timestep) by position
        with torch.no_grad():
            ours = net(z_t, t.expand(z_t.shape[0]), kw["encoder_hidden_states"], kw["controlnet_cond"])
        assert max((a - b).abs().max().item() for a, b in zip(ours.residuals, (*down, mid))) < 1e-5


def test_every_successor_exports_in_diffusers_format_or_says_why(tmp_path):
    """T2I-Adapter and ControlNet-XS round-trip through diffusers' own classes to the same eps; ControlNeXt, which
    diffusers has no class for, refuses with a one-line error."""
    from diffusers import T2IAdapter, UNetControlNetXSModel
    from cnref.paper.interop import save_pretrained
    from cnref.successors import design_config
    from cnref.mini.shipping import load_base
    base = load_base("smoke")
    s = base.cfg.size
    g = torch.Generator().manual_seed(0)
    z, t = torch.randn(2, 3, s, s, generator=g), torch.tensor([5, 50])
    c_t, cond = base.encode_prompt(["a", "b"]), torch.rand(2, 3, s, s, generator=g)
    for kind, cls in (("t2i_adapter", T2IAdapter), ("controlnet_xs", UNetControlNetXSModel)):
        net = design_config(kind).build(base.unet).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=g))     # away from init, where zero convs hide errors
            save_pretrained(net, base.unet, tmp_path / kind)
            fresh = design_config(kind).build(base.unet).eval()
            loaded = cls.from_pretrained(str(tmp_path / kind))
            if kind == "t2i_adapter":
                fresh.adapter = loaded
            else:
                fresh.model = loaded
            saved = (net.adapter if kind == "t2i_adapter" else net.model).state_dict()
            assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in saved.items())     # bit for bit
            # the same eps to 1e-3: with bit-equal weights the loaded XS model differs by float rounding (2e-4 here)
            torch.testing.assert_close(fresh.eps(base.unet, z, t, c_t, cond),
                                       net.eps(base.unet, z, t, c_t, cond), atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="ControlNeXt"):
        save_pretrained(design_config("controlnext").build(base.unet), base.unet, tmp_path / "x")

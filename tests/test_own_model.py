"""The README's "own model" block, run as written on a tiny SD1.5-shaped UNet saved to disk: it loads with
from_pretrained, trains only the ControlNet, and saves a folder diffusers' ControlNetModel loads with the same
residuals."""
import re
from pathlib import Path

import torch
from diffusers import ControlNetModel

from cnref.mini.base import sd15_unet

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_block_runs_on_a_unet_loaded_from_disk(tmp_path):
    block = re.search(r"<!-- own-model:start -->\n```python\n(.*?)```\n<!-- own-model:end -->", README.read_text(), re.S)
    assert block, "the README's own-model block is missing"
    torch.manual_seed(0)
    sd15_unet(width=8, cross_attention_dim=16, sample_size=8, heads=2, norm_groups=4).save_pretrained(tmp_path / "sd" / "unet")
    ns = {"SD15": str(tmp_path / "sd"), "OUT": str(tmp_path / "controlnet")}
    exec(compile(block.group(1), "README.md", "exec"), ns)
    unet, net = ns["unet"], ns["net"]
    locked = {k: v.clone() for k, v in unet.state_dict().items()}
    z_0, cond = torch.randn(2, 4, 8, 8), torch.rand(2, 3, 64, 64)
    encode = lambda prompts: torch.randn(len(prompts), 5, 16)
    zero_before = [z.weight.clone() for z in net.zero_convs()]
    losses = [ns["train_step"](z_0, cond, ["a", "b"], encode) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in locked.items())            # the base stayed locked
    assert any(not torch.equal(a, z.weight) for a, z in zip(zero_before, net.zero_convs()))  # the ControlNet trained
    ns["save_pretrained"](net, unet, ns["OUT"])
    ref = ControlNetModel.from_pretrained(ns["OUT"]).eval()
    z_t, t, c_t = torch.randn(2, 4, 8, 8), torch.tensor([3, 700]), torch.randn(2, 5, 16)
    with torch.no_grad():
        ours = net.eval()(z_t, t, c_t, cond)
        down, mid = ref(z_t, t, c_t, cond, return_dict=False)
    assert max((a - b).abs().max().item() for a, b in zip(ours.residuals, (*down, mid))) < 1e-5

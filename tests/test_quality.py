"""Image quality: KID on (image, condition) pairs is the unbiased MMD^2 of its kernel, and it sees placement."""
import pytest
import torch

from cnref.mini.data import VAL_SEED, dataset
from cnref.measure.quality import KID, JointFeatures, pairs01
from cnref.mini.shipping import load_base


@pytest.fixture(scope="module")
def base():
    return load_base("smoke")


def held_out(base, start: int, n: int) -> dict:
    return dataset("fill50k", size=base.cfg.size, cond_factor=1, seed=VAL_SEED).batch(range(start, start + n))


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Brute force: the unbiased MMD^2 of k(a, b) = (a.b / d + 1)^3 (Binkowski et al. 2018, Eq. 3)."""
    k = lambda a, b: (a.double() @ b.double().T / x.shape[1] + 1) ** 3
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - kxx.diag().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diag().sum()) / (n * (n - 1))
                 - 2 * kxy.mean())


def test_kid_is_the_unbiased_mmd_of_the_joint_features(base):
    """With a reference as large as the generated set every subset is the whole set, so KID is one MMD^2."""
    ref, gen = held_out(base, 0, 24), held_out(base, 100, 24)
    kid = KID(base, reference=ref, subsets=3)
    feats = JointFeatures(base)
    x, y = feats(pairs01(ref["image"], ref["cond"])), feats(pairs01(gen["image"], gen["cond"]))
    got = kid(gen["image"], gen["cond"])
    assert got["kid"] == pytest.approx(1e3 * mmd2_unbiased(x, y), rel=1e-3, abs=1e-4)     # reported x 1e3
    assert got["kid_std"] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.slow          # about 20 s: 512 samples through the cpu base's features
def test_kid_sees_placement_and_damage():
    """On the cpu base's features (the smoke base is too briefly trained to have useful ones): targets with
    their own conditions score near 0; the same images paired with other conditions (each disc elsewhere than
    its outline says) score clearly worse, and noise worse still."""
    base = load_base("cpu")
    kid = KID(base, reference=held_out(base, 1000, 256))
    b = held_out(base, 0, 128)
    right = kid(b["image"], b["cond"])
    moved = kid(b["image"], b["cond"].roll(1, 0))
    noise = kid(torch.rand(b["image"].shape, generator=torch.Generator().manual_seed(0)) * 2 - 1, b["cond"])
    assert abs(right["kid"]) < 2 * right["kid_std"], right                     # unbiased: zero within its spread
    assert moved["kid"] > right["kid"] + 5 * max(right["kid_std"], moved["kid_std"]), (right, moved)
    assert noise["kid"] > moved["kid"], (moved, noise)


def test_kid_refuses_a_set_larger_than_its_reference(base):
    ref = held_out(base, 0, 8)
    kid = KID(base, reference=ref)
    with pytest.raises(ValueError, match="reference set's size"):
        kid(torch.zeros(9, 3, base.cfg.size, base.cfg.size), torch.zeros(9, 3, base.cfg.size, base.cfg.size))


def frechet_brute_force(x: torch.Tensor, y: torch.Tensor) -> float:
    """Brute force: ||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)), the matrix square root by scipy."""
    import numpy as np
    from scipy.linalg import sqrtm
    x, y = x.double().numpy(), y.double().numpy()
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = sqrtm(sx @ sy).real
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(sx + sy - 2 * root))


def test_fid_is_the_frechet_distance_of_the_base_features(base):
    """FID through torchmetrics on the base's features equals the Frechet distance of those features computed
    here by hand, on more images than features (so both covariances are full rank)."""
    from cnref.measure.quality import FID, BaseFeatures
    ref, gen = held_out(base, 0, 96), held_out(base, 200, 80)
    phi = BaseFeatures(base)
    assert phi.num_features < 80
    x, y = phi((ref["image"] + 1) / 2), phi((gen["image"] + 1) / 2)
    got = FID(base, reference=ref["image"])(gen["image"])
    assert got == pytest.approx(frechet_brute_force(x, y), rel=2e-3, abs=1e-3)
    noisy = FID(base, reference=ref["image"])(gen["image"] + 0.5 * torch.randn_like(gen["image"]))
    assert noisy > got                         # and it grows when the images are damaged


def test_the_calibration_rows_are_the_targets_and_a_zero_initialised_control(base):
    """bounds: the ground-truth row is the fidelity of the targets themselves, and the base-alone row of sampler
    seed s is what a freshly initialised ControlNet gives with seed s (Eq. 2 at initialisation adds exact zeros), an
    identity computed here through the other path."""
    from cnref.measure.evaluate import bounds, evaluate_settings, settings_batches
    from cnref.mini.metrics import fidelity, summarize
    from cnref.mini.presets import preset
    from cnref.paper.controlnet import ControlNet, ControlNetConfig
    proto = preset("smoke").train.protocol
    rows = bounds(base, proto, seeds=(2,))
    for name, b in settings_batches(base, proto.final_n):
        want = summarize(fidelity(b["image"], b))
        assert {k: rows["ground_truth"][name][k] for k in want} == pytest.approx(want), name
    fresh = ControlNet(base.unet, ControlNetConfig(factor=1)).eval()
    ctl, _ = evaluate_settings(base, fresh, proto.final_n, steps=proto.val_steps, beta=proto.val_beta, seed=2)
    assert rows["base"]["seed2"].keys() == ctl.keys()
    for name in ctl:
        assert rows["base"]["seed2"][name] == pytest.approx(ctl[name]), name


def test_the_base_quality_rows_are_the_targets_and_the_base_under_each_cfg_scale(base):
    """`base_quality`: the ground-truth row scores the held-out targets (their colours all right); each CFG row
    scores the base's own samples of the same prompts, drawn in chunks whose seeds are seed + the chunk's start,
    with both colours right counted per image (not as the product of the two shares)."""
    from cnref.measure.evaluate import base_quality
    from cnref.mini.metrics import fidelity
    from cnref.mini.sample import generate
    got = base_quality(base, n=4, betas=(1.0, 5.0), steps=2, seed=3, chunk=2)
    batch = held_out(base, 0, 4)
    assert set(got) == {"ground_truth", "cfg_1", "cfg_5"}
    assert got["ground_truth"]["fill_ok"] == got["ground_truth"]["bg_ok"] == 1.0
    assert got["ground_truth"]["iou"] > 0.95
    for beta in (1.0, 5.0):
        imgs = torch.cat([generate(base, batch["prompt"][i:i + 2], steps=2, beta=beta, seed=3 + i) for i in (0, 2)])
        m = fidelity(imgs, batch)
        row = got[f"cfg_{beta:g}"]
        assert row["iou"] == pytest.approx(float(m["iou"].mean()), abs=1e-5)
        assert row["fill_err"] == pytest.approx(float(m["fill_err"].mean()), abs=1e-5)
        assert row["both_ok"] == pytest.approx(float((m["fill_ok"] * m["bg_ok"]).mean()), abs=1e-5)
    assert got["cfg_1"] != got["cfg_5"]

"""Image quality: FID (the paper's Table 3) and a kernel distance that sees where things are.

Inception weights would need a download, so the feature network is the locked base UNet itself, trained on
this very image domain: an image enters as z_0 at t = 0 with the empty prompt, and the features are read at
the outputs of the 4 encoder levels and the middle block (32+32+64+64+64 = 256 channels at the cpu preset).

- FID averages each feature map over space: one number per channel. It cannot see where the disc is, and at
  n = 64 samples its 256x256 covariance is singular. It is recorded with every final evaluation and judges
  no claim.
- KID (Binkowski et al. 2018, torchmetrics' `KernelInceptionDistance`): the unbiased MMD^2 of a cubic
  polynomial kernel, k(u, v) = (u.v / d + 1)^3, between generated and reference features; unbiased at small n.
  Here u is a feature of an (image, condition) pair: the image's feature maps pooled to a 4 x 4 grid (they keep
  coarse position), times each cell of its condition pooled to 4 x 4 (u = phi(x) (x) psi(c), a Kronecker
  product), so that u.v = (phi(x).phi(y)) (psi(c).psi(d)): a tensor-product kernel, the kind by which an MMD compares
  joint distributions (Gretton et al. 2012, section 7.4; Fukumizu et al. 2008). Right images paired with the
  wrong conditions then score worse than the same images with their own: placement counts, which it does not
  for FID, nor for KID on the image alone or on image and condition features side by side (probed: their
  "moved" rows sat within the subsets' spread of the right ones on scenes; adding the image kernel, a leading 1
  in psi, doubled the spread and bought nothing).
"""
from __future__ import annotations

import warnings

import torch
from torch.nn import functional as F

from ..checks import check_positive, check_tensor, fail
from ..mini.data import VAL_SEED, dataset

REF_START, REF_N = 100_000, 1024       # reference targets: held-out seed, indices no evaluation uses
KID_N = 256                            # samples per KID row: subsets of the reference this size separate the
                                       # quality study's calibration rows by 7-18 of their standard deviations


class BaseFeatures(torch.nn.Module):
    """The feature network: images in [0, 1] -> (B, num_features). grid None: each map's spatial mean (FID's
    features); grid g: each map average-pooled to g x g, so a feature says where as well as what."""

    def __init__(self, base, grid: int | None = None):
        super().__init__()
        self.base, self.grid = base, grid
        unet = base.unet
        channels = sum(b.resnets[-1].out_channels for b in unet.down_blocks) + unet.mid_block.resnets[-1].out_channels
        self.num_features = channels * (grid * grid if grid else 1)

    def _pool(self, h: torch.Tensor) -> torch.Tensor:
        h = h.float()
        return h.mean((2, 3)) if self.grid is None else F.adaptive_avg_pool2d(h, self.grid).flatten(1)

    @torch.no_grad()
    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        check_tensor("images", images01, ndim=4, channels=3)
        unet = self.base.unet
        x = images01.to(self.base.alpha_bar.device, torch.float32) * 2 - 1
        c = self.base.encode_prompt([""] * x.shape[0])
        feats = []
        keep = lambda m, a, out: feats.append(self._pool(out[0] if isinstance(out, tuple) else out))
        hooks = [blk.register_forward_hook(keep) for blk in [*unet.down_blocks, unet.mid_block]]
        try:    # hooks only for this call: the same UNet is the locked base of the model being evaluated
            unet(x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device), c)
        finally:
            for h in hooks:
                h.remove()
        return torch.cat(feats, 1).cpu()


class JointFeatures(torch.nn.Module):
    """(B, 6, s, s) in [0, 1], an image and its condition stacked on channels -> phi(image) (x) psi(condition):
    phi = BaseFeatures pooled to a grid; psi = the condition in [-1, 1] (as the ControlNet sees it) averaged
    over channels and pooled to the same grid (never all zero: its background is -1)."""

    def __init__(self, base, grid: int = 4):
        super().__init__()
        self.phi, self.grid = BaseFeatures(base, grid), grid
        self.num_features = self.phi.num_features * grid * grid

    def forward(self, pairs01: torch.Tensor) -> torch.Tensor:
        check_tensor("pairs", pairs01, ndim=4, channels=6)
        image = self.phi(pairs01[:, :3])
        cond = F.adaptive_avg_pool2d(pairs01[:, 3:].float().mean(1, keepdim=True) * 2 - 1, self.grid).flatten(1)
        return (image[:, :, None] * cond.cpu()[:, None, :]).flatten(1)


def pairs01(images: torch.Tensor, conds: torch.Tensor) -> torch.Tensor:
    """Images and conditions in [-1, 1] (conditions at any multiple of the image's size) -> (B, 6, s, s) in
    [0, 1]; a larger condition is area-averaged to the image's size."""
    check_tensor("images", images, ndim=4, channels=3)
    check_tensor("conds", conds, ndim=4, batch=images.shape[0], channels=3)
    if conds.shape[-1] != images.shape[-1]:
        conds = F.interpolate(conds.float(), size=images.shape[-2:], mode="area")
    return (torch.cat([images.float(), conds.float()], 1) + 1) / 2


def reference_set(base, condition: str = "outline") -> dict:
    """The reference set: REF_N held-out targets of the base's dataset with their conditions at the image's
    size, in [-1, 1]."""
    data = dataset(base.cfg.data, size=base.cfg.size, cond_factor=1, seed=VAL_SEED,
                   **({"condition": condition} if base.cfg.data == "scenes" else {}))
    return data.batch(range(REF_START, REF_START + REF_N))


class FID:
    """FID of image sets against one reference set, whose features are computed once."""

    def __init__(self, base, reference: torch.Tensor | None = None, chunk: int = 256):
        from torchmetrics.image.fid import FrechetInceptionDistance   # deferred: only FID needs torchmetrics
        self.chunk = chunk
        self.metric = FrechetInceptionDistance(feature=BaseFeatures(base), normalize=True,
                                               reset_real_features=False)
        ref = reference_set(base)["image"] if reference is None else reference
        for i in range(0, len(ref), chunk):
            self.metric.update((ref[i:i + chunk].float() + 1) / 2, real=True)

    def __call__(self, images: torch.Tensor) -> float:
        """images: (B, 3, s, s) in [-1, 1]."""
        check_tensor("images", images, ndim=4, channels=3)
        if images.shape[0] < 2:
            fail("images", "at least 2 images (FID needs a covariance)", f"{images.shape[0]}")
        self.metric.reset()
        for i in range(0, len(images), self.chunk):
            self.metric.update((images[i:i + self.chunk].float() + 1) / 2, real=False)
        return round(float(self.metric.compute()), 4)


class KID:
    """KID of (image, condition) sets against the reference pairs, on joint features (module docstring).
    Each call draws `subsets` random subsets of the reference of the generated set's size (torchmetrics), from
    a fixed seed, and returns their mean and standard deviation, in units of 1e-3 (as KID is usually reported)."""

    def __init__(self, base, reference: dict | None = None, grid: int = 4, subsets: int = 100, chunk: int = 256,
                 condition: str = "outline"):
        from torchmetrics.image.kid import KernelInceptionDistance   # deferred: as FID's, only KID needs it
        check_positive("grid", grid, integer=True)
        self.chunk = chunk
        ref = reference_set(base, condition) if reference is None else reference
        self.features = JointFeatures(base, grid)
        with warnings.catch_warnings():     # its notice that features are kept in memory: 1024 + 256 rows here
            warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")
            self.metric = KernelInceptionDistance(feature=self.features, subsets=subsets, subset_size=2,
                                                  reset_real_features=False)
        pairs = pairs01(ref["image"], ref["cond"])
        for i in range(0, len(pairs), chunk):
            self.metric.update(pairs[i:i + chunk], real=True)
        self.n_ref = len(pairs)

    def __call__(self, images: torch.Tensor, conds: torch.Tensor) -> dict[str, float]:
        """images (B, 3, s, s) and their conditions, in [-1, 1] -> {"kid", "kid_std"}, x 1e3."""
        n = images.shape[0]
        if not 2 <= n <= self.n_ref:
            fail("images", f"between 2 and {self.n_ref} images (the reference set's size)", n)
        pairs = pairs01(images, conds)
        self.metric.reset()
        self.metric.subset_size = n
        for i in range(0, n, self.chunk):
            self.metric.update(pairs[i:i + self.chunk], real=False)
        with torch.random.fork_rng():           # the subsets: reproducible, and the caller's RNG untouched
            torch.manual_seed(0)
            mean, std = self.metric.compute()
        return {"kid": round(1e3 * float(mean), 4), "kid_std": round(1e3 * float(std), 4)}

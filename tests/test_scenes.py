"""Procedural scenes: exact masks, determinism, every condition type, clear errors."""
import pytest
import torch

from cnref.mini.data import COLORS
from cnref.mini.data.scenes import CONDITIONS, SHAPES, Scenes, scene_vocabulary

from conftest import near


def erode(mask: torch.Tensor, r: int) -> torch.Tensor:
    """Pixels whose (2r+1)^2 neighbourhood lies inside the mask; outside the image counts as outside."""
    x = torch.nn.functional.pad(mask.float(), (r, r, r, r))
    return -torch.nn.functional.max_pool2d(-x, 2 * r + 1, 1) > 0.5


def test_pure_function_of_seed_and_index():
    a = Scenes(seed=3).batch([5, 9])
    b = Scenes(seed=3).batch([9, 5])
    assert torch.equal(a["image"][0], b["image"][1]) and a["prompt"][1] == b["prompt"][0]
    c = Scenes(seed=4).batch([5])
    assert not torch.equal(a["image"][0], c["image"][0])
    # a finite set wraps around
    assert torch.equal(Scenes(n=10).batch([3])["image"], Scenes(n=10).batch([13])["image"])


def test_masks_are_exact_and_consistent():
    s = Scenes(size=48, max_shapes=3)
    b = s.batch(range(64))
    vis = b["visible"]
    assert vis.dtype == torch.bool and vis.shape == (64, 3, 48, 48)
    assert (vis.sum(1) <= 1).all()                                  # disjoint: one nearest shape per pixel
    assert torch.equal(vis.any(1, keepdim=True), b["segmentation"] > 0)
    assert torch.equal(vis.any(1, keepdim=True), b["depth"] > 0)
    for i in range(64):
        for k in range(3):
            if b["shape"][i, k] < 0:
                assert not vis[i, k].any()                          # absent slots draw nothing
                continue
            m = vis[i, k]
            if m.sum() == 0:
                continue                                            # fully hidden by nearer shapes
            assert (b["segmentation"][i, 0][m] == b["shape"][i, k] + 1).all()
            assert (b["depth"][i, 0][m] == k + 1).all()
            # pixels deep inside the visible region carry exactly the shape's colour
            inner = erode(m[None, None], 2)[0, 0]
            if inner.any():
                px = b["image"][i].permute(1, 2, 0)[inner]
                assert torch.allclose(px, COLORS[b["color"][i, k]].expand_as(px), atol=1e-5)


def test_occlusion_happens_and_every_shape_and_count_occurs():
    b = Scenes(max_shapes=3).batch(range(300))
    present = b["shape"] >= 0
    assert set(present.sum(1).tolist()) == {1, 2, 3}
    assert set(b["shape"][present].tolist()) == set(range(len(SHAPES)))
    # some shape is partly hidden: its full disc/polygon is larger than its visible part
    from cnref.mini.data.scenes import signed_distance
    full = signed_distance(Scenes().params(range(300)), 32) <= 0
    assert (full.sum((2, 3)) > b["visible"].sum((2, 3))).any()


def test_prompt_names_each_shape_and_colour():
    b = Scenes().batch(range(20))
    vocab = set(scene_vocabulary())
    from cnref.mini.data import COLOR_NAMES
    for i, prompt in enumerate(b["prompt"]):
        assert set(prompt.split()) <= vocab
        for s, c in zip(b["shape"][i].tolist(), b["color"][i].tolist()):
            if s >= 0:
                assert f"{COLOR_NAMES[c]} {SHAPES[s]}" in prompt
        assert prompt.endswith(f"on {COLOR_NAMES[b['background'][i]]} background")


@pytest.mark.parametrize("condition", CONDITIONS)
def test_condition_types(condition):
    s = Scenes(size=32, cond_factor=2, condition=condition)
    b = s.batch(range(16))
    c = b["cond"]
    assert c.shape == (16, 3, 64, 64) and c.min() >= 0 and c.max() <= 1 and c.max() > 0
    assert torch.equal(c, s.batch(range(16))["cond"])               # deterministic
    hi = Scenes(size=64, condition=condition).batch(range(16))      # the same scenes at the condition's size
    fg = hi["mask"]
    if condition == "segmentation":
        # colour-coded classes, exactly on the shapes
        assert torch.equal(c.amax(1, keepdim=True) > 0, fg)
        assert torch.equal(c.argmax(1, keepdim=True)[fg] + 1, hi["segmentation"][fg])
    elif condition == "depth":
        assert torch.equal(c[:, :1] > 0, fg)
        assert torch.allclose(c[:, :1] * 3, hi["depth"].float(), atol=1e-6)
    elif condition == "canny":
        assert set(torch.unique(c).tolist()) <= {0.0, 1.0}
        # OpenCV's edges lie on the exact visible outline: within 1 px of a boundary between two regions
        # (label_edges marks one pixel each side of it), computed from the masks, not from the image
        from cnref.mini.metrics import label_edges
        true = label_edges(hi["visible"])
        edges = c[:, :1] > 0.5
        assert edges.any() and (edges & near(true)).sum() / edges.sum() > 0.97
    else:
        # edges lie near the visible shapes' boundaries, never deep inside one visible region
        deep = erode(hi["visible"], 6 if condition == "scribble" else 3).any(1, keepdim=True)
        assert deep.any() and c[:, :1][deep].max() < 0.5


def test_scribble_differs_from_outline():
    a = Scenes(condition="outline").batch(range(8))["cond"]
    b = Scenes(condition="scribble").batch(range(8))["cond"]
    assert b.sum() > a.sum() and not torch.equal(a, b)


@pytest.mark.parametrize("kw, name", [({"condition": "edges"}, "condition"), ({"max_shapes": 0}, "max_shapes"),
                                      ({"max_shapes": 15}, "max_shapes"), ({"size": -1}, "size"),
                                      ({"n": 0}, "n")])
def test_bad_arguments_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=name):
        Scenes(**kw)


def test_bad_indices():
    with pytest.raises(ValueError, match="indices"):
        Scenes().batch([-1])

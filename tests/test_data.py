"""Procedural Fill50K, the detector, and the loaders of real assets (on small folders the tests write)."""
import json

import numpy as np
import pytest
import torch

from cnref.mini.data import COLOR_NAMES, VAL_SEED, Fill50K, batch_at, prompts_for_setting, to_pil, vocabulary
from cnref.mini.data.io import DiffusersColumns, Fill50KFolder, read_prompt_json, to_hf_dataset, write_fill50k_folder
from cnref.mini.metrics import fidelity

from conftest import near


def test_pure_function_of_seed_and_index():
    a, b = Fill50K(seed=3).batch([5, 9, 2]), Fill50K(seed=3).batch([9])
    assert torch.equal(a["image"][1], b["image"][0]) and a["prompt"][1] == b["prompt"][0]
    assert not torch.equal(Fill50K(seed=4).batch([9])["image"], b["image"])


def test_shapes_ranges_and_prompt():
    b = Fill50K(size=16, cond_factor=4).batch(range(8))
    assert b["image"].shape == (8, 3, 16, 16) and b["cond"].shape == (8, 3, 64, 64)
    assert b["image"].min() >= -1 and b["image"].max() <= 1 and b["cond"].min() >= 0 and b["cond"].max() <= 1
    assert b["mask"].dtype == torch.bool and b["mask"].shape == (8, 1, 16, 16)
    f, g = b["fill"][0].item(), b["background"][0].item()
    assert f != g and b["prompt"][0] == f"{COLOR_NAMES[f]} circle with {COLOR_NAMES[g]} background"
    assert set(" ".join(b["prompt"]).split()) <= set(vocabulary())


def test_finite_set_epochs_are_permutations():
    d = Fill50K(n=10)
    seen = [batch_at(d, s, 5)["prompt"] for s in range(2)]
    allp = [p for s in seen for p in s]
    assert sorted(allp) == sorted(d.batch(range(10))["prompt"])


def test_detector_on_real_targets():
    """The Table 2 calibration: re-detection on ground-truth images must give IoU > 0.95."""
    for size in (32, 64):
        b = Fill50K(size=size, seed=VAL_SEED).batch(range(128))
        m = fidelity(b["image"], b)
        assert m["iou"].mean() > 0.95 and m["fill_ok"].mean() == 1 and m["bg_ok"].mean() == 1


def test_detector_on_blank_images_is_poor():
    b = Fill50K(seed=VAL_SEED).batch(range(16))
    assert fidelity(torch.zeros_like(b["image"]) + 0.01 * torch.randn_like(b["image"]), b)["iou"].mean() < 0.3


def test_prompt_settings():
    b = Fill50K().batch(range(20))
    assert prompts_for_setting(b, "none") == [""] * 20 and prompts_for_setting(b, "insufficient") == ["circle"] * 20
    conf = prompts_for_setting(b, "conflicting")
    assert all(c != p for c, p in zip(conf, b["prompt"]))
    with pytest.raises(ValueError, match="`setting`.*'rude'"):
        prompts_for_setting(b, "rude")


@pytest.mark.parametrize("kw,msg", [(dict(size=0), "`size`: expected a positive integer, received 0"),
                                    (dict(cond_factor=3), "`cond_factor`: expected a power of two, received 3"),
                                    (dict(n=-1), "`n`: expected a positive integer, received -1")])
def test_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Fill50K(**kw)


def test_fill50k_folder_round_trip(tmp_path):
    d = Fill50K(size=16, cond_factor=2)
    root = write_fill50k_folder(d, 6, tmp_path / "fill50k")
    ds = Fill50KFolder(root, size=16, cond_factor=2)
    assert len(ds) == 6
    ref = d.batch(range(6))
    s = ds[3]
    assert s["prompt"] == ref["prompt"][3]
    assert (s["image"] - ref["image"][3]).abs().max() <= 2 / 255 + 1e-6      # 8-bit PNG quantisation
    assert (s["cond"] - ref["cond"][3]).abs().max() <= 1 / 255 + 1e-6


def test_to_pil_keeps_an_image_that_lies_wholly_in_0_1():
    """A sky-blue disc on pink is in [0, 1] as well as [-1, 1]: converted alone (as a one-sample chunk of the
    diffusers dataset is), it must come back as the same colours, not as if its range were [0, 1]."""
    d = Fill50K(size=8)
    i = next(k for k in range(1000) if d.batch([k])["image"].min() >= 0)
    x = d.batch([i])["image"]
    back = torch.from_numpy(np.array(to_pil(x)[0])).permute(2, 0, 1).float() / 127.5 - 1
    assert (back - x[0]).abs().max() <= 1 / 255 + 1e-6


def _folder(tmp_path, lines):
    root = write_fill50k_folder(Fill50K(size=8), 2, tmp_path / "f")
    (root / "prompt.json").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("line,msg", [
    ("{not json", r"prompt.json, line 2: expected a JSON object"),
    ('{"source": "source/0.png", "target": "target/0.png"}', r"line 2: expected a string field 'prompt', received None"),
    ('{"source": "source/7.png", "target": "target/0.png", "prompt": "x"}', r"line 2: source file .*source/7.png does not exist"),
    ('[1, 2]', r"line 2: expected a JSON object, received list"),
])
def test_malformed_prompt_json_names_file_and_line(tmp_path, line, msg):
    good = json.dumps({"source": "source/0.png", "target": "target/0.png", "prompt": "red circle"})
    with pytest.raises(ValueError, match=msg):
        read_prompt_json(_folder(tmp_path, [good, line]))


def test_hf_dataset_and_diffusers_columns(tmp_path):
    d = Fill50K(size=16)
    ds = to_hf_dataset(d, 10, cache_dir=tmp_path / "cache")
    assert ds.column_names == ["image", "conditioning_image", "text", "fill", "background"] and len(ds) == 10
    cols = DiffusersColumns(ds, size=16)
    ref = d.batch(range(10))
    assert cols[4]["prompt"] == ref["prompt"][4]
    assert (cols[4]["image"] - ref["image"][4]).abs().max() <= 2 / 255 + 1e-6
    with pytest.raises(ValueError, match=r"`caption_column`: expected a column of the dataset .*received 'caption'"):
        DiffusersColumns(ds, caption_column="caption")


def test_images_do_not_depend_on_the_condition_resolution():
    """The base trains on data rendered at cond_factor 1 (it never sees conditions): same images."""
    from cnref.mini.data import DATASETS, dataset
    for name in DATASETS:
        lo = dataset(name, size=16, cond_factor=1, seed=0).batch(range(4))
        hi = dataset(name, size=16, cond_factor=4, seed=0).batch(range(4))
        assert torch.equal(lo["image"], hi["image"]) and lo["prompt"] == hi["prompt"]


@pytest.mark.parametrize("factor", [1, 2])
def test_the_condition_outlines_the_exact_disc(factor):
    """The condition's lit pixels lie within 1 px of the exact disc's boundary (both sides of it, at the condition's
    resolution), and every boundary pixel has a lit pixel within 1 px: an outline drawn at another radius fails."""
    size = 64
    b = Fill50K(size=size, cond_factor=factor).batch(range(16))
    exact = Fill50K(size=size * factor).batch(range(16))["mask"]        # the same discs at the condition's size
    lit = b["cond"][:, :1] > 0.5
    boundary = exact & near(~exact) | ~exact & near(exact)
    assert lit.any() and not (lit & ~near(boundary)).any()
    assert not (boundary & ~near(lit)).any()

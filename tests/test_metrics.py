"""Condition-fidelity metrics against exact masks: hand-made edges and calibration on ground truth."""
import torch

from cnref.mini.data import VAL_SEED, Scenes
from cnref.mini.metrics import edge_f1, label_edges, scene_fidelity


def test_label_edges_exact():
    vis = torch.zeros(1, 2, 6, 6, dtype=torch.bool)
    vis[0, 0, 1:3, 1:3] = True          # a 2x2 shape; another shape's 1x1 pixel at (4, 4)
    vis[0, 1, 4, 4] = True
    e = label_edges(vis)[0, 0]
    want = torch.zeros(6, 6, dtype=torch.bool)
    want[0:4, 1:3] = True; want[1:3, 0:4] = True             # the square and its 4-neighbours outside
    want[3:6, 4] = True; want[4, 3:6] = True
    assert torch.equal(e, want)


def test_scene_fidelity_calibration():
    b = Scenes(seed=VAL_SEED).batch(range(64))
    gt = scene_fidelity(b["image"], b)
    assert gt["edge_f1"].mean() > 0.99 and gt["color_ok"].mean() > 0.99 and gt["bg_ok"].mean() == 1
    other = scene_fidelity(Scenes(seed=VAL_SEED).batch(range(64, 128))["image"], b)
    assert other["edge_f1"].mean() < 0.5 and other["color_ok"].mean() < 0.2
    shifted = edge_f1(torch.roll(b["image"], 2, -1), b["visible"])
    assert gt["edge_f1"].mean() > shifted.mean() > other["edge_f1"].mean()    # it degrades gradually
    assert edge_f1(torch.zeros_like(b["image"]), b["visible"]).eq(0).all()   # no edges detected: F1 0

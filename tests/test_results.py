"""Result files: the committed ones carry provenance; cut-short runs are read back from Lightning's log."""
import json

import pytest

from cnref.lab.results import KEEP_WEIGHTS, history_from_lightning_csv, results_root


def test_committed_results_carry_provenance():
    """Every committed run says what produced it; a reused run points at a run with the same config."""
    RESULTS = results_root()
    paths = sorted(p for p in RESULTS.glob("*/*/*/seed*.json") if p.parts[-4] != "studies")
    for p in paths:
        r = json.loads(p.read_text())
        if r["ablation"] in KEEP_WEIGHTS:
            assert p.with_suffix(".safetensors").exists(), p
        assert r["complete"] and f"seed{r['seed']}.json" == p.name, p
        assert r["variant"] == p.parent.name and r["preset"] == p.parent.parent.name, p
        assert {"command", "commit", "device", "versions"} <= set(r["provenance"]), p
        assert r["config"]["seed"] == r["seed"], p
        assert p.with_suffix(".npz").exists(), p
        if "reused_from" in r:
            src = json.loads((RESULTS / r["reused_from"]).read_text())
            assert src["config"] == r["config"] and "reused_from" not in src, p
    for p in sorted(RESULTS.glob("studies/*/*/seed*.json")):
        r = json.loads(p.read_text())
        assert r["study"] == p.parent.name and r["preset"] == p.parent.parent.name, p
        assert {"command", "commit", "device", "versions"} <= set(r["provenance"]), p
        assert p.with_suffix(".npz").exists() and r["results"], p
        for src in r["controlnets"].values():            # the trained ControlNets it sampled from
            assert (RESULTS / src).exists(), (p, src)


def _provenances(node, path=()):
    """Every provenance record (a dict with a "commit") inside a JSON document, with where it sits."""
    if isinstance(node, dict):
        if isinstance(node.get("commit"), str):
            yield path, node
        for k, v in node.items():
            yield from _provenances(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _provenances(v, (*path, i))


def test_no_committed_result_from_an_uncommitted_tree_without_its_diff():
    """A result made with uncommitted changes in cnref/ (commit "...+dirty") carries the diff it ran with, in a
    file next to it, or a note of what the changes were (the shipped base, whose weights predate the rule)."""
    RESULTS = results_root()
    dirty = []
    for p in sorted(RESULTS.rglob("*.json")):
        for where, prov in _provenances(json.loads(p.read_text())):
            if not prov["commit"].endswith("+dirty"):
                continue
            if "diff" in prov and (p.parent / prov["diff"]).is_file():
                continue
            if prov.get("dirty_note"):
                continue
            dirty.append(f"{p.relative_to(RESULTS)} {'/'.join(map(str, where))}")
    assert not dirty, f"+dirty results without their diff: {dirty}"


def test_history_from_lightning_csv_reads_one_row_per_validation(tmp_path):
    """Lightning logs every 10 steps and repeats a validation's values until the next one; the last
    validation (at step 40 = steps) is logged from the training_step of step 39. A CSV written that way
    (val_every 20, validations at 0, 20, 40) gives back those three validations."""
    val = {0: (0.2, 5.0), 20: (0.5, 15.0), 40: (0.9, 25.0)}        # step -> (iou, elapsed_s)
    lines = ["epoch,step,train/loss,val/elapsed_s,val/iou"]
    for step in (9, 19, 29, 39):
        v = val[40] if step == 39 else val[max(s for s in val if s <= step)]
        lines.append(f"0,{step},{step / 100},{v[1]},{v[0]}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    h = history_from_lightning_csv(tmp_path / "m.csv", val_every=20)
    assert [(r["step"], r["iou"], r["elapsed_s"]) for r in h] == [(0, 0.2, 5.0), (20, 0.5, 15.0), (40, 0.9, 25.0)]
    assert h[0]["loss"] is None and h[1]["loss"] == pytest.approx((0.09 + 0.19) / 2)

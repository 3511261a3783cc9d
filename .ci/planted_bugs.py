"""Plants each bug below in the code, one at a time, runs the fast tests that should catch it, and restores the file:
every line should say CAUGHT. `python .ci/planted_bugs.py` (about a minute; not part of CI)."""
import subprocess, sys
BUGS = [
 ("gradient checkpointing a no-op", "cnref/paper/controlnet.py",
  "        m._gradient_checkpointing_func, m.gradient_checkpointing = ckpt, enable", "        pass", "tests/test_controlnet.py"),
 ("cross-normalisation's s ignored", "cnref/successors/controlnext.py",
  "        return Control(tuple(s * cross_normalize(r, h)", "        return Control(tuple(1.0 * cross_normalize(r, h)", "tests/test_probe.py"),
 ("T2I features one layer early at level 1", "cnref/successors/t2i_adapter.py",
  "    return [b.attentions[-1] if getattr(b, \"attentions\", None) else b.resnets[-1] for b in unet.down_blocks]",
  "    return [b.attentions[-1] if getattr(b, \"attentions\", None) else (b.resnets[-2] if i == 1 else b.resnets[-1]) for i, b in enumerate(unet.down_blocks)]",
  "tests/test_t2i_adapter.py"),
 ("Canny shifted by 3 px", "cnref/mini/data/scenes.py",
  "    edges = np.stack([cv2.Canny(np.ascontiguousarray(im), low, high) for im in u8])",
  "    edges = np.roll(np.stack([cv2.Canny(np.ascontiguousarray(im), low, high) for im in u8]), 3, axis=2)", "tests/test_scenes.py"),
 ("Fill50K outline at 1.2 r", "cnref/mini/data/fill50k.py",
  "outline = (1 - ((d_c - p[\"r\"][:, None, None]).abs()", "outline = (1 - ((d_c - 1.2 * p[\"r\"][:, None, None]).abs()", "tests/test_data.py"),
 ("ControlNeXt's + h dropped", "cnref/successors/controlnext.py",
  "        return self.out(self.mid(h) + h)", "        return self.out(self.mid(h))", "tests/test_controlnext.py"),
 ("Gaussian init leaves the biases zero", "cnref/paper/zero_conv.py",
  "    nn.init.normal_(conv.bias, std=std)", "    nn.init.zeros_(conv.bias)", "tests/test_controlnet.py"),
 ("the decoder's optimiser group dropped", "cnref/mini/train.py",
  "            groups.append({\"params\": self.decoder_params, \"lr\": self.cfg.decoder_lr})", "            pass", "tests/test_engine.py"),
 ("EMA with the wrong weight", "cnref/mini/ema.py", "            s.lerp_(p.detach(), 1 - d)", "            s.lerp_(p.detach(), d)", "tests/test_engine.py"),
 ("a missing checkpoint key accepted", "cnref/mini/train.py", "    if missing:\n        fail(\"checkpoint\"", "    if False:\n        fail(\"checkpoint\"", "tests/test_engine.py"),
]
for name, path, old, new, test in BUGS:
    src = open(path).read()
    assert src.count(old) == 1, (name, src.count(old))
    open(path, "w").write(src.replace(old, new))
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", test],
                           capture_output=True, text=True)
        last = [l for l in r.stdout.splitlines() if l.startswith(("FAILED", "ERROR"))][:1]
        print(f"{'CAUGHT' if r.returncode else 'MISSED'}  {name}: {last[0][:110] if last else r.stdout.splitlines()[-1]}")
    finally:
        open(path, "w").write(src)

"""The mini Stable Diffusion that every experiment runs on, and how a control is trained over it:

- `data`: the procedural data sets (Fill50K, scenes) and loaders for real folders;
- `presets`: every preset's frozen configs (smoke, cpu, gpu) and `--set key=value` overrides;
- `base`: the locked base (a diffusers UNet and a small CLIP text encoder) and its schedulers;
- `shipping`: the base's shipped weights (`weights/`) and how they are stored;
- `metrics`: condition fidelity (IoU against the exact mask, edge F1), which validation records;
- `probe`: the gate and readout instruments that instrumented runs record at each validation;
- `use`: how much a control uses its condition (a loss gap and its share inside the disc), at every validation;
- `sample`: DDIM sampling with CFG under any design;
- `engine`, `train`: the Lightning loop: pretraining the base, training a control, resumable;
- `ema`: the exponential moving average of the base's weights during its pretraining (only user).

`metrics`, `probe` and `use` sit here, below training, because training records them at each validation;
cnref.measure builds the final evaluation on them. May import cnref.successors, cnref.paper and the shared
modules; never cnref.measure or above.
"""

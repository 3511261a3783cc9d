"""Measures on top of the mini model: the final evaluation protocol (`evaluate`: four prompt settings, the
calibration bounds, the base's colour fidelity), image quality (`quality`: KID on (image, condition) pairs, FID),
how visible the disc is at each timestep (`visibility`), speed benchmarks against diffusers (`bench`) and what a
variant or a design costs (`costs`). May import cnref.mini, cnref.successors, cnref.paper and the shared
modules; never cnref.lab or above."""

"""The ControlNet paper, one equation per function or class, each with the equation in its docstring:

- `zero_conv`: Z, the zero convolution, and its analytic gradients (section 3.1);
- `block`: Eq. 1-2 on one block, y_c = F(x; Θ) + Z(F(x + Z(c; Θz1); Θc); Θz2);
- `hint`: E, the hint encoder, as the official code and as the paper's text build it (section 3.2);
- `control`: the 13 residuals a ControlNet hands the locked UNet, their scales and sums (section 3.4), and the
  protocol every control design answers (`Design`);
- `controlnet`: the ControlNet over a Stable-Diffusion-shaped UNet (Fig. 3) and the paper's own ablations (lite,
  Gaussian init, middle block only), the decoder unlock of large-scale training;
- `guidance`: classifier-free guidance with a control, its modes and resolution weighting (section 3.4);
- `loss`: Eq. 3, with the prompt dropout of section 3.3;
- `interop`: the ControlNet <-> diffusers' `ControlNetModel`, and any design saved in diffusers' format. It sits
  here because it needs nothing but the paper's ControlNet, torch and diffusers.

Depends on torch, diffusers and cnref.checks only.
"""

"""cnref: ControlNet, one paper equation per function, each checked against an independent reference.

The package's folders are its layers; each imports only from the layers below it (an import-linter contract in
pyproject.toml, checked by the tests):

    cli.py        `python -m cnref <verb>`: one command line over everything below
    views/        tables, figures, the README's claims table, the book, one helper object per notebook
    lab/          ablations and studies declared with their claims, the resumable runner, result files,
                  the verdict rule
    measure/      the final evaluation protocol, image quality (KID, FID), visibility, benchmarks and costs
    mini/         the mini Stable Diffusion: data, presets, the locked base, DDIM sampling, training, and what
                  training records at each validation (condition fidelity, the probe)
    successors/   T2I-Adapter, ControlNet-XS, ControlNeXt and the options other papers lend the ControlNet
    paper/        the ControlNet paper's equations and the control protocol every design answers
    checks.py, provenance.py   argument checks and run provenance, used by every layer
"""
import warnings

# tqdm.auto (imported by our dependencies) warns in a notebook without ipywidgets; cnref draws no widget bars
warnings.filterwarnings("ignore", message="IProgress not found")

#!/usr/bin/env bash
# The README's two commands, on a fresh machine (each sets up .venv first if it is missing):
#   bash run.sh experiment    the default experiment (sudden convergence, cpu preset, seed 0, its first 300 steps;
#                             --seeds for more), trained into runs/scratch and shown against the committed seeds
#   bash run.sh test          all tests and all notebooks (smoke mode)
#   bash run.sh book          every notebook executed on the committed results (book/), and the site (runs/book/)
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import cnref, pytest, nbmake, jupytext, selenium, myst_nb" 2>/dev/null; then
    pip install -q --upgrade pip
    # PyTorch's CPU build from its CPU index; where that index cannot be reached, the default index's wheel
    # (the CPU build where the index serves one; on Linux PyPI's is the CUDA build, several GB)
    pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu --timeout 15 --retries 0 2>/dev/null \
        || pip install -q torch==2.13.0
    # the torch range in pyproject keeps the build above; the build backend's notices go to a log, shown on failure
    pip install -q -e ".[dev]" -c constraints.txt 2> .venv/install.log || { cat .venv/install.log >&2; exit 1; }
fi
case "${1:-}" in
    test)
        jupytext --quiet --to ipynb notebooks/*.py
        CNREF_SMOKE=1 python -m pytest -q tests --nbmake notebooks/*.ipynb
        ;;
    book)
        shift
        python -m cnref book "$@"
        ;;
    experiment)
        shift
        # the default recipe's first 300 steps (its lr is constant and its batches depend on the step alone, so
        # these are the full run's first 300), validated every 50, a final evaluation on 16 conditions: past the
        # jump within 10 minutes on 2 cores, set-up included. A later --set wins: --set steps=500 val_every=25
        # protocol.final_n=64 is the committed runs' length
        python -m cnref run sudden_convergence --preset cpu --seeds 0 --set steps=300 val_every=50 protocol.final_n=16 "$@"
        ;;
    gpu)
        # the gpu preset's default experiment, 3 seeds at once on one GPU; its recipe, what chose it, and its time
        # on an H100 estimated from the GPU lease's measured steps: the README's "On one GPU". The 64x64 base
        # ships (cnref/mini/weights/base_gpu.safetensors); `python -m cnref train base --preset gpu --run-dir runs/base_gpu`
        # rebuilds it into runs/base_gpu (15 min)
        python -m cnref run sudden_convergence --preset gpu --seeds 0 1 2 --jobs 3
        ;;
    *)
        echo "usage: bash run.sh test | experiment | book | gpu" >&2
        exit 2
        ;;
esac

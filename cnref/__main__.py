"""`python -m cnref <verb>`: see cnref.cli.

What the commands import is checked first, so that a missing package is one line at the start, never a crash
minutes into a run (FID's torchmetrics and the scenes' OpenCV are imported only when first used)."""
import importlib.util
import sys

# module -> the package that provides it
NEEDS = {"torch": "torch", "diffusers": "diffusers", "transformers": "transformers", "lightning": "lightning",
         "safetensors": "safetensors", "scipy": "scipy", "torchmetrics": "torchmetrics", "matplotlib": "matplotlib",
         "cv2": "opencv-python-headless", "tqdm": "tqdm"}


def missing() -> list[str]:
    return [pkg for mod, pkg in NEEDS.items() if importlib.util.find_spec(mod) is None]


if __name__ == "__main__":
    if missing():
        sys.exit(f"cnref: missing {', '.join(missing())}: install with `pip install -e . -c constraints.txt` "
                 "(bash run.sh sets up .venv this way)")
    from .cli import main
    sys.exit(main())

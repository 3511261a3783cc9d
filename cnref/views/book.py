"""The book: every notebook run in full mode on the committed results, published two ways.

- `book/<name>.ipynb`: the executed notebook with its outputs and figures, which a code host shows as it is.
  Its metadata records what it was made from: the sha256 of its `.py` source and of every file under
  `experiments/` that the run opened or listed, so that `stale` can say when one no longer matches.
- `<site>/index.html` and one page per notebook: the site Sphinx builds from them (`cnref.views.site`): a sidebar
  of contents in reading order, search, folded plotting code, math typeset with nothing fetched at view time, and a
  page with every claim linking to its notebook.

    python -m cnref book              # execute every notebook (minutes), then render the site
    python -m cnref book --render     # render the site from the executed notebooks already in book/ (seconds)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ..checks import fail
from ..lab.ablations import ABLATIONS
from ..lab.studies import STUDIES
from ..mini.presets import NAMES
from .site import build_site
from .readme import judged_claims

BOOK = Path("book")
SITE = Path("runs") / "book"

# The reading order: each notebook under its part, with the one question it answers (book/README.md, the links
# between notebooks and the site's contents are written from this list alone).
ORDER = {
    "How ControlNet works": [
        ("01_zero_convolution", "Why does a zero convolution learn at all, when its output and most gradients start at zero?"),
        ("02_controlnet_over_sd", "How does the trainable copy attach to a locked UNet, and does ours compute what diffusers' does?"),
        ("03_guidance", "Where can the control go under classifier-free guidance, and what does each choice do to the formula?"),
        ("04_training", "What does a ControlNet train on, with which loss, and what does one training step change?"),
    ],
    "The paper's training claims, measured": [
        ("05_sudden_convergence", "Does the model learn the condition suddenly (Fig. 4), or is the jump in the measure?"),
        ("06_zero_init", "Do zero convolutions beat Gaussian-initialised ones (Fig. 8b)?"),
        ("07_lite", "Does ControlNet-lite fail without a prompt (Fig. 8c), or is it only slower?"),
        ("08_dataset_size", "How few training images are enough (Fig. 10)?"),
        ("09_prompt_dropout", "Does dropping half the prompts help when there is no prompt?"),
        ("10_mid_only", "Is connecting the middle block alone enough, and is it faster?"),
        ("11_batch_vs_steps", "Does the jump come at a fixed step whatever the batch (the official training notes)?"),
        ("12_timestep_sampling", "Does sampling large timesteps more often bring the jump forward?"),
        ("13_hint_encoders", "Does the paper's hint encoder work as well as the code's?"),
    ],
    "The paper's inference claims, measured": [
        ("14_scenes", "Does a ControlNet learn richer conditions (outlines, segmentation maps) on procedural scenes?"),
        ("15_cfg", "Where should the control go under guidance with no prompt (Fig. 5), and does resolution weighting help?"),
        ("16_guess", "Do diffusers' guess-mode scales behave like the official ones?"),
        ("17_strength", "Does the control strength work as a dial?"),
        ("18_compose", "Do two ControlNets compose by a plain sum (Fig. 6)?"),
    ],
    "Beyond the paper": [
        ("19_why_sudden", "Why is the convergence sudden: which published explanation survives its own predictions?"),
        ("20_image_quality", "What does control cost in image quality, measured by a metric that sees placement?"),
        ("21_alternatives", "How do ControlNet's successors compare on one engine, data and recipe?"),
    ],
}
READING = [stem for part in ORDER.values() for stem, _ in part]

GLOSSARY = """\
- **prompt settings**: the paper's four ways of prompting at sampling (Fig. 8): the perfect prompt, none, an
  insufficient one ("circle") and a conflicting one (other colours than the condition's scene).
- **condition fidelity**: how well a sample follows its condition: the IoU of the disc detected in it with the
  true disc (Fill50K), or edge F1 against the scene's true outline (scenes). Notebook 04 shows the detector.
- **calibration rows**: the same measure on the ground-truth targets (the best possible) and on the base alone
  (no control), same conditions and sampler: every table's upper and lower bounds.
- **convergence level, convergence step**: a quarter of the way from the base alone to the ground truth on a run's
  own validation; the step at which its curve first reaches it (notebook 05).
- **censored run**: one that never reached the level; its step counts as "at least its last step".
- **verdict**: confirmed, refuted or unclear by the one rule stated before the runs (docs/verdict-rule.md), with
  its p or interval; **post hoc** marks a claim written after its data.
"""


def _label(stem: str) -> str:
    """"05_sudden_convergence" -> "05 Sudden convergence"."""
    return f"{stem[:2]} {stem[3:].replace('_', ' ').capitalize()}"


def front_page() -> str:
    """book/README.md: the reading order, one question per notebook, and the book's terms."""
    lines = ["# The cnref book", "",
             "ControlNet's paper, read as a set of claims and tested. Each notebook below was executed on the "
             "committed results; read them in this order (each links to the one before and after). Every number in "
             "them comes from a run in `experiments/`, and every verdict from the rule in "
             "[docs/verdict-rule.md](../docs/verdict-rule.md).", ""]
    for part, items in ORDER.items():
        lines += [f"## {part}", ""]
        lines += [f"{i}. [{_label(stem)}]({stem}.ipynb): {question}" for i, (stem, question) in
                  enumerate(items, start=READING.index(items[0][0]) + 1)]
        lines.append("")
    lines += ["## Terms used throughout", "", GLOSSARY]
    return "\n".join(lines)


def navigation(stem: str) -> str:
    """The links at the end of a notebook: the one before, the contents, the one after."""
    i = READING.index(stem)
    links = [f"previous: [{_label(READING[i - 1])}]({READING[i - 1]}.ipynb)"] if i else []
    links.append("[contents](README.md)")
    links += [f"next: [{_label(READING[i + 1])}]({READING[i + 1]}.ipynb)"] if i + 1 < len(READING) else []
    return " · ".join(links)

# Run first in the kernel and removed before saving: records every file and folder under the results that
# the notebook opens or lists (Python's audit events), which is what its outputs were made from.
_TRACK = """\
import os as _os, sys as _sys
_cnref_inputs = set()
def _cnref_audit(event, args, _root=_os.path.realpath({root!r}) + _os.sep):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, _os.PathLike)):
        p = _os.path.realpath(_os.fsdecode(args[0]))
        if p.startswith(_root):
            _cnref_inputs.add(p)
_sys.addaudithook(_cnref_audit)
"""
_REPORT = "import json as _json; print(_json.dumps(sorted(_cnref_inputs)))"


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def digest(path: Path) -> str | None:
    """A file's sha256, a folder's listing's, None when it is gone."""
    if path.is_dir():
        return sha256("\n".join(sorted(p.name for p in path.iterdir())).encode())
    return sha256(path.read_bytes()) if path.is_file() else None


def inputs_of(paths: list[str], repo: Path) -> dict[str, str | None]:
    return {Path(p).relative_to(repo.resolve()).as_posix(): digest(Path(p)) for p in paths}


def declared_folders(notebook: str, repo: Path) -> dict[str, str | None]:
    """The result folders of the ablations and studies declared for a notebook, each at every preset, with their
    digests: a folder the notebook found empty or missing when it ran leaves no trace in what it opened, so its
    first run landing would otherwise go unnoticed."""
    folders = [f"experiments/{a.name}/{p}" for a in ABLATIONS.values() if a.notebook == notebook for p in NAMES]
    folders += [f"experiments/studies/{p}/{s.name}" for s in STUDIES.values() if s.notebook == notebook for p in NAMES]
    return {f: digest(repo / f) for f in folders}


def execute(source: Path, repo: Path, out: Path, timeout: int = 3600) -> Path:
    """Run one `.py` notebook in full mode (its folder as working directory) and save it, outputs and provenance
    included, as out/<name>.ipynb. A cell that fails stops the build with the notebook's name and the error."""
    import jupytext                                      # deferred: the notebooks extra, needed by the book only
    from nbclient import NotebookClient                  # deferred: as above
    from nbclient.exceptions import CellExecutionError   # deferred: as above
    from nbformat.v4 import new_code_cell, new_markdown_cell   # deferred: as above

    nb = jupytext.read(source)
    nb.cells.insert(0, new_code_cell(_TRACK.format(root=str(repo / "experiments"))))
    nb.cells.append(new_code_cell(_REPORT))
    env_smoke = os.environ.pop("CNREF_SMOKE", None)        # the kernel inherits the environment: full mode
    try:
        # the kernel's own notices (about its local TCP sockets) go to a log beside the site, not the terminal;
        # what a cell prints or raises comes back in its outputs
        log = repo / SITE / "kernel.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as err:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(source.parent)}}).execute(stderr=err)
    except CellExecutionError as e:
        last = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()[-1]      # without the terminal colours
        fail("notebook", "a notebook that runs in full mode", f"{source.name}: {last}")
    finally:
        if env_smoke is not None:
            os.environ["CNREF_SMOKE"] = env_smoke
    read = json.loads("".join(o.get("text", "") for o in nb.cells[-1].outputs))
    nb.cells = nb.cells[1:-1]
    if source.stem in READING:
        nb.cells.append(new_markdown_cell(navigation(source.stem)))
    for c in nb.cells:                  # counts as if the tracking cell had not run first
        if c.cell_type == "code" and c.execution_count is not None:
            c.execution_count -= 1
    nb.metadata["cnref"] = {"source": source.name, "source_sha256": sha256(source.read_bytes()),
                            "inputs": {**declared_folders(source.name, repo), **inputs_of(read, repo)}}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{source.stem}.ipynb"
    jupytext.write(nb, path, fmt="ipynb")
    return path


def stale(repo: Path, book: Path | None = None) -> list[str]:
    """Why each executed notebook no longer matches its source or its results (empty: all fresh)."""
    book = book or repo / BOOK
    why = []
    for src in sorted((repo / "notebooks").glob("*.py")):
        path = book / f"{src.stem}.ipynb"
        if not path.is_file():
            why.append(f"{src.stem}: not executed")
            continue
        meta = json.loads(path.read_text())["metadata"].get("cnref", {})
        if meta.get("source_sha256") != sha256(src.read_bytes()):
            why.append(f"{src.stem}: its source changed")
        changed = [p for p, h in meta.get("inputs", {}).items() if digest(repo / p) != h]
        if changed:
            why.append(f"{src.stem}: {len(changed)} result file(s) changed, e.g. {changed[0]}")
    return why


def render(book: Path, site: Path, claims: list[tuple] | None = None) -> list[Path]:
    """Write the site from the executed notebooks (`cnref.views.site`). Returns its pages: the index first."""
    return build_site(book, site, claims or [], ORDER, front_page())


def build(repo: Path, names: list[str] | None = None, execute_first: bool = True, site: Path | None = None,
          preset: str = "cpu") -> list[Path]:
    """Execute the notebooks (all, or those whose stem starts with one of `names`) into book/, then render the
    site (default runs/book/) with the claims table of `preset`."""
    from tqdm import tqdm        # deferred: keeps this module's import light (the CLI imports it at start)
    sources = sorted((repo / "notebooks").glob("*.py"))
    if names:
        picked = [s for s in sources if any(s.stem.startswith(n) for n in names)]
        if not picked:
            fail("notebooks", f"stems starting with one of {names}", ", ".join(s.stem for s in sources))
        sources = picked
    if execute_first:
        for src in tqdm(sources, desc="execute", unit="notebook"):
            execute(src, repo, repo / BOOK)
    (repo / BOOK / "README.md").write_text(front_page())
    return render(repo / BOOK, site or repo / SITE, judged_claims(preset, repo / "experiments"))

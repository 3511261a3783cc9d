"""The book's site: the executed notebooks of book/ built by Sphinx with myst-nb and the book theme.

Why these: myst-nb renders executed notebooks as they are (nothing re-runs), resolves the notebooks' links to each
other as cross-references, folds a cell's code behind a "show code" toggle by a cell tag, and the book theme gives
a sidebar of contents and a search that run in the browser. Math is typeset by MathJax 2, copied into the site
from the jupyter-server-mathjax package, so nothing is fetched when a page is viewed.

Folded: the code of the experiment notebooks (05 onwards), which draws and tabulates; shown: 01-04's, where the
paper's own code is what is taught.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..checks import fail
from .readme import cell
from .tables import evidence

TAUGHT = 4             # notebooks 01-04 teach the code: shown in full; the rest fold theirs

CONF = '''\
project = "cnref: ControlNet, every claim tested"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = "cnref"
html_static_path = ["_static"]
html_theme_options = {"show_toc_level": 2, "navigation_with_keys": True}
html_show_sourcelink = False
nb_execution_mode = "off"
nb_merge_streams = True
nb_render_markdown_format = "myst"   # outputs' markdown as the pages' own: tables and $math$ (CommonMark has neither)
myst_enable_extensions = ["dollarmath", "amsmath"]
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {"tex2jax": {"inlineMath": [["\\\\(", "\\\\)"]], "displayMath": [["\\\\[", "\\\\]"]],
                               "processEscapes": True, "ignoreClass": "document", "processClass": "math|output_area"},
                    # the packaged MathJax carries the STIX web fonts only
                    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None}}
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"]
exclude_patterns = ["_build"]
'''


def _index(order: dict, front: str) -> str:
    """The site's front page: book/README.md's text, then one table of contents per part."""
    trees = "".join(f"\n```{{toctree}}\n:caption: {part}\n:maxdepth: 1\n\n" + "\n".join(stem for stem, _ in items)
                    + "\n```\n" for part, items in order.items())
    return front + trees + "\n```{toctree}\n:caption: Every claim\n:maxdepth: 1\n\nclaims\n```\n"


def claims_page(claims: list[tuple]) -> str:
    """Every claim with its verdict and evidence, linking to the notebook that reads it."""
    rows = ["# Every claim, judged on the committed results", "",
            "| claim | paper | verdict | p or 90% CI | notebook |", "|---|---|---|---|---|"]
    for c, j, _, notebook, _ in claims:
        stem = Path(notebook).stem
        rows.append(f"| {cell(c.text)} | {cell(c.paper)} | **{cell(j['verdict'])}** | {cell(evidence(c, j))} | "
                    f"[{stem}]({stem}.ipynb) |")
    return "\n".join(rows) + "\n"


def build_site(book: Path, site: Path, claims: list[tuple], order: dict, front: str) -> list[Path]:
    """Write the site from the executed notebooks in `book` into `site` (index.html: `front` and the contents of
    `order`, part -> [(notebook, question)]; one page per notebook; the claims page; search). Returns the index,
    then the notebook pages in reading order."""
    import jupyter_server_mathjax    # deferred: the notebooks extra, needed by the site only
    import nbformat                  # deferred: as above
    from sphinx.cmd.build import build_main   # deferred: as above

    reading = [stem for items in order.values() for stem, _ in items]
    missing = [s for s in reading if not (book / f"{s}.ipynb").is_file()]
    if missing:
        fail("book", "every notebook executed into book/ (python -m cnref book)", f"missing {missing}")
    src = site.parent / f"{site.name}-src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "_static").mkdir(parents=True)
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", src / "_static" / "mathjax")
    (src / "conf.py").write_text(CONF)
    front = front.replace("[docs/verdict-rule.md](../docs/verdict-rule.md)", "`docs/verdict-rule.md`")
    (src / "index.md").write_text(_index(order, front))
    (src / "claims.md").write_text(claims_page(claims))
    for i, stem in enumerate(reading):
        nb = nbformat.read(book / f"{stem}.ipynb", as_version=4)
        for c in nb.cells:
            if c.cell_type == "code" and i >= TAUGHT:
                c.metadata.setdefault("tags", []).append("hide-input")
            if c.cell_type == "markdown":
                c.source = c.source.replace("(README.md)", "(index.md)")
        nbformat.write(nb, src / f"{stem}.ipynb")
    shutil.rmtree(site, ignore_errors=True)
    if build_main(["-b", "html", "-q", "-j", "1", str(src), str(site)]) != 0:
        fail("site", "a Sphinx build without errors", f"see the messages above (sources in {src})")
    return [site / "index.html", *(site / f"{stem}.html" for stem in reading)]

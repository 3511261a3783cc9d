"""The book: the executed notebooks match their sources and results, and the rendered site works in a real browser
(Debian's chromium, headless, through selenium; nothing is downloaded)."""
import json
import os
import shutil
from pathlib import Path

import pytest

from cnref.views.book import digest, render, stale

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"


def test_every_executed_notebook_matches_its_source_and_results():
    assert stale(REPO) == [], "rerun `python -m cnref book` (or the stems listed) and commit book/"


def test_stale_names_a_changed_source_and_a_changed_result(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "experiments" / "a").mkdir(parents=True)
    src, res = tmp_path / "notebooks" / "01_x.py", tmp_path / "experiments" / "a" / "seed0.json"
    src.write_text("# %%\nprint(1)\n")
    res.write_text("{}")
    meta = {"source_sha256": digest(src), "inputs": {"experiments/a/seed0.json": digest(res),
                                                     "experiments/a": digest(res.parent)}}
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "01_x.ipynb").write_text(json.dumps({"metadata": {"cnref": meta}}))
    assert stale(tmp_path) == []
    (res.parent / "seed1.json").write_text("{}")            # a new seed in a folder the notebook listed
    assert stale(tmp_path) == ["01_x: 1 result file(s) changed, e.g. experiments/a"]
    res.write_text('{"x": 1}')
    src.write_text("# %%\nprint(2)\n")
    why = stale(tmp_path)
    assert why[0] == "01_x: its source changed" and why[1].startswith("01_x: 2 result file(s) changed")


def test_a_notebook_is_stale_when_its_ablations_first_run_lands(tmp_path):
    """A notebook that ran before any run of one of its ablations opened nothing of it; the folder's appearance
    still makes it stale, because execution records every folder declared for the notebook."""
    from cnref.views.book import declared_folders
    folders = declared_folders("19_why_sudden.py", tmp_path)
    assert "experiments/which_gate/cpu" in folders and folders["experiments/which_gate/cpu"] is None
    assert "experiments/studies/cpu/quality" in declared_folders("20_image_quality.py", tmp_path)
    (tmp_path / "notebooks").mkdir()
    src = tmp_path / "notebooks" / "19_why_sudden.py"
    src.write_text("# %%\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "19_why_sudden.ipynb").write_text(json.dumps(
        {"metadata": {"cnref": {"source_sha256": digest(src), "inputs": folders}}}))
    assert stale(tmp_path) == []
    (tmp_path / "experiments" / "which_gate" / "cpu" / "z1_random").mkdir(parents=True)
    assert stale(tmp_path) == ["19_why_sudden: 1 result file(s) changed, e.g. experiments/which_gate/cpu"]


def _images(nb: dict) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
        pytest.skip("no chromium/chromedriver here")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.mark.slow
def test_the_site_opens_in_a_browser_with_every_figure_its_math_and_its_links(tmp_path):
    """Builds the site from the committed executed notebooks, then opens every page: it loads, every image decodes,
    each notebook page shows as many figures as its notebook has, no output is an error and no table an output
    prints in markdown is left as text; an equation is typeset
    (MathJax, served from the site); a notebook's "next" link opens the next notebook; every local link of the
    index resolves."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    nbs = {p.stem: json.loads(p.read_text()) for p in sorted(BOOK.glob("*.ipynb"))}
    assert nbs, "no executed notebooks in book/"
    for name, nb in nbs.items():
        errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{name}: an error output"
    site = tmp_path / "site"
    pages = render(BOOK, site)
    driver = _browser()
    local = lambda h: Path(h.split("://", 1)[1].split("#")[0].split("?")[0])
    try:
        for page in pages:
            driver.get(page.as_uri())
            assert driver.title and "not found" not in driver.title.lower(), page.name
            imgs = driver.execute_script(
                "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            assert all(imgs), f"{page.name}: an image did not load"
            if page.stem in nbs:
                assert len(imgs) == _images(nbs[page.stem]), page.name
                assert "Traceback (most recent call last)" not in driver.page_source, page.name
                raw = driver.execute_script("return Array.from(document.querySelectorAll('main p'))"
                                            ".filter(p => p.textContent.trim().startsWith('| ')).length")
                assert raw == 0, f"{page.name}: a markdown table shown as text"
        driver.get((site / "04_training.html").as_uri())
        typeset = "return document.querySelectorAll('.MathJax, .MathJax_Display').length"
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(typeset) > 0)
        assert "\\mathcal{L}" not in driver.find_element(By.TAG_NAME, "main").text    # no raw TeX left
        driver.find_element(By.PARTIAL_LINK_TEXT, "05 Sudden convergence").click()
        WebDriverWait(driver, 30).until(lambda d: d.current_url.split("#")[0].endswith("05_sudden_convergence.html"))
        assert driver.title.startswith("Sudden convergence")
        driver.get((site / "index.html").as_uri())
        links = "return Array.from(document.links).map(a => a.href)"
        # the click above can leave the previous page's load racing this one: wait until the index's links exist
        WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("index.html") and d.execute_script(links))
        hrefs = driver.execute_script(links)
        assert {local(h).name for h in hrefs if h.startswith("file:")} >= {f"{n}.html" for n in nbs}
        for h in {h for h in hrefs if h.startswith("file:")}:
            assert local(h).exists(), h
    finally:
        driver.quit()


def test_the_reading_order_holds_every_notebook_once_and_the_front_page_is_current():
    """book/README.md lists every notebook of notebooks/ once, in the order they are numbered, each with its
    question, and is what `python -m cnref book` writes; each executed notebook ends with its neighbours' links."""
    from cnref.views.book import READING, front_page, navigation
    assert READING == sorted(p.stem for p in (REPO / "notebooks").glob("*.py"))
    assert (BOOK / "README.md").read_text() == front_page(), "rerun `python -m cnref book --render`"
    assert navigation(READING[0]).startswith("[contents]") and "previous" in navigation(READING[-1])
    for stem in READING:
        last = json.loads((BOOK / f"{stem}.ipynb").read_text())["cells"][-1]
        assert "".join(last["source"]) == navigation(stem), stem

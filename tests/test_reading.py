"""A notebook's reading: every figure a field filled from the results, a missing one a one-line error."""
import numpy as np
import pytest

from cnref.views.notebook import Declared, show_reading, spread


def test_a_reading_fills_its_fields_and_names_a_missing_one():
    step = Declared({"zero": "237 ± 13 (n = 5)"}, ["zero", "gaussian_0.2"])
    text = show_reading("zero at {step[zero]}, std 0.2 at {step[gaussian_0.2]}", step=step)
    assert text == "zero at 237 ± 13 (n = 5), std 0.2 at (no runs yet)"      # declared, not yet run
    with pytest.raises(KeyError, match="reading: no fact 'typo' in the results"):
        show_reading("{step[typo]}", step=step)                              # not declared: an error
    with pytest.raises(KeyError, match="have: step"):
        show_reading("{iou[zero]}", step=step)


def test_spread_is_the_mean_and_sample_std():
    xs = [0.71, 0.75, 0.80]
    assert spread(xs) == f"{np.mean(xs):.2f} ± {np.std(xs, ddof=1):.2f} (n = 3)"
    assert spread([222.0], 0) == "222 (n = 1)" and spread([None]) == "none"


def test_an_explanation_survives_only_on_confirmed_predictions_and_none_refuted():
    from cnref.lab.declare import Claim
    from cnref.views.explanations import standing
    eq, lt = Claim("t", "-", "a", "b", "=", tol=0.01), Claim("t", "-", "a", "b", "<")
    v = lambda verdict, **j: {"verdict": verdict, "a": {}, **j}
    assert standing([eq, lt], [v("confirmed", ci90=(-0.005, 0.005)), v("too few seeds (n = 1)")]) == "survives"
    assert standing([eq, lt], [v("refuted"), v("unclear (seeds overlap)", diff=-3.0)]) == "refuted"
    assert standing([eq, eq], [v("confirmed"), v("refuted")]) == "mixed"
    assert standing([eq, lt], [v("pending (no results)"), v("unclear (seeds overlap)", diff=-3.0)]) == "undecided"
    # an unclear row whose evidence points against the prediction counts against it
    assert standing([eq, eq], [v("confirmed"), v("unclear (interval reaches past the tolerance)",
                                                  ci90=(0.005, 0.012))]) == "mixed"
    assert standing([lt], [v("unclear (seeds overlap)", diff=+20.0)]) == "refuted"


def test_the_why_sudden_table_has_one_row_per_explanation_with_its_claims(tmp_path):
    """On no results every explanation is undecided, each row naming the claims that carry its prediction."""
    from cnref.lab.claims import CLAIMS, STUDY_CLAIMS
    from cnref.views.explanations import EXPLANATIONS, explanations, judged_explanations
    table, leaves = explanations(judged_explanations("cpu", tmp_path)).split("\n\n")
    rows = table.splitlines()[2:]
    assert len(rows) == len(EXPLANATIONS) and all(r.endswith("| **undecided** |") for r in rows)
    assert leaves.startswith("What the data leave: ") and all(f"{t} (undecided)" in leaves for t in EXPLANATIONS)
    for row, sources in zip(rows, EXPLANATIONS.values()):
        cs = [c for c in (*CLAIMS, *STUDY_CLAIMS) if c.paper in sources]
        others = [c for c in (*CLAIMS, *STUDY_CLAIMS) if c.paper not in sources]
        assert cs and all(f"`{c.id}`" in row for c in cs)
        assert not any(f"`{c.id}`" in row for c in others if c.id not in {x.id for x in cs})
    # every source names claims that exist (a typo would leave an explanation with no predictions)
    assert all(any(c.paper == s for c in (*CLAIMS, *STUDY_CLAIMS)) for ss in EXPLANATIONS.values() for s in ss)


def test_the_readout_lead_is_a_share_of_the_jump_step_from_the_stated_level():
    """A copy whose readout reaches the stated level 0.5 at step 100, images converging at 200: it leads by half
    the step; a readout that never reaches 0.5 (as none of the study's did), or a run that never converged, has
    no lead."""
    from cnref.views.sudden import lead_fraction
    h = [{"step": s, "readout": {"copy": c}} for s, c in ((0, 0.0), (50, 0.3), (100, 0.5), (150, 0.6))]
    assert lead_fraction({"history": h, "convergence_step": 200.0}) == 0.5
    assert lead_fraction({"history": h, "convergence_step": None}) is None
    low = [{"step": s, "readout": {"copy": 0.35}} for s in (0, 50)]
    assert lead_fraction({"history": low, "convergence_step": 200.0}) is None


def test_lack_of_fit_against_a_brute_force_anova():
    """The lack-of-fit F: its sums of squares recomputed from the definitions (pure error around each x's mean,
    lack of fit of the means around the line, weighted by the replicates)."""
    from scipy.stats import f as f_dist
    from cnref.views.sudden import lack_of_fit
    g = np.random.default_rng(0)
    x = np.repeat([0.0, 1.0, 2.0, 3.0], 3)
    y = 2 - 0.8 * x + 0.3 * (x - 1.5) ** 2 + g.normal(0, 0.05, len(x))
    b, a = np.polyfit(x, y, 1)
    means = {v: y[x == v].mean() for v in set(x)}
    ss_lof = sum(3 * (means[v] - (a + b * v)) ** 2 for v in means)
    ss_pe = sum(((y[x == v] - means[v]) ** 2).sum() for v in means)
    F = (ss_lof / 2) / (ss_pe / 8)
    out = lack_of_fit(x, y)
    assert out["F"] == pytest.approx(F) and out["p"] == pytest.approx(f_dist.sf(F, 2, 8)) and out["p"] < 0.05


def test_the_step_exponent_recovers_a_known_power_law_and_its_interval():
    """Runs placed on step = 20 lr^-0.7 exactly give k = 0.7 with a zero-width interval; with noise, k and its 90%
    interval match numpy's least squares and the textbook slope standard error. The batch-16 run (one lr) and the
    run that never converged are not fitted; the latter is counted."""
    from scipy.stats import t as student_t

    from cnref.views.sudden import step_exponent

    def run(lr, step, batch=64):
        return {"config": {"lr": lr, "batch_size": batch}, "convergence_step": step}
    lrs = [1e-4, 1e-4, 3e-4, 3e-4, 1e-3, 1e-3]
    exact = {"a": [run(lr, 20 * lr ** -0.7) for lr in lrs], "b16": [run(3e-4, 999.0, 16)], "c": [run(3e-5, None)]}
    fit = step_exponent(exact)
    assert fit["k"] == pytest.approx(0.7) and fit["ci"][1] - fit["ci"][0] == pytest.approx(0, abs=1e-9)
    assert (fit["batch"], fit["n"], fit["censored"]) == (64, 6, 1)

    noise = np.random.default_rng(0).lognormal(0, 0.2, len(lrs))
    x, y = np.log(lrs), np.log([20 * lr ** -0.7 * e for lr, e in zip(lrs, noise)])
    fit = step_exponent({"a": [run(lr, float(np.exp(v))) for lr, v in zip(lrs, y)]})
    slope, icpt = np.polyfit(x, y, 1)
    se = np.sqrt(np.sum((y - slope * x - icpt) ** 2) / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
    half = student_t.ppf(0.95, len(x) - 2) * se
    assert fit["k"] == pytest.approx(-slope) and fit["ci"] == pytest.approx((-slope - half, -slope + half))
    assert step_exponent({"a": [run(1e-4, 200.0), run(1e-4, 210.0), run(1e-4, 190.0)]}) is None


# ------------------------------------------------------------------ readings and prose against the repository
import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
FIELD = re.compile(r"\{v\[([^\]]+)\][^}]*\}|\{(?:step|iou|iou_none|start)\[([^\]]+)\]\}|\{m\[([^\]]+)\]\[[^\]]+\]\}")


def _claims_read_by(src: str) -> dict:
    """The claims a notebook's readings can name: those of the ablations and studies it reports, by id."""
    from cnref.lab.claims import CLAIMS, STUDY_CLAIMS
    out = {}
    for name in re.findall(r'(?:AblationReport|StudyReport)(?:\.smoke)?\("(\w+)"', src) + \
            (["successors", "successors_fair"] if "Designs(" in src else []):
        out.update({c.id: c for c in CLAIMS if c.ablation == name})
        out.update({c.id: c for c in STUDY_CLAIMS if c.study == name})
    return out


def test_a_verdict_is_named_by_id_never_taken_by_position():
    from cnref.lab.declare import Claim
    from cnref.views.tables import Verdicts
    c = Claim("t", "-", "a", "b", "<", ablation="x", id="a_before_b")
    v = Verdicts([c], lambda c: {"verdict": "pending (no results)", "a": None, "b": None})
    assert v["a_before_b"].word == "pending"
    with pytest.raises(KeyError, match="named by id: a_before_b"):
        v[0]


def test_every_number_beside_a_verdict_comes_from_that_verdicts_rows():
    """In every notebook's reading, a run's figure written just before a verdict (in the same sentence, since the
    previous verdict) is a figure of one of the two groups that verdict compares: a sentence cannot give one row's
    numbers and another row's verdict."""
    bad = []
    for path in NOTEBOOKS:
        src = path.read_text()
        claims = _claims_read_by(src)
        for text in re.findall(r'(?:reading\(|template = )"""(.*?)"""', src, re.S):
            for sentence in re.split(r"(?<=[.:;])\s+(?=[A-Z*\"(])", text):
                since = []
                for m in FIELD.finditer(sentence):
                    vid, run, setting = m.groups()
                    if not vid:
                        since.append(run or setting)
                        continue
                    assert vid in claims, f"{path.name}: no claim {vid!r} among {sorted(claims)}"
                    groups = {g.split(":")[-1] for g in (claims[vid].a, claims[vid].b)}
                    if since and since[-1] not in groups:
                        bad.append(f"{path.name}: {since[-1]} beside {vid} ({sentence[:80]}...)")
                    since = []
    assert not bad, bad


def _prose() -> dict[str, str]:
    """What a reader reads besides the code: the notebooks' markdown and readings, the README, the docs (the lab
    log excepted: a dated record, true as of each entry)."""
    files = NOTEBOOKS + [REPO / "README.md", REPO / "book" / "README.md"] + \
        [p for p in (REPO / "docs").glob("*.md") if p.name != "lab-log.md"]
    return {p.relative_to(REPO).as_posix(): p.read_text() for p in files if p.exists()}


def test_prose_names_only_notebooks_settings_and_code_that_exist():
    """Stale text cannot come back: every "notebook NN" is a notebook, a metric said to be in notebook NN is named
    there, every "N settings" of a study command is that study's count, every `cnref.module.name` imports."""
    from cnref.lab.studies import settings
    numbers = {p.name[:2] for p in NOTEBOOKS}
    bad = []
    for name, text in _prose().items():
        for m in re.finditer(r"notebooks? (\d{2})((?:(?:, | and | to | or )\d{2})*)", text):
            for nn in [m.group(1)] + re.findall(r"\d{2}", m.group(2)):
                if nn not in numbers:
                    bad.append(f"{name}: notebook {nn}")
        for m in re.finditer(r"\b(KID|edge F1|condition use|rise share)\b[^.;]{0,60}?\bnotebook (\d{2})\b", text):
            target = next((p for p in NOTEBOOKS if p.name.startswith(m.group(2))), None)
            if target is not None and m.group(1).lower() not in target.read_text().lower():
                bad.append(f"{name}: {m.group(1)} is not in notebook {m.group(2)}")
        for m in re.finditer(r"cnref study (\w+)[^\n]*?: (\d+) settings", text):
            n = len(settings(m.group(1), 3.0))
            if int(m.group(2)) != n:
                bad.append(f"{name}: study {m.group(1)} has {n} settings, not {m.group(2)}")
        for ref in set(re.findall(r"`(cnref(?:\.\w+)+)", text)):
            parts = ref.split(".")
            for i in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                    break
                except ImportError:
                    continue
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    bad.append(f"{name}: {ref}")
                    break
                obj = getattr(obj, attr)
    assert not bad, bad


def _commands() -> list[tuple[str, str]]:
    """Every `python -m cnref ...` command a reader is told to run, with the file that tells it (a notebook's
    markdown may break one across lines; placeholders such as <ablation> and "..." are not commands)."""
    out = []
    for name, text in _prose().items():
        flat = re.sub(r"\n\s*#? ?", " ", text)
        for m in re.finditer(r"`python -m (cnref[.\w]*)([^`]*)`", flat):
            if "<" not in m.group(2) and "..." not in m.group(2):
                out.append((name, m.group(1), m.group(2).strip()))
    return out


def test_every_command_a_reader_is_told_to_run_parses_and_names_what_exists():
    """A command in the prose is parsed by the real command line: its verb, ablation, variants of that ablation at
    its preset, and every --set key of the config it overrides. A command that no longer exists fails here."""
    import shlex
    from cnref.cli import parser
    from cnref.lab.ablations import variants
    from cnref.mini.presets import override, preset
    cmds = _commands()
    assert len(cmds) > 30
    bad = []
    for name, module, args in cmds:
        if module != "cnref":
            bad.append(f"{name}: python -m {module} (the command line is python -m cnref)")
            continue
        try:
            a = parser().parse_args(shlex.split(args))
        except SystemExit:
            bad.append(f"{name}: python -m cnref {args}")
            continue
        if a.verb == "run":
            known = [v.name for v in variants(a.ablation, a.preset)]
            bad += [f"{name}: {a.ablation} has no variant {v}" for v in a.variants or [] if v not in known]
        if getattr(a, "sets", None) and a.verb in ("run", "train"):
            try:
                override(preset(a.preset).train, a.sets)
            except (ValueError, SystemExit, KeyError) as e:
                bad.append(f"{name}: --set {a.sets}: {e}")
    assert not bad, bad


def test_every_notebook_ends_with_what_to_take_away_and_an_exercise():
    """Each notebook of the reading order closes with a short list to take away and an exercise the reader can
    run in seconds (smoke mode, or a pure function of the package)."""
    from cnref.views.book import READING
    missing = [stem for stem in READING for text in [(REPO / "notebooks" / f"{stem}.py").read_text()]
               if "**What to take away.**" not in text or "**Exercise**" not in text]
    assert not missing, missing


def test_the_recipe_quoted_in_prose_is_the_cpu_presets():
    """"500 steps, batch 64, lr 1e-4", "12 runs (4 variants x 3 seeds)", "0.05 for 3 vs 3": a number of the recipe,
    of an ablation or of the rule written in prose is the one the code has."""
    from cnref.lab.verdict import smallest_p
    from cnref.mini.presets import preset
    t = preset("cpu").train
    bad = []
    for name, text in _prose().items():
        for m in re.finditer(r"(\d+) steps, batch (\d+), lr ([\d.e-]+)", text):
            if (int(m.group(1)), int(m.group(2)), float(m.group(3))) != (t.steps, t.batch_size, t.lr):
                bad.append(f"{name}: {m.group(0)}")
        for m in re.finditer(r"cnref run (\w+) --preset cpu --seeds ([\d ]+)`:? (\d+) runs \((\d+) variants x (\d+) seeds", text):
            from cnref.lab.ablations import variants
            n_v = len(variants(m.group(1), "cpu"))
            if int(m.group(4)) != n_v or int(m.group(3)) != n_v * int(m.group(5)):
                bad.append(f"{name}: {m.group(0)} ({m.group(1)} has {n_v} variants)")
        for m in re.finditer(r"(0\.\d+) for (\d+) (?:vs|against) (\d+)", text):      # the smallest p an n allows
            if abs(float(m.group(1)) - smallest_p(int(m.group(2)), int(m.group(3)))) > 0.0005:
                bad.append(f"{name}: {m.group(0)} (1 / C(n_a + n_b, n_a) = "
                           f"{smallest_p(int(m.group(2)), int(m.group(3))):.4f})")
    assert not bad, bad


# ------------------------------------------------------------------ the successors on fair terms
def _fair_run(lr, steps, ious, train_s):
    from cnref.measure.evaluate import QUALITY_SET
    h = [{"step": s, "iou": y, "train_s": t} for s, y, t in zip(steps, ious, train_s)]
    return {"config": {"lr": lr, "seed": 0}, "history": h, "convergence_step": 50.0,
            "final_eval": {"held_out/perfect": {"iou": 0.9}, QUALITY_SET: {"kid": 1.5}}}


def test_a_fair_row_reads_the_stop_the_start_the_half_rise_and_equal_compute():
    """Figures worked by hand: the curve 0.2 -> 0.8 (its end: the mean of the last three, 0.8) closes half its rise
    (0.5) a third of the way from step 25 (0.4) to step 50 (0.7); 300 s of training lies halfway between the
    validations at 200 s (0.4) and 400 s (0.7); a run stopped before 300 s keeps its last validation's IoU."""
    from cnref.views.designs import fair_row
    r = _fair_run(1e-3, [0, 25, 50, 75, 100, 125], [0.2, 0.4, 0.7, 0.8, 0.8, 0.8],
                  [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0])
    assert fair_row(r) == pytest.approx([125, 1000.0, 0.2, 50.0, 25 + 25 / 3, 0.55, 0.9, 1.5])
    short = _fair_run(1e-3, [0, 25, 50, 75], [0.2, 0.6, 0.8, 0.8], [0.0, 50.0, 100.0, 150.0])
    assert fair_row(short)[5] == 0.8


def test_the_fair_table_gives_each_design_its_lr_seeds_and_spread():
    from cnref.views.designs import COLUMNS, fair_table
    a = _fair_run(1e-3, [0, 100, 200], [0.2, 0.6, 0.8], [0.0, 100.0, 200.0])
    b = _fair_run(1e-3, [0, 100, 300], [0.2, 0.6, 0.8], [0.0, 100.0, 300.0])
    lines = fair_table({"controlnet": [a, b]}).splitlines()
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert len(cells) == len(COLUMNS) and cells[:3] == ["controlnet", "1e-3", "2"]
    from cnref.views.tables import lr_text
    assert [lr_text(x) for x in (3e-4, 1e-4, 2e-6, 1e-5)] == ["3e-4", "1e-4", "2e-6", "1e-5"]
    assert cells[3] == f"250 ± {np.std([200, 300], ddof=1):.0f}"         # stopped at step 200 and 300


def test_every_successor_claim_appears_once_beside_the_claim_that_retests_it(tmp_path):
    """On no results every row is pending; each claim of both ablations is in exactly one row, and a retested
    claim shares its row with its retest."""
    from cnref.lab.ablations import RETESTS
    from cnref.lab.claims import CLAIMS
    from cnref.views.designs import retest_rows
    rows = retest_rows("cpu", tmp_path)
    seen = [x[0].id for r in rows for x in (r["equal"], r["fair"]) if x]
    ids = [c.id for c in CLAIMS if c.ablation in ("successors", "successors_fair")]
    assert sorted(seen) == sorted(ids)
    for r in rows:
        if r["fair"] and r["fair"][0].id in RETESTS:
            assert r["equal"][0].id == RETESTS[r["fair"][0].id]
        assert all(x[1]["verdict"].startswith("pending") for x in (r["equal"], r["fair"]) if x)
        assert r["changed"] is False


def test_the_retest_summary_lists_only_rows_judged_on_both_sides():
    from types import SimpleNamespace
    from cnref.views.designs import retest_summary
    side = lambda w: (SimpleNamespace(), {"verdict": w})
    rows = [{"paper": "A", "equal": side("refuted"), "fair": side("confirmed"), "both": True, "changed": True},
            {"paper": "B", "equal": side("confirmed"), "fair": side("confirmed"), "both": True, "changed": False},
            {"paper": "C", "equal": side("refuted"), "fair": side("too few seeds (n = 2)"), "both": False,
             "changed": False},
            {"paper": "D", "equal": side("unclear (seeds overlap)"), "fair": None, "both": False, "changed": False}]
    assert retest_summary(rows) == {"moved": "A (refuted -> confirmed)", "held": "B (confirmed -> confirmed)"}
    assert retest_summary(rows[2:]) == {"moved": "none", "held": "none"}


def test_the_start_table_reads_step_0_condition_use_and_each_steps_first_validation():
    """Two seeds validated every 30 steps, one whose condition already changes the loss at step 0: the table
    counts that seed alone, reads step 20 at the validation of step 30, and the half-rise step by its definition
    (half of the way from the first validation to the mean of the last three, linearly between validations)."""
    from cnref.views.starts import STEPS, start_row, start_table
    iou = [0.2, 0.2, 0.5, 0.8, 0.8, 0.8]

    def run(use0, seed):
        hist = [{"step": 30 * i, "iou": y + 0.01 * seed, "use_loss_gap": use0 if i == 0 else 1e-3}
                for i, y in enumerate(iou)]
        return {"config": {"lr": 1e-4}, "seed": seed, "history": hist}

    rs = [run(0.0, 0), run(-0.002, 1)]
    row = start_row(rs)
    assert row["reaches"] == "1 of 2" and row["use0"] == "-0.00100 ± 0.00141" and row["n"] == 2
    assert STEPS == (0, 20, 50, 100)
    # step 20 -> the validation at 30 (0.2), 50 -> 60 (0.5), 100 -> 120 (0.8); seeds differ by 0.01
    assert [row["at"][s] for s in STEPS] == ["0.21 ± 0.01", "0.21 ± 0.01", "0.51 ± 0.01", "0.81 ± 0.01"]
    # half of 0.2 -> 0.8 is 0.5, reached exactly at step 60 in both seeds
    assert row["half"] == "60 ± 0"
    table = start_table({"a": rs}).splitlines()
    assert len(table) == 3 and table[2].startswith("| a | 1e-4 | 2 | 1 of 2 |")
    assert all(len(line.split("|")) == len(table[0].split("|")) for line in table)

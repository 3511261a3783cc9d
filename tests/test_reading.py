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
    assert spread([222.0], 0) == "222 ± 0 (n = 1)" and spread([None]) == "none"

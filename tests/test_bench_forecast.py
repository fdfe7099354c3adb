"""The forecast bench's oracle diagnostic."""

from __future__ import annotations

import pandas as pd

from benchmarks.forecast import _oracle_day_wape


def test_oracle_day_factor_removes_only_the_error_common_to_the_day():
    y = [10.0, 20.0, 30.0, 40.0]
    day = ["2019-01-01", "2019-01-01", "2019-01-02", "2019-01-02"]
    common = pd.DataFrame({"target_date": day, "horizon": 1, "y": y, "p50": [5.0, 10.0, 45.0, 60.0]})
    assert _oracle_day_wape(common) == 0.0           # each day off by one factor (x0.5, x1.5): all explained
    own = common.assign(p50=[20.0, 10.0, 30.0, 40.0])  # day 1's total right, its split wrong: nothing to explain
    assert abs(_oracle_day_wape(own) - 20.0 / 100.0) < 1e-12

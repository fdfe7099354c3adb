"""Registry promotion rule and idempotent prediction writes (embedded Postgres)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from ml.registry import current_model, ensure_schema, register_model


@pytest.fixture(scope="module")
def eng():
    from replenish.database import engine

    e = engine()
    ensure_schema(e)
    with e.begin() as c:
        c.execute(text("truncate forecast.models, forecast.forecasts"))
    yield e
    # The fake versions point at no artifact: leave no "current" model behind for other tests.
    with e.begin() as c:
        c.execute(text("truncate forecast.models, forecast.forecasts"))


def _reg(e, v, wape):
    return register_model(e, v, {"lr": 0.05}, {"horizons": [1]}, "2016-01-02", "2018-12-31",
                          {"wape": wape, "bias": 0.0}, f"/nonexistent/{v}.pkl")


def test_new_model_becomes_current_only_if_it_beats_the_current_wape(eng):
    assert _reg(eng, "v1", 0.20) is True            # first model
    assert current_model(eng).version == "v1"
    assert _reg(eng, "v2", 0.25) is False           # worse
    assert _reg(eng, "v3", 0.20) is False           # equal is not better
    assert current_model(eng).version == "v1"
    assert _reg(eng, "v4", 0.18) is True
    with eng.connect() as c:
        assert c.execute(text("select count(*) from forecast.models where is_current")).scalar() == 1
        assert c.execute(text("select version from forecast.models where is_current")).scalar() == "v4"


def test_predict_for_date_is_idempotent_per_origin(eng):
    from ml.predict import predict_for_date
    from ml.tests_support import small_frame

    f = small_frame(stores=(2,), start="2018-04-01", end="2018-06-14")
    f.loc[f.date > "2018-05-31", "y"] = float("nan")
    n1 = predict_for_date(eng, "2018-05-31", "run-a", automation_blocked=True, frame=f)
    n2 = predict_for_date(eng, "2018-05-31", "run-b", automation_blocked=False, frame=f)
    assert n1 == n2 == 3 * 14
    with eng.connect() as c:
        rows = pd.read_sql(text("select * from forecast.forecasts where origin_date = '2018-05-31'"), c)
    assert len(rows) == n2 and set(rows.run_id) == {"run-b"}
    assert (rows.p50 > 0).all() and rows.is_flagged.all()   # artifact missing -> fallback -> flagged

"""Bounded memory: the nightly forecast streamed by chunks of stores writes exactly what one pass over the whole
frame writes, short-history fallback included; the training matrix built into one preallocated array is the one
the chunk list built."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

ORIGIN = pd.Timestamp("2018-05-31")
KEYS = ["store_id", "item_id", "horizon"]


@pytest.fixture(scope="module")
def panel():
    from support.forecast import small_frame

    f = small_frame(stores=(2, 3, 4, 5), start="2017-09-01", end="2018-06-14")
    f.loc[f["date"] > ORIGIN, "y"] = np.nan
    # a store that opened later (its grid starts later than the others') and a series with a short history (the
    # item-profile fallback, which profiles its item over every store, not only the chunk's)
    f = f[~((f["store_id"] == 3) & (f["date"] < "2018-01-15"))]
    short = (f["store_id"] == 4) & (f["item_id"] == f["item_id"].min()) & (f["date"] < "2018-05-20")
    return f[~short].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(panel):
    from support.forecast import fast_config

    from ml.model import ForecastModel

    return ForecastModel(fast_config(origin_stride=7)).fit(panel, end_date=ORIGIN)


def _sorted(P: pd.DataFrame) -> pd.DataFrame:
    P = P.assign(store_id=P["store_id"].astype("int64"), item_id=P["item_id"].astype("int64"))
    return P.sort_values(KEYS).reset_index(drop=True)[KEYS + ["p10", "p50", "p90", "is_fallback"]]


@pytest.mark.parametrize("with_model", [True, False])
def test_store_chunks_give_the_one_pass_forecasts(panel, model, with_model):
    from ml.predict import forecast_frame

    m = model if with_model else None
    cfg = model.cfg
    whole = _sorted(forecast_frame(m, cfg, ORIGIN, panel, chunk_series=10**9))     # one chunk
    one_store = _sorted(forecast_frame(m, cfg, ORIGIN, panel, chunk_series=1))     # a store per chunk
    assert whole["is_fallback"].any() and not whole["is_fallback"].all() if with_model else whole["is_fallback"].all()
    pd.testing.assert_frame_equal(one_store, whole)
    if with_model:   # and the model's own one-pass path (what the nightly ran before it streamed)
        pd.testing.assert_frame_equal(_sorted(model.predict(panel, [ORIGIN])), whole)


def test_chunks_sized_by_known_series_counts_give_the_same_forecasts(panel, model):
    from ml.predict import forecast_stores

    def load(chunk):
        assert len(chunk) <= 2 or chunk == [5]       # two stores of ~3 series fit 7 series; store 5 alone
        return panel[panel["store_id"].isin(chunk)]

    def history(items):
        return panel if items is None else panel[panel["item_id"].isin(items)]

    whole = _sorted(model.predict(panel, [ORIGIN]))
    sized = _sorted(forecast_stores(model, model.cfg, ORIGIN, [2, 3, 4, 5], load, history, chunk_series=7,
                                    sizes={2: 3, 3: 3, 4: 3, 5: 20}))
    pd.testing.assert_frame_equal(sized, whole)


def test_a_partition_streams_its_own_stores_with_the_chain_wide_fallback(panel, model):
    from ml.predict import forecast_frame

    whole = _sorted(forecast_frame(model, model.cfg, ORIGIN, panel))
    part = _sorted(forecast_frame(model, model.cfg, ORIGIN, panel, store_ids=[4, 5], chunk_series=1))
    pd.testing.assert_frame_equal(part, whole[whole["store_id"].isin([4, 5])].reset_index(drop=True))


def test_preallocated_training_matrix_grows_when_the_sample_overshoots():
    from ml.model import _TrainMatrix

    rng = np.random.default_rng(0)
    m = _TrainMatrix(capacity=3, n_cols=2)
    chunks = [pd.DataFrame(rng.random((n, 2)), columns=["a", "b"]) for n in (2, 4, 0, 5)]
    for c in chunks:
        m.append(c, c["a"].to_numpy(np.float32), c["b"].to_numpy(np.float32))
    data, target, weight = m.arrays()
    expected = np.concatenate([c.to_numpy(np.float32) for c in chunks])
    assert data.flags["C_CONTIGUOUS"] and np.array_equal(data, expected)
    assert np.array_equal(target, expected[:, 0]) and np.array_equal(weight, expected[:, 1])


def test_compact_frame_gives_the_same_features(panel):
    # int32 ids and float32 drivers in the frame: the grid holds drivers as float32 anyway
    from support.forecast import fast_config

    from ml.data import compact_frame
    from ml.features import build_features, make_grid

    cfg = fast_config()
    wide = panel.assign(store_id=panel["store_id"].astype("int64"), item_id=panel["item_id"].astype("int64"))
    compact = compact_frame(wide.copy())
    assert compact["store_id"].dtype == np.int32 and compact["rain"].dtype == np.float32
    a = build_features(make_grid(wide, cfg), [ORIGIN], cfg)
    b = build_features(make_grid(compact, cfg), [ORIGIN], cfg)
    pd.testing.assert_frame_equal(a, b)

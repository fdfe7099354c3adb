"""The synthetic chain of the pipeline benchmark: deterministic, and written under the export contract."""

from __future__ import annotations

import datetime as dt

import pytest


@pytest.fixture(scope="module")
def chain():
    from benchmarks.synthetic_chain import generate_chain

    return generate_chain(stores=3, items=5, days=90, end=dt.date(2019, 4, 29), seed=7)


def test_same_seed_same_chain(chain):
    from benchmarks.synthetic_chain import generate_chain

    again = generate_chain(stores=3, items=5, days=90, end=dt.date(2019, 4, 29), seed=7)
    assert again.daily.equals(chain.daily) and again.purchase_orders.equals(chain.purchase_orders)
    assert chain.stats["series"] == 15 and len(chain.daily) == 15 * 90
    assert (chain.daily["sales"] <= chain.daily["opening"] + chain.daily["received"]).all()


def test_exports_follow_the_contract_and_windows_change_nothing(chain, tmp_path):
    from benchmarks.synthetic_chain import write_chain_exports
    from replenish.data.exports import COLUMNS, day_complete, write_exports

    write_exports(chain, tmp_path / "whole", tz="Europe/Berlin")
    write_chain_exports(chain, tmp_path / "windows", window_days=13)
    last = tmp_path / "whole" / "2019-04-29"
    assert day_complete(last)
    for name, cols in COLUMNS.items():
        assert (last / name).read_text().splitlines()[0] == ",".join(cols), name
    for day in sorted(p.name for p in (tmp_path / "whole").iterdir()):
        for name in COLUMNS:
            assert (tmp_path / "whole" / day / name).read_bytes() == (tmp_path / "windows" / day / name).read_bytes()


def test_bad_size_names_the_field():
    from benchmarks.synthetic_chain import generate_chain

    with pytest.raises(ValueError, match="days"):
        generate_chain(stores=2, items=2, days=10)

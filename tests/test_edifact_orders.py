"""The EDIFACT ORDERS file a supplier gets (replenish.orders.channels.edifact), read back with pydifact: who orders,
where it goes, which items (the retailer's numbers and names), when it was prepared (the platform's clock)."""

from __future__ import annotations

import datetime as dt

import pytest
from pydifact.segmentcollection import Interchange

from replenish import clock
from replenish.orders.channels import EdifactChannel, render_orders_d96a

# reading back, pydifact warns that it ships no XML for the service segments (UNB, UNH, ...) to validate them by
pytestmark = pytest.mark.filterwarnings("ignore:segments.xml not found")

PAYLOAD = {
    "order_id": "PO201905021BA048733630", "store_id": 5, "supplier_id": 1,
    "order_date": "2019-05-01", "delivery_date": "2019-05-02",
    # master-data text is hostile: separators, the release character, a line break, characters UNOC lacks
    "store_name": "Filiale 'Heil+bronn': ?\n\x1b[2Jneu \u20ac\U0001f600 with a name longer than thirty-five",
    "lines": [{"item_id": 101, "qty": 130, "item_name": "Weizenbroetchen"},
              {"item_id": 110, "qty": 50, "item_name": None}],
}


def _segments(edi: str) -> list[tuple[str, list]]:
    (msg,) = Interchange.from_str(edi).get_messages()
    return [(s.tag, s.elements) for s in msg.segments]


def test_parties_items_and_names_read_back() -> None:
    edi = render_orders_d96a(PAYLOAD, now=clock.at(dt.date(2019, 5, 1), dt.time(0, 10)))
    segs = _segments(edi)
    nads = {e[0]: e for tag, e in segs if tag == "NAD"}
    assert nads["BY"][1] == ["5", "", "92"] and nads["SU"][1] == ["1", "", "92"]
    name = nads["DP"][3]
    assert nads["DP"][1] == ["5", "", "92"] and name == "Filiale 'Heil+bronn': ? [2Jneu with"
    assert len(name) <= 35 and name.isprintable()
    assert [e for tag, e in segs if tag == "LIN"] == [["1", "", ["101", "IN"]], ["2", "", ["110", "IN"]]]
    assert [e for tag, e in segs if tag == "IMD"] == [["F", "", ["", "", "", "Weizenbroetchen"]]]
    assert [e[0] for tag, e in segs if tag == "QTY"] == [["21", "130", "PCE"], ["21", "50", "PCE"]]
    assert "\x1b" not in edi and "\u20ac" not in edi


def test_the_interchange_is_stamped_with_the_platforms_clock(tmp_path, clock_restored) -> None:
    """It was the server's wall clock: a replayed night's file said it was prepared years after its order date."""
    clock.set_clock(clock.at(dt.date(2019, 5, 1), dt.time(0, 10)), frozen=True, set_by="test")
    path = EdifactChannel(tmp_path).send(PAYLOAD, PAYLOAD["order_id"])
    unb = Interchange.from_str(open(path).read())
    assert unb.timestamp == dt.datetime(2019, 5, 1, 0, 10)          # local time of the retailer's zone (UNB S004)

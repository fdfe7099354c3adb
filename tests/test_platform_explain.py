"""'Why this quantity' in words, the chart and the words for codes: pure functions, no database."""

from __future__ import annotations

import datetime as dt
import re

from replenish.platform.charts import sales_svg
from replenish.platform.explain import why_steps
from replenish.platform.labels import REASON_LABELS, actor_label, event_words, reason_label, without_paths

# the issue's example: the old text read "position 0.000 (on hand 36.000 + on order 80.000 - expiring 116.000 -
# sold before delivery 88.470)", which sums to -88.47
EXPLANATION = {
    "quantile_level": 0.694, "quantile": "P69.4", "rule": "newsvendor", "forecast_quantile_sum": 89.6,
    "coverage_days": 1, "on_hand": 36.0, "on_order": 80.0, "expiring": 116.0, "demand_before_delivery": 88.47,
    "position": 0.0, "raw_need": 89.6, "steps": {"net_need": 90, "moq": [0, 90], "pack": [10, 90], "cap": [None, 90],
                                                 "cap_below_moq": False, "top_up_packs": 0},
    "final": 90,
}


def _num(v: str) -> int:
    return int(v.replace("−", "-").lstrip("=→+ ").strip())


def test_why_in_words_adds_up_in_whole_units() -> None:
    summary, steps = why_steps(EXPLANATION, proposed_qty=90, final_qty=90)
    values = {s.label: s.value for s in steps}
    parts = [_num(values[k]) for k in ("On hand now", "Arriving before the delivery (open orders)",
                                       "Expiring before the delivery", "Expected sales until the delivery")]
    assert parts == [36, 80, -116, -88]
    left = next(s for s in steps if s.label == "Left in store when the delivery arrives")
    assert _num(left.value) == 0 and "−88 counted as 0" in left.note  # the sum is shown, and why it counts as 0
    demand = _num(values["Expected sales over 1 day from the delivery"])
    assert demand == 90 and _num(values["Needed"]) == demand - 0
    assert values["Proposed"] == "90"
    text = " ".join(f"{s.label} {s.value} {s.note}" for s in steps) + summary
    assert not re.search(r"\d\.\d{3}", text), "no three-decimal figures"
    assert "P69" not in text  # no jargon: the level is said in words
    assert "70 of 100 days" in text or "69 of 100 days" in text


def test_why_mentions_rounding_caps_and_edits() -> None:
    e = {**EXPLANATION, "forecast_quantile_sum": 85.2, "raw_need": 85.2,
         "steps": {"net_need": 86, "moq": [0, 86], "pack": [10, 90], "cap": [None, 90], "top_up_packs": 0},
         "release_cap": {"from": 90, "to": 60, "reason": "line_risk_waste", "detail": "waste at risk 52.00 EUR"}}
    _summary, steps = why_steps(e, proposed_qty=90, final_qty=70, edited_by="anna", edit_reason="weather")
    labels = [s.label for s in steps]
    assert "In whole units" in labels and "Packs of 10" in labels and "Capped by the release rules" in labels
    assert "Changed by anna" in labels and any("weather" in s.note for s in steps)
    assert next(s for s in steps if s.label == "Packs of 10").note == "9 packs"


def test_hand_added_and_old_explanations() -> None:
    assert why_steps({"added": True}, proposed_qty=0, final_qty=5)[1][0].label.startswith("Added by hand")
    assert why_steps({"why": "why 12: old text"}, proposed_qty=12, final_qty=12)[0] == "why 12: old text"


def test_chart_has_dates_legend_band_window_and_orders() -> None:
    d = dt.date(2019, 4, 1)
    sales = [(d + dt.timedelta(days=i), float(10 + i % 7)) for i in range(28)]
    band = [(d + dt.timedelta(days=28 + i), 8.0, 12.0, 16.0) for i in range(3)]
    svg = str(sales_svg(sales, band, label="<b>Brot</b>", orders=[(d + dt.timedelta(days=7), 40.0)],
                        window=(d + dt.timedelta(days=29), d + dt.timedelta(days=30))))
    assert "<b>" not in svg and "&lt;b&gt;Brot" in svg  # the label is escaped
    assert 'class="band"' in svg and 'class="window"' in svg and 'class="order"' in svg
    assert "1 Apr" in svg and "8 Apr" in svg  # dates on the axis (Mondays)
    assert "sold per day" in svg and "forecast P10–P90" in svg and "ordered (delivery day)" in svg
    assert "style=" not in svg  # the CSP forbids inline styles
    assert "No sales history" in str(sales_svg([], []))


def test_every_release_reason_and_event_has_words() -> None:
    for code in ("quantity_improbable_high", "quantity_improbable_low", "line_risk_waste", "line_risk_short",
                 "stock_snapshot_stale", "quality_gate_blocked", "cutoff_passed", "cutoff_escalated"):
        assert code in REASON_LABELS
    assert reason_label("line_risk_waste:3", {3: "Brot"}) == "too much money at risk in waste (Brot)"
    assert reason_label("line_risk_waste:4", {3: "Brot"}) == "too much money at risk in waste (item 4)"
    assert reason_label("line_risk_waste:x3", {3: "Brot"}) == "too much money at risk in waste (item x3)"
    assert event_words("status", "in_review", "in_review", {}) == "Status confirmed: to review"
    assert event_words("line_capped:3", 90, 60, {3: "Brot"}).startswith("Quantity of Brot capped from 90 to 60")
    assert event_words("line_capped:03", 90, 60, {3: "Brot"}).startswith("Quantity of Brot capped")  # the id, as read
    assert event_words("line_capped:３", 90, 60, {3: "Brot"}).startswith("Quantity of item ３ capped")
    assert reason_label("max_deviation:" + "9" * 5000, {3: "Brot"}).endswith("9)")  # words, not a ValueError
    assert event_words("reasons", "", "stock_snapshot_stale", {}) == (
        "Held for review: the closing stock count is missing or out of date")
    assert actor_label("release:scheduled__2019:rules-v2") == "automatic release rules"
    assert actor_label("cutoff:escalate:rules-v2") == "supplier cutoff rule"
    assert actor_label("pos:store12-till1") == "till store12-till1" and actor_label("anna") == "anna"


def test_a_sent_reference_reads_without_server_paths_or_channel_jargon() -> None:
    """The database keeps each channel's reference as it was (a file channel's whole path, the e-mail channel's note
    for the data team); the order page's history names the file only and says in words what happened to a mail."""
    edi = "/srv/replenish/.state/edi_outbound/PO2019050348E00DA21E60.edi"
    assert event_words("sent_ref", None, edi) == "Delivered to the supplier (file PO2019050348E00DA21E60.edi)"
    assert event_words("sent_ref", None, "out/edi/PO1.edi") == "Delivered to the supplier (file PO1.edi)"
    kept = event_words("sent_ref", None, "eml:/srv/replenish/.state/outbox/PO1.eml (no SendGrid API key: written to "
                                         "outbox_dir, not emailed)")
    assert kept == ("Not e-mailed: no SendGrid key configured, so the mail was kept in the outbox folder (PO1.eml)")
    assert "outbox_dir" not in kept and "/srv" not in kept
    assert event_words("sent_ref", None, "eml:/srv/outbox/PO1.eml").endswith("outbox folder (PO1.eml)")  # found again
    assert event_words("sent_ref", None, "sendgrid:abc.123") == "E-mailed to the supplier (reference abc.123)"
    assert event_words("sent_ref", None, "sendgrid:202") == "E-mailed to the supplier"  # only SendGrid's HTTP status
    assert event_words("sent_ref", None, "http-201") == "Delivered to the supplier (its system gave no reference)"
    assert event_words("sent_ref", None, "SO-2019/77") == "Delivered to the supplier (reference SO-2019/77)"
    assert event_words("sent_ref", None, None) == "Delivered to the supplier"


def test_a_channel_error_reads_without_the_servers_folders() -> None:
    """The order page, the digest and the POS API show a send error with a file by its name; URLs stay whole."""
    assert (without_paths("[Errno 13] Permission denied: '/srv/replenish/.state/edi_outbound/PO1.edi'")
            == "[Errno 13] Permission denied: 'PO1.edi'")
    assert without_paths(r"OSError: C:\data\edi\PO2.edi not found") == "OSError: PO2.edi not found"
    for kept in ("http://supplier.test/api/orders: HTTP 500", 'SendGrid HTTP 503: {"errors": []}', "1/2/3 packs",
                 "a/b"):
        assert without_paths(kept) == kept
    assert without_paths(None) == ""


def test_a_fresh_line_rounded_down_to_the_nearest_pack_says_why() -> None:
    e = {**EXPLANATION, "forecast_quantile_sum": 93.33, "raw_need": 93.33,
         "steps": {"net_need": 94, "moq": [0, 94], "pack": [10, 90], "cap": [None, 90], "cap_below_moq": False,
                   "top_up_packs": 0}}
    _, steps = why_steps(e, proposed_qty=90, final_qty=90)
    labels = [s.label for s in steps]
    assert "In whole units" not in labels          # the packs round the unrounded need, not the whole units
    pack = next(s for s in steps if s.label == "Packs of 10")
    assert pack.value == "→ 90" and "the nearest" in pack.note and "thrown away" in pack.note


def test_the_summary_reaches_the_proposed_quantity() -> None:
    """"Why 7? expected sales 36, 30 left in store, need 6" left the 7 unexplained: the rounding is in the line."""
    e = {"quantile_level": 0.95, "rule": "service_level", "forecast_quantile_sum": 36.2, "coverage_days": 3,
         "on_hand": 30.0, "on_order": 0.0, "expiring": 0.0, "demand_before_delivery": 0.0, "raw_need": 6.2,
         "steps": {"net_need": 7, "moq": [3, 7], "pack": [1, 7], "cap": [None, 7], "top_up_packs": 0}}
    summary, _ = why_steps(e, proposed_qty=7, final_qty=7)
    assert summary == "expected sales 36, 30 left in store, need 6, 6.2 rounded up to 7"
    small = {**e, "forecast_quantile_sum": 31.4, "raw_need": 1.4, "steps": {**e["steps"], "net_need": 2,
                                                                             "moq": [3, 3], "pack": [1, 3]}}
    assert why_steps(small, proposed_qty=3, final_qty=3)[0] == (
        "expected sales 31, 30 left in store, need 1, 1.4 rounded up to 2, supplier's minimum 3")
    assert why_steps(EXPLANATION, proposed_qty=90, final_qty=90)[0] == (
        "expected sales 90, 0 left in store, need 90, packs of 10")
    # the demo night's line: 6.04 said "6.0 rounded up to 7"
    close = {**e, "raw_need": 6.04}
    assert why_steps(close, proposed_qty=7, final_qty=7)[0].endswith("need 6, 6.04 rounded up to 7")
    assert why_steps({**e, "raw_need": 6.0004}, proposed_qty=7, final_qty=7)[0].endswith(
        "need 6, just over 6 rounded up to 7")

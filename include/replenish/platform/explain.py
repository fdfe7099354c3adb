"""'Why this quantity?' in words, from the explanation a proposal stored for its line.

Figures are rounded to whole units first and every sum is computed from the rounded figures, so what a
person reads adds up (on hand 36 + arriving 80 - expiring 116 - sold before 88 = -88, so nothing is left).
The exact figures stay in the explanation (API, CSV) for whoever needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replenish.platform.labels import EDIT_REASON_LABELS, reason_label


@dataclass(frozen=True)
class Step:
    label: str
    value: str = ""  # the figure (right-aligned), e.g. "+36", "= 166"
    note: str = ""  # words after it
    kind: str = "row"  # row | total | result | change


def _n(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _u(v: Any) -> int:
    """Rounded to a whole unit, half away from zero (what a person does)."""
    x = _n(v)
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _unrounded(x: float) -> str:
    """The figure a whole unit was rounded up from, with the decimals that show it is above the unit: "6.0 rounded
    up to 7" read as a mistake where the figure was 6.04."""
    for d in (1, 2):
        s = f"{x:.{d}f}"
        if float(s) != float(int(x)):
            return s
    return f"just over {int(x)}"


def _signed(v: int) -> str:
    return f"+{v}" if v >= 0 else f"−{-v}"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def why_steps(
    explanation: dict[str, Any] | None,
    *,
    proposed_qty: int,
    final_qty: int,
    edited_by: str | None = None,
    edit_reason: str | None = None,
) -> tuple[str, list[Step]]:
    """(one-line summary, steps) for the line; an empty step list when the line has no computation."""
    e = explanation or {}
    if e.get("added"):
        return f"added by hand: {final_qty}", [Step("Added by hand (not proposed)", str(final_qty), kind="result")]
    if "forecast_quantile_sum" not in e:
        why = str(e.get("why") or "")
        return why or f"{proposed_qty} proposed", ([Step(why)] if why else [])
    steps: list[Step] = []
    level = _n(e.get("quantile_level"))
    pct = round(level * 100)
    days = int(_n(e.get("coverage_days")) or 1)
    demand = _u(e.get("forecast_quantile_sum"))
    if e.get("rule") == "newsvendor":
        level_note = (f"fresh goods: the level where a unit more would more likely be wasted than sold "
                      f"(enough on {pct} of 100 days)")
    else:
        level_note = f"enough on {pct} of 100 days (service level {pct} %)"
    steps.append(Step(f"Expected sales over {_days(days)} from the delivery", str(demand), level_note))

    on_hand, on_order = _u(e.get("on_hand")), _u(e.get("on_order"))
    expiring, before = _u(e.get("expiring")), _u(e.get("demand_before_delivery"))
    left_exact = on_hand + on_order - expiring - before
    left = max(left_exact, 0)
    steps += [
        Step("On hand now", _signed(on_hand)),
        Step("Arriving before the delivery (open orders)", _signed(on_order)),
        Step("Expiring before the delivery", _signed(-expiring)),
        Step("Expected sales until the delivery", _signed(-before)),
        Step("Left in store when the delivery arrives", f"= {left}",
             f"{_signed(left_exact)} counted as 0: nothing left" if left_exact < 0 else "", kind="total"),
    ]
    need = max(demand - left, 0)
    st = e.get("steps") or {}
    net_need = int(_n(st.get("net_need")))
    steps.append(Step("Needed", f"= {need}", f"{demand} expected − {left} left", kind="total"))
    qty = need
    # how the need became the proposed quantity, for the one-line summary (the steps say it in full)
    how: list[str] = []
    pack = st.get("pack") or [1, qty]
    # a fresh line's packs round its unrounded need to the nearest (orders.proposals): whole units say nothing there
    to_nearest_pack = int(pack[0]) > 1 and int(pack[1]) < net_need
    if net_need != need and not to_nearest_pack:
        steps.append(Step("In whole units", f"→ {net_need}", "the unrounded figures give "
                          f"{_unrounded(_n(e.get('raw_need')))}, rounded up", kind="change"))
        how.append(f"{_unrounded(_n(e.get('raw_need')))} rounded up to {net_need}")
        qty = net_need
    moq = st.get("moq") or [0, qty]
    if int(moq[0]) and int(moq[1]) != qty:
        steps.append(Step(f"Supplier's minimum order {int(moq[0])}", f"→ {int(moq[1])}", kind="change"))
        how.append(f"supplier's minimum {int(moq[0])}")
    qty = int(moq[1]) if moq else qty
    if int(pack[0]) > 1:
        packs = int(pack[1]) // int(pack[0])
        note = f"{packs} pack{'s' if packs != 1 else ''}"
        if to_nearest_pack:
            qty = need
            note += ", the nearest: sold on the day only, one pack more would more likely be thrown away than sold"
        steps.append(Step(f"Packs of {int(pack[0])}", f"→ {int(pack[1])}" if int(pack[1]) != qty else f"= {qty}",
                          note, kind="change"))
        how.append(f"packs of {int(pack[0])}")
    qty = int(pack[1]) if pack else qty
    cap = st.get("cap") or [None, qty]
    if cap[0] is not None and int(cap[1]) != qty:
        steps.append(Step(f"Maximum the store takes ({int(cap[0])})", f"→ {int(cap[1])}",
                          "below the minimum order: nothing" if st.get("cap_below_moq") else "", kind="change"))
        how.append(f"at most {int(cap[0])}")
    top = int(_n(st.get("top_up_packs")))
    if top:
        steps.append(Step("Topped up to the supplier's minimum order value", f"→ {proposed_qty}",
                          f"+{top} pack{'s' if top != 1 else ''}", kind="change"))
        how.append("topped up to the minimum order value")
    steps.append(Step("Proposed", str(proposed_qty), kind="result"))
    cut = e.get("release_cap") or {}
    if cut:
        note = reason_label(str(cut.get("reason") or ""))
        if cut.get("detail"):
            note += f" ({cut['detail']})"
        steps.append(Step("Capped by the release rules", f"→ {cut.get('to')}", note, kind="change"))
    if edited_by and not str(edited_by).startswith(("release:", "system:", "cutoff:")) and final_qty != proposed_qty:
        steps.append(Step(f"Changed by {edited_by}", f"→ {final_qty}",
                          EDIT_REASON_LABELS.get(str(edit_reason), str(edit_reason or "")), kind="change"))
    summary = ", ".join([f"expected sales {demand}, {left} left in store, need {need}", *how])
    return summary, steps

"""Auto-release rules (versioned YAML) and their evaluation: which orders go out without a person.

An order is released automatically when every order-level condition holds (quality gate passed for the
store, stock snapshot fresh, supplier allows automatic orders, order value under the limit) and none of its
lines is *doubtful*. A line is doubtful when, judged by the forecast's own distribution of demand:

* **improbable**: the stock after the delivery (position + quantity) lies above the ``improbable_level``
  quantile of the demand it is meant for (more than the smallest orderable quantity explains), or below the
  opposite quantile (the order leaves the shelf short even if demand comes in low);
* **money at risk** above ``max_line_risk`` EUR: the waste if demand comes in at the low end (P10 of what can
  be sold before the goods expire, at unit cost), or the lost margin if it comes in at the high end (P90 until
  the next delivery, at price - cost).

It is *not* judged against past orders, which may have been bad. With ``on_doubtful_line: cap`` a line that is
doubtful on the high side is cut to the largest orderable quantity inside both bounds (never below the
median need) and the order still goes out; with ``hold``, or when no safe quantity exists, the order goes to
review with one reason per line. Promotions, new items and flagged forecasts (quality gate or fallback)
follow their own settings. Rules: ``defaults`` then ``overrides`` (file order, later wins) matched on
supplier_id / store_id / category (a category rule applies to the lines of that category).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from replenish.orders.quantiles import quantile

RULES_PATH = Path(__file__).with_name("release_rules.yml")
CUTOFF_PASSED = "cutoff_passed"  # proposed after the supplier's cutoff (a late run): a person must phone or reject
# reasons written by propose: kept when release re-decides an order (release's own reasons are recomputed)
PROPOSAL_REASONS = ("below_min_order_value", "cap_below_moq", CUTOFF_PASSED)
CUTOFF_ACTIONS = ("send", "skip", "escalate")
DOUBTFUL_ACTIONS = ("cap", "hold")
_SCHEMA: dict[str, tuple[type, ...]] = {
    "auto_release": (bool,),
    "max_order_value": (int, float),
    "max_line_risk": (int, float),
    "improbable_level": (float,),
    "on_doubtful_line": (str,),
    "max_snapshot_age_hours": (int, float),
    "block_on_promotion": (bool,),
    "block_on_new_item": (bool,),
    "on_cutoff": (str,),
}
_MATCH_KEYS = ("supplier_id", "store_id", "category")


class RuleConfigError(ValueError):
    """The rule file is malformed; the message names the offending rule."""


@dataclass(frozen=True)
class Rule:
    name: str
    match: dict[str, str]
    values: dict[str, Any]


@dataclass
class RuleSet:
    version: str
    defaults: dict[str, Any]
    overrides: list[Rule] = field(default_factory=list)

    def resolve(self, supplier_id=None, store_id=None, category=None) -> dict[str, Any]:
        out = dict(self.defaults)
        ctx = {"supplier_id": supplier_id, "store_id": store_id, "category": category}
        for r in self.overrides:
            if all(ctx[k] is not None and str(ctx[k]) == v for k, v in r.match.items()):
                out.update(r.values)
        return out


def _check_values(rule_name: str, values: Any, *, complete: bool) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise RuleConfigError(f"rule {rule_name!r}: expected a mapping of settings, got {type(values).__name__}")
    for k, v in values.items():
        if k not in _SCHEMA:
            raise RuleConfigError(f"rule {rule_name!r}: unknown setting {k!r} (allowed: {sorted(_SCHEMA)})")
        types = _SCHEMA[k]
        if not isinstance(v, types) or (bool in types) != isinstance(v, bool):
            raise RuleConfigError(
                f"rule {rule_name!r}: setting {k!r} must be {'/'.join(t.__name__ for t in types)}, got {v!r}"
            )
        if isinstance(v, (int, float)) and not isinstance(v, bool) and (v < 0 or math.isnan(v)):
            raise RuleConfigError(f"rule {rule_name!r}: setting {k!r} must be >= 0, got {v!r}")
        if k == "improbable_level" and isinstance(v, float) and not 0.5 < v < 1:
            raise RuleConfigError(f"rule {rule_name!r}: improbable_level must be between 0.5 and 1, got {v!r}")
        if k == "on_cutoff" and v not in CUTOFF_ACTIONS:
            raise RuleConfigError(f"rule {rule_name!r}: on_cutoff must be one of {CUTOFF_ACTIONS}, got {v!r}")
        if k == "on_doubtful_line" and v not in DOUBTFUL_ACTIONS:
            raise RuleConfigError(
                f"rule {rule_name!r}: on_doubtful_line must be one of {DOUBTFUL_ACTIONS}, got {v!r}"
            )
    if complete:
        missing = sorted(set(_SCHEMA) - set(values))
        if missing:
            raise RuleConfigError(f"rule {rule_name!r}: missing settings {missing}")
    return dict(values)


def parse_rules(doc: Any, source: str = "<rules>") -> RuleSet:
    if not isinstance(doc, dict):
        raise RuleConfigError(f"{source}: top level must be a mapping with version/defaults/overrides")
    unknown = set(doc) - {"version", "defaults", "overrides"}
    if unknown:
        raise RuleConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
    if "version" not in doc or doc["version"] in (None, ""):
        raise RuleConfigError(f"{source}: missing 'version'")
    defaults = _check_values("defaults", doc.get("defaults"), complete=True)
    overrides = []
    seen = set()
    for i, r in enumerate(doc.get("overrides") or []):
        name = r.get("name") if isinstance(r, dict) else None
        label = name or f"overrides[{i}]"
        if not isinstance(r, dict) or not name:
            raise RuleConfigError(f"rule {label!r}: every override needs a 'name'")
        if name in seen:
            raise RuleConfigError(f"rule {label!r}: duplicate name")
        seen.add(name)
        extra = set(r) - {"name", "match", "set"}
        if extra:
            raise RuleConfigError(f"rule {label!r}: unknown keys {sorted(extra)}")
        match = r.get("match")
        if not isinstance(match, dict) or not match or set(match) - set(_MATCH_KEYS):
            raise RuleConfigError(f"rule {label!r}: 'match' must be a non-empty mapping of {_MATCH_KEYS}")
        overrides.append(
            Rule(name, {k: str(v) for k, v in match.items()}, _check_values(label, r.get("set"), complete=False))
        )
    return RuleSet(str(doc["version"]), defaults, overrides)


def load_rules(path: str | Path | None = None) -> RuleSet:
    """The rules at ``path``, else the file the settings name (``release_rules_path``), else the packaged ones."""
    from replenish.settings import get_settings

    p = Path(path) if path else (get_settings().release_rules_path or RULES_PATH)
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise RuleConfigError(f"{p}: not valid YAML: {exc}") from exc
    return parse_rules(doc, str(p))


@dataclass(frozen=True)
class LineRisk:
    """What the proposal knew of a line's demand (its explanation), in units and EUR.

    ``sell_*``: demand quantiles summed over the days the delivery is for and can be sold in
    ([delivery, min(next delivery, delivery + shelf life))); ``shelf_p10``: P10 demand over the shelf life from
    the delivery (what is sold before the goods expire if demand is low)."""

    position: float
    sell_p10: float
    sell_p50: float
    sell_p90: float
    shelf_p10: float
    pack: int = 1
    moq: int = 0
    top_up_units: int = 0
    unit_cost: float = 0.0
    unit_price: float = 0.0

    def sell_quantile(self, level: float) -> float:
        return float(quantile(self.sell_p10, self.sell_p50, self.sell_p90, level)[0])

    def orderable_at_least(self, need: float) -> int:
        """The smallest quantity the supplier accepts that covers ``need`` units (0 when nothing is needed)."""
        if need <= 0:
            return 0
        q = max(math.ceil(need - 1e-9), self.moq)
        return -(-q // self.pack) * self.pack

    def orderable_at_most(self, limit: float) -> int:
        """The largest quantity the supplier accepts that stays within ``limit`` units (0 if none)."""
        q = int(math.floor(limit + 1e-9)) // self.pack * self.pack
        return q if q >= max(self.moq, 1) else 0

    def waste_at_risk(self, qty: int) -> float:
        return max(self.position + qty - self.shelf_p10, 0.0) * self.unit_cost

    def short_at_risk(self, qty: int) -> float:
        return max(self.sell_p90 - self.position - qty, 0.0) * max(self.unit_price - self.unit_cost, 0.0)


@dataclass
class LineFacts:
    item_id: int
    qty: int
    category: str | None = None
    risk: LineRisk | None = None  # None: no forecast distribution (not judged on risk)
    is_promotion: bool = False
    is_new_item: bool = False
    forecast_flagged: bool = False
    forecast_fallback: bool = False  # flagged because no trained model was available (item-profile fallback)


@dataclass
class OrderFacts:
    order_id: str
    store_id: int
    supplier_id: int
    order_value: float
    quality_gate_passed: bool | None  # None = no gate row: treated as blocked
    snapshot_age_hours: float | None  # None = unknown: treated as stale
    allows_auto_order: bool
    lines: list[LineFacts]
    proposal_reasons: tuple[str, ...] = ()
    snapshot_date: Any = None  # local (business time zone) date of the stock snapshot
    business_date: Any = None  # the business date being processed; snapshot must be of that date


@dataclass(frozen=True)
class LineCap:
    item_id: int
    from_qty: int
    to_qty: int
    reason: str  # the doubt that was capped, e.g. "line_risk_waste"
    detail: str  # for a person: what was at stake and what the cap keeps


@dataclass
class Decision:
    """``reasons`` empty -> release (after applying ``caps``); otherwise review with these reasons."""

    reasons: list[str]
    caps: list[LineCap] = field(default_factory=list)

    @property
    def released(self) -> bool:
        return not self.reasons


def _line_doubts(ln: LineFacts, r: dict[str, Any]) -> tuple[list[str], int | None, str]:
    """(doubts, capped quantity or None, detail) of one line under its resolved rule settings."""
    risk, qty = ln.risk, ln.qty
    if risk is None or qty <= 0 and risk.sell_p90 <= 0:
        return [], None, ""
    level, limit = float(r["improbable_level"]), float(r["max_line_risk"])
    hi_cover = risk.sell_quantile(level)
    lo_cover = risk.sell_quantile(1 - level)
    # the rounding a supplier imposes (pack, MOQ) and a top-up to its minimum order value are not doubts
    allowed_hi = max(risk.orderable_at_least(hi_cover - risk.position), risk.orderable_at_least(
        risk.sell_p50 - risk.position)) + risk.top_up_units
    doubts_hi, doubts_lo = [], []
    if qty > allowed_hi:
        doubts_hi.append("quantity_improbable_high")
    waste, short = risk.waste_at_risk(qty), risk.short_at_risk(qty)
    if waste > limit:
        doubts_hi.append("line_risk_waste")
    if qty < risk.orderable_at_most(lo_cover - risk.position) and qty >= 0:
        doubts_lo.append("quantity_improbable_low")
    if short > limit:
        doubts_lo.append("line_risk_short")
    detail = f"waste at risk {waste:.2f} EUR, lost margin at risk {short:.2f} EUR"
    if doubts_lo or not doubts_hi:
        return doubts_hi + doubts_lo, None, detail
    # high-side doubt only: the largest orderable quantity inside both bounds, never below the median need
    bound = min(hi_cover, risk.shelf_p10 + (limit / risk.unit_cost if risk.unit_cost > 0 else math.inf))
    capped = risk.orderable_at_most(bound - risk.position) + risk.top_up_units
    floor = risk.orderable_at_least(risk.sell_p50 - risk.position)
    if 0 < capped < qty and capped >= floor and risk.short_at_risk(capped) <= limit:
        return doubts_hi, capped, (f"{qty} -> {capped}: {detail.split(',')[0]} at {qty}, "
                                   f"{risk.waste_at_risk(capped):.2f} EUR at {capped}")
    return doubts_hi, None, detail


def decide(order: OrderFacts, rules: RuleSet) -> Decision:
    """The release decision for one order: reasons to hold it (empty = release) and the line caps to apply."""
    r = rules.resolve(order.supplier_id, order.store_id)
    reasons: list[str] = list(order.proposal_reasons)
    if not r["auto_release"]:
        reasons.append("auto_release_disabled")
    if order.quality_gate_passed is None:
        reasons.append("quality_gate_missing")
    elif not order.quality_gate_passed:
        reasons.append("quality_gate_blocked")
    if (
        order.snapshot_age_hours is None
        or order.snapshot_age_hours > r["max_snapshot_age_hours"]
        or (order.business_date is not None and order.snapshot_date != order.business_date)
    ):
        reasons.append("stock_snapshot_stale")
    if not order.allows_auto_order:
        reasons.append("supplier_manual_only")
    if order.order_value > r["max_order_value"]:
        reasons.append("order_value_over_limit")
    caps: list[LineCap] = []
    for ln in order.lines:
        lr = rules.resolve(order.supplier_id, order.store_id, ln.category)
        doubts, capped, detail = _line_doubts(ln, lr)
        if doubts and capped is not None and lr["on_doubtful_line"] == "cap":
            caps.append(LineCap(ln.item_id, ln.qty, capped, doubts[0], detail))
        else:
            reasons.extend(f"{d}:{ln.item_id}" for d in doubts)
        if ln.is_promotion and lr["block_on_promotion"]:
            reasons.append(f"promotion:{ln.item_id}")
        if ln.is_new_item and lr["block_on_new_item"]:
            reasons.append(f"new_item:{ln.item_id}")
        if ln.forecast_flagged:
            # a flagged forecast is either from a run whose quality gate blocked automation or a fallback
            reasons.append(f"forecast_fallback:{ln.item_id}" if ln.forecast_fallback else "quality_gate_blocked")
    reasons = list(dict.fromkeys(reasons))
    return Decision(reasons, [] if reasons else caps)


def evaluate(order: OrderFacts, rules: RuleSet) -> list[str]:
    """Reason codes that block auto-release (empty list = auto-release, possibly with capped lines)."""
    return decide(order, rules).reasons


def cutoff_action(rules: RuleSet, supplier_id: int, store_id: int) -> str:
    return rules.resolve(supplier_id, store_id)["on_cutoff"]

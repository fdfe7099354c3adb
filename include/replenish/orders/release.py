"""Auto-release rules (versioned YAML) and their evaluation.

An order is auto-released when every condition holds for the order and each of its lines:
quality gate passed for the store, stock snapshot fresh, supplier allows automatic orders, each line's
quantity within X% or Y units of the usual quantity, order value under the limit, forecast interval
(p90-p10)/p50 not too wide, no promotion / new-item / flagged forecast. Otherwise the order goes to
``in_review`` with reason codes. Rules: ``defaults`` then ``overrides`` (in file order, later wins) matched
on supplier_id / store_id / category (an item category rule applies to the lines of that category).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RULES_PATH = Path(__file__).with_name("release_rules.yml")
CUTOFF_ACTIONS = ("send", "skip", "escalate")
_SCHEMA: dict[str, tuple[type, ...]] = {
    "auto_release": (bool,),
    "max_deviation_pct": (int, float),
    "max_deviation_units": (int, float),
    "max_order_value": (int, float),
    "max_interval_width": (int, float),
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
        if k == "on_cutoff" and v not in CUTOFF_ACTIONS:
            raise RuleConfigError(f"rule {rule_name!r}: on_cutoff must be one of {CUTOFF_ACTIONS}, got {v!r}")
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
    p = Path(path) if path else RULES_PATH
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise RuleConfigError(f"{p}: not valid YAML: {exc}") from exc
    return parse_rules(doc, str(p))


@dataclass
class LineFacts:
    item_id: str
    qty: int
    category: str | None = None
    usual_qty: float | None = None  # mean of the last 4 orders, else recent sales over the window
    interval_width: float | None = None
    is_promotion: bool = False
    is_new_item: bool = False
    forecast_flagged: bool = False
    forecast_fallback: bool = False  # flagged because no trained model was available (item-profile fallback)


@dataclass
class OrderFacts:
    order_id: str
    store_id: str
    supplier_id: str
    order_value: float
    quality_gate_passed: bool | None  # None = no gate row: treated as blocked
    snapshot_age_hours: float | None  # None = unknown: treated as stale
    allows_auto_order: bool
    lines: list[LineFacts]
    proposal_reasons: tuple[str, ...] = ()
    snapshot_date: Any = None  # local (Europe/Berlin) date of the stock snapshot
    business_date: Any = None  # the business date being processed; snapshot must be of that date


def evaluate(order: OrderFacts, rules: RuleSet) -> list[str]:
    """Reason codes that block auto-release (empty list = auto-release)."""
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
    for ln in order.lines:
        lr = rules.resolve(order.supplier_id, order.store_id, ln.category)
        if ln.usual_qty is None:
            if ln.qty > 0:
                reasons.append(f"no_usual_quantity:{ln.item_id}")
        else:
            tol = max(lr["max_deviation_pct"] / 100.0 * ln.usual_qty, lr["max_deviation_units"])
            if abs(ln.qty - ln.usual_qty) > tol:
                reasons.append(f"quantity_unusual:{ln.item_id}")
        if ln.qty > 0 and (ln.interval_width is None or ln.interval_width > lr["max_interval_width"]):
            reasons.append(f"forecast_interval_wide:{ln.item_id}")
        if ln.is_promotion and lr["block_on_promotion"]:
            reasons.append(f"promotion:{ln.item_id}")
        if ln.is_new_item and lr["block_on_new_item"]:
            reasons.append(f"new_item:{ln.item_id}")
        if ln.forecast_flagged:
            # a flagged forecast is either from a run whose quality gate blocked automation or a fallback
            reasons.append(f"forecast_fallback:{ln.item_id}" if ln.forecast_fallback else "quality_gate_blocked")
    return list(dict.fromkeys(reasons))


def cutoff_action(rules: RuleSet, supplier_id: str, store_id: str) -> str:
    return rules.resolve(supplier_id, store_id)["on_cutoff"]

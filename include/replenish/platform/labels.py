"""Plain-language labels for the release reason codes a store manager or buyer sees in the queue.

Codes stay the stable interface (filters, API, digests); a code may carry a detail after ':' (the item id).
"""

from __future__ import annotations

REASON_LABELS: dict[str, str] = {
    "auto_release_disabled": "automatic release is off for this supplier or store",
    "quality_gate_missing": "today's data checks did not run",
    "quality_gate_blocked": "today's data failed a blocking check",
    "stock_snapshot_stale": "the stock count is out of date",
    "supplier_manual_only": "this supplier takes manual orders only",
    "order_value_over_limit": "order value above the automatic limit",
    "no_usual_quantity": "no usual quantity to compare with",
    "quantity_unusual": "quantity far from the usual",
    "max_deviation": "quantity far from the usual",
    "forecast_interval_wide": "forecast very uncertain",
    "promotion": "promotion running",
    "new_item": "new item",
    "forecast_fallback": "too little sales history for the model",
    "below_min_order_value": "below the supplier's minimum order value",
    "cap_below_moq": "maximum quantity is below the minimum order quantity",
    "cutoff_escalated": "the supplier's cutoff passed without a review",
    "cutoff_skipped": "skipped at the supplier's cutoff",
}


def reason_label(code: str, item_names: dict[str, str] | None = None) -> str:
    """'quantity_unusual:3' -> 'quantity far from the usual (Weizenbroetchen)'; unknown codes as they are."""
    base, _, detail = str(code).partition(":")
    label = REASON_LABELS.get(base, base.replace("_", " "))
    if detail:
        label += f" ({(item_names or {}).get(detail, 'item ' + detail)})"
    return label

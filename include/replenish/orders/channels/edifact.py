"""EDIFACT ORDERS D.96A via pydifact, one file per order named by the order id (BGM document number = order
id). The file is written atomically (tmp + rename); an existing file means the order was already sent.

Parties and items: the store is the buyer (NAD+BY) and the delivery party (NAD+DP, with its name); the supplier is
NAD+SU. Items carry the retailer's item number (LIN 7143 "IN", buyer's item number: the masters hold no supplier
article number) and the item's name (IMD, free form), so the supplier's clerk can map a line without our ids.
Names come from the masters: only Latin-1 printable text fits the UNOC character set, at most 35 characters a
component. The interchange time (UNB) is the platform's clock in the retailer's zone, as every order date is.

BGM message function (DE 1225): 9 = original; 7 = duplicate ("the message is a duplicate of a previously
generated message", UNTDID) when an earlier attempt may have reached the supplier, with an FTX free text that
says which order it may repeat. (EANCOM narrows 7 to a re-transmission the receiver asked for: the dispatcher
also raises an alert, so a person can confirm with the supplier.)
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

from pydifact.segmentcollection import Interchange, Message
from pydifact.segments import Segment

from replenish.orders.channels.base import checked_key

ORIGINAL, DUPLICATE = "9", "7"
_NAME_LEN = 35   # an..35: C080 party name and C273 item description components


def _text(value: object) -> str:
    """Master-data text as UNOC (ISO 8859-1) printable characters, one line, at most 35 characters (pydifact
    escapes the separators)."""
    kept = "".join(ch if ch.isprintable() and ord(ch) < 256 else " " for ch in str(value or ""))
    return re.sub(r"\s+", " ", kept).strip()[:_NAME_LEN].rstrip()


def render_orders_d96a(
    payload: dict[str, Any], *, sender: str = "REPLENISH", now: dt.datetime | None = None,
    possible_duplicate: bool = False,
) -> str:
    if now is None:
        from replenish import clock

        now = clock.now()        # aware, in the retailer's zone
    oid = payload["order_id"]  # <= 35 characters (BGM 1004 an..35) by construction: proposals.order_id_for
    ref = oid[-14:]
    msg = Message(ref, ["ORDERS", "D", "96A", "UN"])
    msg.add_segment(Segment("BGM", "220", oid, DUPLICATE if possible_duplicate else ORIGINAL))
    msg.add_segment(Segment("DTM", ["137", payload["order_date"].replace("-", ""), "102"]))
    msg.add_segment(Segment("DTM", ["2", payload["delivery_date"].replace("-", ""), "102"]))
    if possible_duplicate:
        # FTX+AAI (general information): free text for the person who reads the supplier's inbox
        msg.add_segment(Segment("FTX", "AAI", "", "", [f"POSSIBLE DUPLICATE OF ORDER {oid}",
                                                       "PROCESS ONLY IF NOT ALREADY RECEIVED"]))
    store = [str(payload["store_id"]), "", "92"]           # 92: code assigned by the buyer
    msg.add_segment(Segment("NAD", "BY", store))
    store_name = _text(payload.get("store_name"))
    msg.add_segment(Segment("NAD", "DP", store, *(["", store_name] if store_name else [])))
    msg.add_segment(Segment("NAD", "SU", [str(payload["supplier_id"]), "", "92"]))
    for i, ln in enumerate(payload["lines"], start=1):
        msg.add_segment(Segment("LIN", str(i), "", [str(ln["item_id"]), "IN"]))
        if item_name := _text(ln.get("item_name")):
            msg.add_segment(Segment("IMD", "F", "", ["", "", "", item_name]))
        msg.add_segment(Segment("QTY", ["21", str(int(ln["qty"])), "PCE"]))
    msg.add_segment(Segment("UNS", "S"))
    msg.add_segment(Segment("CNT", ["2", str(len(payload["lines"]))]))
    ic = Interchange(sender, str(payload["supplier_id"]), ref, ("UNOC", 3), timestamp=now)
    ic.add_message(msg)
    return ic.serialize(break_lines=True)


class EdifactChannel:
    name = "edifact"

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)

    def path_for(self, key: str) -> Path:
        return self.out_dir / f"{checked_key(key)}.edi"

    def already_sent(self, idempotency_key: str) -> str | None:
        p = self.path_for(idempotency_key)
        return str(p) if p.exists() else None

    def send(self, payload: dict[str, Any], idempotency_key: str, *, possible_duplicate: bool = False) -> str:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        target = self.path_for(idempotency_key)
        tmp = target.with_suffix(".edi.tmp")
        tmp.write_text(render_orders_d96a(payload, possible_duplicate=possible_duplicate))
        os.replace(tmp, target)
        return str(target)

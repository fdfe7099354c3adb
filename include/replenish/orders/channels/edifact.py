"""EDIFACT ORDERS D.96A via pydifact, one file per order named by the order id (BGM document number = order
id). The file is written atomically (tmp + rename); an existing file means the order was already sent.

BGM message function (DE 1225): 9 = original; 7 = duplicate ("the message is a duplicate of a previously
generated message", UNTDID) when an earlier attempt may have reached the supplier, with an FTX free text that
says which order it may repeat. (EANCOM narrows 7 to a re-transmission the receiver asked for: the dispatcher
also raises an alert, so a person can confirm with the supplier.)
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from pydifact.segmentcollection import Interchange, Message
from pydifact.segments import Segment

from replenish.orders.channels.base import checked_key

ORIGINAL, DUPLICATE = "9", "7"


def render_orders_d96a(
    payload: dict[str, Any], *, sender: str = "REPLENISH", now: dt.datetime | None = None,
    possible_duplicate: bool = False,
) -> str:
    now = now or dt.datetime.now()
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
    msg.add_segment(Segment("NAD", "BY", [str(payload["store_id"]), "", "92"]))
    msg.add_segment(Segment("NAD", "SU", [str(payload["supplier_id"]), "", "92"]))
    for i, ln in enumerate(payload["lines"], start=1):
        msg.add_segment(Segment("LIN", str(i), "", [str(ln["item_id"]), "SA"]))
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

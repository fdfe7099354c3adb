"""A dispatcher process that gets killed: tests/test_dispatch_faults.py runs it and SIGKILLs it at one step.

    python tests/support/dispatch_victim.py '<json spec>'

spec: ``order_id``, ``business_today`` (ISO date), ``channel`` ("email", "api" or "edifact"), the channel's
``sendgrid_url`` / ``out_dir``, and ``step``: a ``replenish.orders.sent_ledger.STEPS`` name at which this
process kills itself with SIGKILL (no cleanup, no rollback: the database sees a dropped connection), or ""
when the test's receiver kills it while the request is in flight. Exit code 3: nothing killed it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys


def main() -> int:
    spec = json.loads(sys.argv[1])
    from replenish.database import engine
    from replenish.orders.channels import EdifactChannel, EmailChannel, SupplierApiChannel
    from replenish.orders.dispatcher import drain

    channels = {
        "email": EmailChannel(api_key="SG.test" if spec.get("sendgrid_url") else None,
                              base_url=spec.get("sendgrid_url") or "http://127.0.0.1:9", mail_from="r@x.test",
                              outbox_dir=spec["out_dir"]),
        "api": SupplierApiChannel(),
        "edifact": EdifactChannel(spec["out_dir"]),
    }

    def die(_key: str | None) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    hooks = {spec["step"]: die} if spec["step"] else None
    drain(engine(), channels, business_today=dt.date.fromisoformat(spec["business_today"]), run_id="victim",
          order_ids=[spec["order_id"]], hooks=hooks)
    return 3


if __name__ == "__main__":
    sys.exit(main())

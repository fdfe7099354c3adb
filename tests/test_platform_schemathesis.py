"""Property-based tests of the POS API from its own OpenAPI document (schemathesis): whatever a client sends
that the schema allows (and much it does not), the API never answers 5xx.

The app runs in-process (ASGI) against the test database with a valid API key of a seeded store; half of
the generated order ids are real ones of that store, so approve/patch reach the database, not just 404.
"Send now" runs the real dispatcher with the real channels writing into a temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

# Bounded: a handful of examples per operation keeps the whole module well under a minute on 2 cores.
MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def seeded() -> dict[str, Any]:
    from replenish import migrations
    from replenish.database import engine
    from replenish.platform.demo import seed_demo

    with engine().begin() as conn:
        migrations.upgrade(conn)
        return seed_demo(conn)


@pytest.fixture(scope="module")
def api_schema(seeded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    from replenish import clock
    from replenish.database import engine
    from replenish.orders.channels import EdifactChannel, EmailChannel
    from replenish.orders.dispatcher import drain
    from replenish.platform.app import create_app
    from replenish.platform.ratelimit import TokenBucket
    from replenish.settings import get_settings

    s = get_settings()
    out = Path(tmp_path_factory.mktemp("sent"))
    channels = {
        "edifact": EdifactChannel(out / "edi"),
        "email": EmailChannel(api_key=None, base_url="http://127.0.0.1:9", mail_from=s.mail_from, outbox_dir=out),
    }
    app = create_app(
        s,
        engine=engine(),
        dispatch=lambda order_ids=None: drain(engine(), channels, business_today=clock.today(), run_id="schemathesis",
                                              order_ids=order_ids),
        # the rate limit is tested elsewhere: here it would only turn generated requests into 429s
        api_limiter=TokenBucket(1e6, 1e6),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    store = seeded["stores"][0]
    # the orders' keys are "<store>/<supplier>/<days ahead>"
    real_ids = sorted(oid for key, oid in seeded["orders"].items() if key.split("/")[0] == str(store))

    @schema.hook
    def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
        return st.one_of(strategy, st.fixed_dictionaries({"order_id": st.sampled_from(real_ids)}))

    return schema


def _run_operation(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples on every run: a failure is reproducible, not flaky
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    run()


@pytest.mark.slow
def test_pos_api_never_answers_5xx(api_schema: Any, seeded: dict[str, Any]) -> None:
    # schemathesis' pytest integration for fixture-made schemas (schemathesis.pytest.from_fixture) breaks on
    # pytest 9 (it sets Function._nodeid), so each operation runs as a plain hypothesis test here.
    headers = {"Authorization": f"Bearer {seeded['api_keys'][seeded['stores'][0]]}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 5, [op.label for op in operations]
    failures: dict[str, str] = {}
    for op in operations:
        try:
            _run_operation(op, headers)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures[op.label] = f"{exc.__class__.__name__}: {exc}"[:3000]
    assert not failures, "\n\n".join(f"{label}:\n{msg}" for label, msg in failures.items())

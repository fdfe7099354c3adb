"""Test settings: a dedicated database on the embedded server (or the machine's server).

Set before anything imports ``replenish.settings`` (its settings are cached).
With REPLENISH_TEST_EXTERNAL_PG set, the suite runs against the PostgreSQL on
127.0.0.1:5432 instead (database ``replenish_test``, created if missing).
"""

from __future__ import annotations

import os

os.environ.setdefault("REPLENISH_EMBEDDED_DATABASE", "replenish_test")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

if os.environ.get("REPLENISH_TEST_EXTERNAL_PG"):
    import psycopg2

    _admin = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    _admin.autocommit = True
    with _admin.cursor() as _cur:
        _cur.execute("SELECT 1 FROM pg_database WHERE datname = 'replenish_test'")
        if _cur.fetchone() is None:
            _cur.execute("CREATE DATABASE replenish_test")
    _admin.close()
    os.environ["REPLENISH_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/replenish_test"


import pytest  # noqa: E402 - after the environment above is set

from replenish.forecasting.runtime import use_passive_openmp_wait  # noqa: E402

use_passive_openmp_wait()  # the test session fits LightGBM models (on a shared machine), before lightgbm loads


@pytest.fixture(scope="module")
def playwright():
    """Playwright for the browser tests (it drives Debian's Chromium: see support.browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session", autouse=True)
def _test_database_at_head() -> None:
    """The test database is scratch, kept between runs only for speed: one that cannot reach head (rows an earlier
    release's fixtures wrote that a revision refuses, e.g. text store ids before 0003) is made again, empty. The
    upgrade of kept data is what test_migrations proves, on databases of its own."""
    import warnings

    from support.databases import scratch_database

    from replenish import migrations
    from replenish.database import database_url, engine

    try:
        migrations.upgrade(engine())
    except Exception as exc:  # noqa: BLE001 - any refusal: the database is recreated and the reason shown
        warnings.warn(f"test database recreated: it could not be upgraded ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0]})", stacklevel=1)
        engine().dispose()
        scratch_database(database_url().rpartition("/")[2])
        migrations.forget()
        migrations.upgrade(engine())


@pytest.fixture(scope="module", autouse=True)
def _migrations_checked_again_per_module() -> None:
    """Tests drop and create their databases under the same URL: the once-per-process "at head" memory of
    ``replenish.migrations`` must not outlive one. Autouse fixtures of a scope run before the others of that scope,
    so a module's database fixtures check again (two small queries), and so does every test (below)."""
    from replenish import migrations

    migrations.forget()


@pytest.fixture(autouse=True)
def _migrations_checked_again() -> None:
    from replenish import migrations

    migrations.forget()


@pytest.fixture(scope="module")
def world():  # noqa: ANN201 - the dict platform.demo.seed_demo returns
    """A small platform world per test module (stores, suppliers, open orders in review, users of every role, POS
    API keys: ``platform.demo.seed_demo``), retired afterwards. A module with a world of its own defines its own."""
    from support.platform_app import retire, seeded_world

    w = seeded_world()
    yield w
    retire(w)


@pytest.fixture
def clock_restored():  # noqa: ANN201
    """The platform's clock setting as it was before the test (tests set the shared database's clock)."""
    from replenish import clock

    before = clock.setting()
    yield
    if before is None:
        clock.reset_clock()
    else:
        clock.set_clock(before.business_at, frozen=before.is_frozen, set_by=before.set_by)

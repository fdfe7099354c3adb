"""The quality gate: run the suites for a business date, decide per store, record the outcome.

Bad data never raises: it becomes failed checks and blocked stores. Only infrastructure
errors (database unreachable, results not writable, GX unusable) raise, and the run never
looks clean when a check failed or could not run (a check that errors counts as failed).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from replenish import migrations
from replenish.database import database_url, sqlalchemy_url
from replenish.database import engine as default_engine
from replenish.quality.reasons import global_sentence, store_sentence
from replenish.quality.suites import CHECKS, LABEL_TO_ISO, RAW_TABLES, Check, Ctx, QualityParams
from replenish.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

_ROWS_KEPT = 50      # unexpected rows kept per expectation in `observed`
_VALUES_KEPT = 20    # unexpected values kept per column expectation


@dataclass
class CheckResult:
    name: str
    severity: str
    scope: str
    target: str
    success: bool
    failing_store_ids: list[int] = field(default_factory=list)
    blocks_all_stores: bool = False     # a failing check that could not be narrowed to stores
    error: str | None = None
    observed: dict[str, Any] = field(default_factory=dict)
    store_rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("store_rows")
        return d


@dataclass
class GateResult:
    run_id: str
    business_date: dt.date
    checks: list[CheckResult]
    failed_blocking: list[str]
    failed_warning: list[str]
    store_ids: list[int]
    blocked_store_ids: list[int]
    is_automation_blocked: bool
    seconds: float = 0.0
    data_docs: str | None = None
    # store -> [(check, why in words)] for every blocked store, in check order
    store_reasons: dict[int, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def gate(self) -> dict[int, bool]:
        blocked = set(self.blocked_store_ids)
        return {s: s in blocked for s in self.store_ids}

    def blocked_stores(self) -> list[dict[str, Any]]:
        """The blocked stores with their reasons: check codes and the same in words."""
        return [{"store_id": s, "reasons": [code for code, _ in self.store_reasons.get(s, [])],
                 "details": [why for _, why in self.store_reasons.get(s, [])]} for s in self.blocked_store_ids]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "business_date": self.business_date.isoformat(),
            "is_automation_blocked": self.is_automation_blocked,
            "failed_blocking": self.failed_blocking,
            "failed_warning": self.failed_warning,
            "checks_total": len(self.checks),
            "stores": len(self.store_ids),
            "blocked_store_ids": self.blocked_store_ids,
            "blocked_stores": _jsonable(self.blocked_stores()),
            "seconds": round(self.seconds, 2),
            "data_docs": self.data_docs,
            "checks": [_jsonable(c.to_dict()) for c in self.checks],
        }


# ---------------------------------------------------------------------------------------------
# helpers


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default)


def _jsonable(obj: Any) -> Any:
    return json.loads(_dumps(obj))


def _existing_tables(conn: Connection, names: set[str]) -> frozenset[str]:
    found = set()
    for name in names:
        if conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar():
            found.add(name)
    return frozenset(found)


def _store_universe(conn: Connection, ctx: Ctx) -> set[int]:
    """Stores the gate decides for: active stores plus every store with data for D."""
    parts = []
    if ctx.raw("mms_stores") in ctx.existing_tables:
        parts.append(ctx.active_stores_sql())
    for t in ("pos_sales_lines", "pos_stock_levels"):
        if ctx.raw(t) in ctx.existing_tables:
            parts.append(f"SELECT DISTINCT store_id FROM {ctx.raw(t)} WHERE _business_date = {ctx.d}")
    if not parts:
        return set()
    sql = " UNION ".join(parts)
    rows = conn.execute(text(f"SELECT store_id FROM ({sql}) u WHERE store_id IS NOT NULL")).all()
    return {int(r[0]) for r in rows}


def _is_infrastructure_error(exc: BaseException) -> bool:
    """Connection-level failures (as opposed to SQL that fails on the data/schema)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return True
        name = type(e).__name__
        if name in ("OperationalError", "InterfaceError") and "does not exist" not in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _summarise_expectation(res: Any) -> dict[str, Any]:
    cfg = res.expectation_config
    kw = {k: v for k, v in (cfg.kwargs or {}).items() if k not in ("batch_id", "unexpected_rows_query")}
    out: dict[str, Any] = {"type": cfg.type, **kw, "success": bool(res.success)}
    r = res.result or {}
    if "observed_value" in r:
        out["observed_value"] = r["observed_value"]
    for k in ("element_count", "unexpected_count", "unexpected_percent", "missing_count"):
        if k in r:
            out[k] = r[k]
    if r.get("partial_unexpected_list"):
        out["unexpected_values"] = r["partial_unexpected_list"][:_VALUES_KEPT]
    rows = (r.get("details") or {}).get("unexpected_rows")
    if rows is not None:
        out["unexpected_rows"] = rows[:_ROWS_KEPT]
    info = res.exception_info or {}
    if info.get("raised_exception"):
        out["error"] = str(info.get("exception_message"))[:2000]
    return out


def _substitute_batch(query: str, asset_sql: str) -> str:
    """The same substitution GX does for ``{batch}`` (used for the >200-rows follow-up)."""
    from great_expectations.expectations.metrics.query_metric_provider import _query_has_join_clause

    batch = f"({asset_sql})" if _query_has_join_clause(query) else f"({asset_sql}) AS subselect"
    return query.format(batch=batch)


# ---------------------------------------------------------------------------------------------
# the run


class _Runner:
    """One ephemeral GX context and one datasource per run."""

    def __init__(self, settings: Settings, eng: Engine):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.engine = eng
        self.context = gx.get_context(mode="ephemeral")
        try:
            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception:  # noqa: BLE001 - cosmetic only
            pass
        self.datasource = self.context.data_sources.add_postgres(
            name="warehouse", connection_string=sqlalchemy_url(database_url(settings))
        )

    def run_check(self, check: Check, ctx: Ctx, run_id: str) -> CheckResult:
        t0 = time.perf_counter()
        res = CheckResult(check.name, check.severity, check.scope, check.target, success=False)
        missing = [t for t in (ctx.physical(check.target), *check.requires(ctx)) if t not in ctx.existing_tables]
        if missing:
            return _not_run(res, f"missing table(s): {', '.join(missing)}", t0)

        asset_sql = check.asset_sql(ctx)
        vd, fmt = self._validation(check, ctx, run_id, asset_sql)
        try:
            vres = vd.run(result_format=fmt)
        except Exception as exc:  # noqa: BLE001 - bad SQL on bad data is a failed check
            if _is_infrastructure_error(exc):
                raise
            log.warning("quality check %s could not run: %s", check.name, exc)
            return _not_run(res, f"{type(exc).__name__}: {exc}"[:2000], t0)

        exps = [_summarise_expectation(r) for r in vres.results]
        all_rows = [row for r in vres.results
                    for row in (((r.result or {}).get("details") or {}).get("unexpected_rows") or [])]
        res.success = bool(vres.success) and all(e["success"] for e in exps)
        errors = [e["error"] for e in exps if e.get("error")]
        if errors:
            res.error = "; ".join(errors)[:2000]
            res.success = False
        res.observed = {"expectations": exps}
        store_rows = self._store_rows(check, vres.results, asset_sql, res.success)
        if check.name == "weekday_label_consistency":
            res.observed.update(_weekday_offsets(exps, all_rows))
        if check.scope == "store" and not res.success:
            res.store_rows = store_rows
            res.failing_store_ids = sorted(store_rows)
            res.blocks_all_stores = check.severity == "blocking" and (not store_rows or bool(res.error))
        elif not res.success:
            res.blocks_all_stores = check.severity == "blocking"
            res.observed["affected_store_ids"] = sorted(store_rows)
        res.observed["failing_store_ids"] = res.failing_store_ids
        res.seconds = time.perf_counter() - t0
        return res

    def _validation(self, check: Check, ctx: Ctx, run_id: str, asset_sql: str) -> tuple[Any, dict[str, Any]]:
        """The check's suite over its query asset, registered in this run's context: (validation definition,
        result format)."""
        from great_expectations.core.validation_definition import ValidationDefinition
        from great_expectations.expectations import UnexpectedRowsExpectation

        expectations = check.expectations(ctx)
        has_rows_query = any(isinstance(e, UnexpectedRowsExpectation) for e in expectations)
        suite = self.gx.ExpectationSuite(
            name=f"{check.name}", expectations=expectations,
            meta={"severity": check.severity, "scope": check.scope, "target": check.target},
        )
        suite = self.context.suites.add(suite)
        asset = self.datasource.add_query_asset(name=check.name, query=asset_sql)
        bd = asset.add_batch_definition_whole_table(name=f"{check.name}_{ctx.business_date.isoformat()}")
        vd = self.context.validation_definitions.add(
            ValidationDefinition(name=f"{check.name}__{run_id}", data=bd, suite=suite)
        )
        fmt: dict[str, Any] = {"result_format": "COMPLETE" if has_rows_query else "SUMMARY",
                               "partial_unexpected_count": _VALUES_KEPT}
        return vd, fmt

    def _store_rows(self, check: Check, results: list[Any], asset_sql: str,
                    success: bool) -> dict[int, list[dict[str, Any]]]:
        """Store attribution from the unexpected rows (one row per store by convention). When GX returned fewer
        rows than it counted, a failing store-scoped check runs its row query itself to name every store."""
        store_rows: dict[int, list[dict[str, Any]]] = {}
        for r in results:
            cfg = r.expectation_config
            assert cfg is not None  # _summarise_expectation already read .type/.kwargs of every result
            if cfg.type != "unexpected_rows_expectation":
                continue
            rows = ((r.result or {}).get("details") or {}).get("unexpected_rows") or []
            total = (r.result or {}).get("observed_value") or 0
            if total > len(rows) and check.scope == "store" and not success:
                query = cfg.kwargs["unexpected_rows_query"]
                with self.engine.connect() as conn:
                    rows = [dict(x._mapping) for x in conn.execute(text(_substitute_batch(query, asset_sql)))]
            for row in rows:
                ids = row.get("store_ids") if row.get("store_id") is None else [row["store_id"]]
                for sid in ids or []:
                    if sid is not None:
                        store_rows.setdefault(int(sid), []).append(row)
        return store_rows


def _not_run(res: CheckResult, error: str, t0: float) -> CheckResult:
    """A check that could not run fails; a blocking one blocks every store (nothing says which are fine)."""
    res.error = error
    res.observed = {"error": res.error}
    res.blocks_all_stores = res.severity == "blocking"
    res.seconds = time.perf_counter() - t0
    return res


def _weekday_offsets(exps: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How far the labels are off (label weekday - real weekday, mod 7), from the fetched rows."""
    offsets: Counter[int] = Counter()
    rows_total = sum(int(e.get("observed_value") or 0) for e in exps)
    for row in rows:
        iso = LABEL_TO_ISO.get(str(row.get("label", "")).strip().lower())
        if iso is not None:
            offsets[(iso - int(row["iso_weekday"])) % 7] += 1
    if not rows_total:
        return {}
    out: dict[str, Any] = {"mislabelled_rows": rows_total, "offset_sample_rows": len(rows),
                           "label_offsets_days": {str(k): v for k, v in sorted(offsets.items())}}
    if offsets:
        out["dominant_offset_days"] = offsets.most_common(1)[0][0]
    return out


def run_quality_gate(
    business_date: dt.date,
    run_id: str,
    settings: Settings | None = None,
    *,
    params: QualityParams | None = None,
    data_docs: bool = False,
) -> GateResult:
    """Validate D, decide per store, record in ``ops.quality_*``. Raises only on infrastructure errors."""
    t_start = time.perf_counter()
    settings = settings or get_settings()
    params = params or QualityParams(timezone=settings.timezone)
    eng = default_engine(settings)

    # preflight: an unreachable warehouse is an infrastructure error, not bad data
    with eng.connect() as conn:
        conn.execute(text("SELECT 1"))
    migrations.ensure_current(eng)

    names = {f"{params.raw_schema}.{t}" for t in (*RAW_TABLES, "quarantine")}
    names.add(f"{params.marts_schema}.fct_daily_demand")
    with eng.connect() as conn:
        existing = _existing_tables(conn, names)
        ctx = Ctx(business_date, params, existing)
        universe = _store_universe(conn, ctx)

    runner = _Runner(settings, eng)
    results = [runner.run_check(check, ctx, run_id) for check in CHECKS]

    # a check that failed because the database went away must not be recorded as bad data
    with eng.connect() as conn:
        conn.execute(text("SELECT 1"))

    blocking = [r for r in results if not r.success and r.severity == "blocking"]
    warnings = [r for r in results if not r.success and r.severity == "warning"]
    for r in blocking:
        universe.update(r.failing_store_ids)
    reasons: dict[int, list[tuple[str, str]]] = {s: [] for s in universe}
    for r in blocking:
        if r.blocks_all_stores:
            why = global_sentence(r.name, r.error)
            for s in universe:
                reasons[s].append((r.name, why))
        else:
            for s in r.failing_store_ids:
                reasons[s].append((r.name, store_sentence(r.name, r.store_rows.get(s, []), business_date, params)))
    blocked = sorted(s for s, why in reasons.items() if why)
    result = GateResult(
        run_id=run_id,
        business_date=business_date,
        checks=results,
        failed_blocking=[r.name for r in blocking],
        failed_warning=[r.name for r in warnings],
        store_ids=sorted(universe),
        blocked_store_ids=blocked,
        # any failed blocking check blocks automation somewhere (never a clean run)
        is_automation_blocked=bool(blocking),
        store_reasons={s: reasons[s] for s in blocked},
    )
    _write_results(eng, result, reasons)
    if data_docs:
        result.data_docs = build_data_docs(runner.context, settings)
    result.seconds = time.perf_counter() - t_start
    log.info("quality gate %s %s: %d blocking, %d warning failures, %d/%d stores blocked (%.1fs)",
             run_id, business_date, len(blocking), len(warnings), len(blocked), len(universe), result.seconds)
    return result


def _write_results(eng: Engine, result: GateResult, reasons: dict[int, list[tuple[str, str]]]) -> None:
    d = result.business_date
    rows: list[dict[str, Any]] = []
    for c in result.checks:
        observed = {k: v for k, v in c.observed.items()}
        if c.error:
            observed["error"] = c.error
        observed["blocks_all_stores"] = c.blocks_all_stores
        rows.append({"store_id": None, "check": c, "observed": observed, "success": c.success})
        for s in c.failing_store_ids:
            why = next((w for code, w in reasons.get(s, []) if code == c.name), None)
            rows.append({"store_id": s, "check": c, "success": False,
                         "observed": {"unexpected_rows": c.store_rows.get(s, [])[:_ROWS_KEPT],
                                      **({"reason": why} if why else {})}})
    with eng.begin() as conn:
        # A re-run of a business date replaces its results (as Airflow replaces the run itself),
        # so repeating a date leaves row counts unchanged and the latest verdict is the only one.
        for table in ("quality_results", "quality_gate", "quality_runs"):
            conn.execute(text(f"DELETE FROM ops.{table} WHERE run_id = :r OR business_date = :d"),
                         {"r": result.run_id, "d": result.business_date})
        conn.execute(
            text("""INSERT INTO ops.quality_runs (run_id, business_date, is_automation_blocked_any,
                        checks_failed_blocking, checks_failed_warning, created_at)
                    VALUES (:r, :d, :b, :nb, :nw, clock_timestamp())"""),
            {"r": result.run_id, "d": d, "b": result.is_automation_blocked,
             "nb": len(result.failed_blocking), "nw": len(result.failed_warning)},
        )
        conn.execute(
            text("""INSERT INTO ops.quality_results (run_id, business_date, check_name, severity, scope,
                        store_id, success, observed, checked_at)
                    VALUES (:r, :d, :name, :sev, :scope, :store, :ok, CAST(:obs AS jsonb), clock_timestamp())"""),
            [{"r": result.run_id, "d": d, "name": x["check"].name, "sev": x["check"].severity,
              "scope": x["check"].scope, "store": x["store_id"], "ok": x["success"],
              "obs": _dumps(x["observed"])} for x in rows],
        )
        if reasons:
            conn.execute(
                text("""INSERT INTO ops.quality_gate (run_id, business_date, store_id,
                            is_automation_blocked, reasons, details)
                        VALUES (:r, :d, :s, :b, :codes, :details)"""),
                [{"r": result.run_id, "d": d, "s": s, "b": bool(why), "codes": [code for code, _ in why],
                  "details": [w for _, w in why]} for s, why in sorted(reasons.items())],
            )


# ---------------------------------------------------------------------------------------------
# readers


def latest_run(eng: Engine, business_date: dt.date) -> dict[str, Any] | None:
    """The most recent quality run for the date (None: never validated)."""
    migrations.ensure_current(eng)
    with eng.connect() as conn:
        row = conn.execute(
            text("""SELECT * FROM ops.quality_runs WHERE business_date = :d
                    ORDER BY created_at DESC, run_id DESC LIMIT 1"""),
            {"d": business_date},
        ).mappings().first()
    return dict(row) if row else None


def latest_gate(eng: Engine, business_date: dt.date) -> dict[int, bool]:
    """store_id -> is_automation_blocked from the latest run for the date.

    Empty when the date was never validated. A store missing from the dict was not known
    to the gate: callers must treat it as blocked (use :func:`is_store_blocked`).
    """
    run = latest_run(eng, business_date)
    if run is None:
        return {}
    with eng.connect() as conn:
        rows = conn.execute(
            text("SELECT store_id, is_automation_blocked FROM ops.quality_gate WHERE run_id = :r"),
            {"r": run["run_id"]},
        ).all()
    return {int(r[0]): bool(r[1]) for r in rows}


def is_store_blocked(eng: Engine, business_date: dt.date, store_id: int) -> bool:
    """Fail closed: unknown date or store counts as blocked."""
    return latest_gate(eng, business_date).get(int(store_id), True)


# ---------------------------------------------------------------------------------------------
# data docs


def build_data_docs(context: Any, settings: Settings | None = None, directory: Path | None = None) -> str | None:
    """Best-effort static Data Docs of this run's validations under ``<state>/data_docs``."""
    settings = settings or get_settings()
    target = Path(directory or settings.state / "data_docs")
    try:
        target.mkdir(parents=True, exist_ok=True)
        site = "replenish_quality"
        if site not in (context.get_site_names() or []):
            context.add_data_docs_site(
                site_name=site,
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                      "base_directory": str(target)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        context.build_data_docs(site_names=[site])
        index = target / "index.html"
        return str(index) if index.exists() else str(target)
    except Exception as exc:  # noqa: BLE001 - docs are optional
        log.warning("data docs not built: %s", exc)
        return None

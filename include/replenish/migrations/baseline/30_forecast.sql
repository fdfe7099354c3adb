-- Schema forecast: model versions, forecasts and backtest metrics.
-- Revision 0001 (baseline), verbatim from release 0.1.0; idempotent: see versions/0001_baseline.py.
create schema if not exists forecast;
create table if not exists forecast.models (
    version         text primary key,
    created_at      timestamptz not null default now(),
    params          jsonb not null,
    feature_config  jsonb not null,
    train_start     date,
    train_end       date,
    backtest_metrics jsonb not null,
    backtest_wape   double precision not null,
    artifact_path   text not null,
    is_current      boolean not null default false
);
create unique index if not exists models_one_current on forecast.models (is_current) where is_current;
create table if not exists forecast.forecasts (
    store_id     bigint not null,
    item_id      bigint not null,
    origin_date  date not null,
    target_date  date not null,
    horizon      integer not null,
    p10          double precision not null,
    p50          double precision not null,
    p90          double precision not null,
    model_version text,
    is_flagged   boolean not null default false,
    run_id       text,
    primary key (origin_date, store_id, item_id, target_date)
);
create table if not exists forecast.backtest_metrics (
    model_version text not null,
    store_id      bigint not null,
    item_id       bigint not null,
    horizon       integer not null,
    n             integer not null,
    sum_y         double precision not null,
    sum_p50       double precision not null,
    sum_abs_err   double precision not null,
    sum_pinball   double precision,
    n_covered     integer,
    wape          double precision,
    bias          double precision,
    pinball       double precision,
    coverage      double precision,
    primary key (model_version, store_id, item_id, horizon)
);
create or replace view forecast.v_backtest_metrics_by_horizon as
select model_version, horizon, sum(n) as n, sum(sum_abs_err) / nullif(sum(sum_y), 0) as wape,
       (sum(sum_p50) - sum(sum_y)) / nullif(sum(sum_y), 0) as bias,
       sum(sum_pinball) / nullif(sum(sum_y), 0) / 3 as pinball,
       sum(n_covered)::double precision / nullif(sum(n), 0) as coverage
from forecast.backtest_metrics group by model_version, horizon;

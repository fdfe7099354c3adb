-- Schema ops: stage results, the clock setting, the quality gate's records and the monitoring listener's.
-- Revision 0001 (baseline), verbatim from release 0.1.0; idempotent: see versions/0001_baseline.py.
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE IF NOT EXISTS ops.stage_results (
    run_id        text        NOT NULL,
    business_date date        NOT NULL,
    stage         text        NOT NULL,
    status        text        NOT NULL,
    summary       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_date, stage)
);
CREATE TABLE IF NOT EXISTS ops.clock (
    id            boolean     PRIMARY KEY DEFAULT true CHECK (id),
    business_at   timestamptz NOT NULL,
    wall_at       timestamptz NOT NULL,
    is_frozen     boolean     NOT NULL DEFAULT false,
    set_by        text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS ops.quality_runs (
    run_id                    text        PRIMARY KEY,
    business_date             date        NOT NULL,
    is_automation_blocked_any boolean     NOT NULL,
    checks_failed_blocking    int         NOT NULL,
    checks_failed_warning     int         NOT NULL,
    created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quality_runs_date_idx ON ops.quality_runs (business_date, created_at DESC);
CREATE TABLE IF NOT EXISTS ops.quality_results (
    run_id        text        NOT NULL,
    business_date date        NOT NULL,
    check_name    text        NOT NULL,
    severity      text        NOT NULL,
    scope         text        NOT NULL,
    store_id      int,
    success       boolean     NOT NULL,
    observed      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    checked_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS quality_results_key
    ON ops.quality_results (run_id, check_name, coalesce(store_id, -1));
CREATE INDEX IF NOT EXISTS quality_results_date_idx ON ops.quality_results (business_date);
CREATE TABLE IF NOT EXISTS ops.quality_gate (
    run_id                text    NOT NULL,
    business_date         date    NOT NULL,
    store_id              int     NOT NULL,
    is_automation_blocked boolean NOT NULL,
    reasons               text[]  NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, store_id)
);
ALTER TABLE ops.quality_gate ADD COLUMN IF NOT EXISTS details text[] NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS quality_gate_date_idx ON ops.quality_gate (business_date);
CREATE TABLE IF NOT EXISTS ops.pipeline_runs (
    dag_id        text        NOT NULL,
    run_id        text        NOT NULL,
    business_date date,
    state         text        NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    figures       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    links         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, run_id)
);
CREATE INDEX IF NOT EXISTS pipeline_runs_recent_idx ON ops.pipeline_runs (recorded_at DESC);
CREATE TABLE IF NOT EXISTS ops.task_runs (
    dag_id      text        NOT NULL,
    run_id      text        NOT NULL,
    task_id     text        NOT NULL,
    map_index   int         NOT NULL DEFAULT -1,
    try_number  int         NOT NULL,
    max_tries   int,
    state       text        NOT NULL,
    started_at  timestamptz,
    finished_at timestamptz,
    error       text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number)
);
CREATE TABLE IF NOT EXISTS ops.pipeline_alerts (
    dag_id      text        NOT NULL,
    run_id      text        NOT NULL,
    task_id     text        NOT NULL,            -- '' for a DAG run failure without a failed task
    map_index   int         NOT NULL DEFAULT -1,
    try_number  int,
    recipients  text        NOT NULL,
    subject     text        NOT NULL,
    message     text        NOT NULL,
    status      text        NOT NULL DEFAULT 'pending',   -- pending -> sent | failed
    external_ref text,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    PRIMARY KEY (dag_id, run_id, task_id, map_index)
);

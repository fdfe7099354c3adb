--
-- PostgreSQL database dump
--


-- Dumped from database version 18.6
-- Dumped by pg_dump version 18.6

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: forecast; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA forecast;


ALTER SCHEMA forecast OWNER TO postgres;

--
-- Name: ops; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA ops;


ALTER SCHEMA ops OWNER TO postgres;

--
-- Name: orders; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA orders;


ALTER SCHEMA orders OWNER TO postgres;

--
-- Name: platform; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA platform;


ALTER SCHEMA platform OWNER TO postgres;

--
-- Name: raw; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA raw;


ALTER SCHEMA raw OWNER TO postgres;

--
-- Name: forbid_change(); Type: FUNCTION; Schema: orders; Owner: postgres
--

CREATE FUNCTION orders.forbid_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN RAISE EXCEPTION 'orders.order_events is append-only'; END $$;


ALTER FUNCTION orders.forbid_change() OWNER TO postgres;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: backtest_metrics; Type: TABLE; Schema: forecast; Owner: postgres
--

CREATE TABLE forecast.backtest_metrics (
    model_version text NOT NULL,
    store_id bigint NOT NULL,
    item_id bigint NOT NULL,
    horizon integer NOT NULL,
    n integer NOT NULL,
    sum_y double precision NOT NULL,
    sum_p50 double precision NOT NULL,
    sum_abs_err double precision NOT NULL,
    sum_pinball double precision,
    n_covered integer,
    wape double precision,
    bias double precision,
    pinball double precision,
    coverage double precision
);


ALTER TABLE forecast.backtest_metrics OWNER TO postgres;

--
-- Name: forecasts; Type: TABLE; Schema: forecast; Owner: postgres
--

CREATE TABLE forecast.forecasts (
    store_id bigint NOT NULL,
    item_id bigint NOT NULL,
    origin_date date NOT NULL,
    target_date date NOT NULL,
    horizon integer NOT NULL,
    p10 double precision NOT NULL,
    p50 double precision NOT NULL,
    p90 double precision NOT NULL,
    model_version text,
    is_flagged boolean DEFAULT false NOT NULL,
    run_id text
);


ALTER TABLE forecast.forecasts OWNER TO postgres;

--
-- Name: models; Type: TABLE; Schema: forecast; Owner: postgres
--

CREATE TABLE forecast.models (
    version text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    params jsonb NOT NULL,
    feature_config jsonb NOT NULL,
    train_start date,
    train_end date,
    backtest_metrics jsonb NOT NULL,
    backtest_wape double precision NOT NULL,
    artifact_path text NOT NULL,
    is_current boolean DEFAULT false NOT NULL
);


ALTER TABLE forecast.models OWNER TO postgres;

--
-- Name: v_backtest_metrics_by_horizon; Type: VIEW; Schema: forecast; Owner: postgres
--

CREATE VIEW forecast.v_backtest_metrics_by_horizon AS
 SELECT model_version,
    horizon,
    sum(n) AS n,
    (sum(sum_abs_err) / NULLIF(sum(sum_y), (0)::double precision)) AS wape,
    ((sum(sum_p50) - sum(sum_y)) / NULLIF(sum(sum_y), (0)::double precision)) AS bias,
    ((sum(sum_pinball) / NULLIF(sum(sum_y), (0)::double precision)) / (3)::double precision) AS pinball,
    ((sum(n_covered))::double precision / (NULLIF(sum(n), 0))::double precision) AS coverage
   FROM forecast.backtest_metrics
  GROUP BY model_version, horizon;


ALTER VIEW forecast.v_backtest_metrics_by_horizon OWNER TO postgres;

--
-- Name: clock; Type: TABLE; Schema: ops; Owner: postgres
--

CREATE TABLE ops.clock (
    id boolean DEFAULT true NOT NULL,
    business_at timestamp with time zone NOT NULL,
    wall_at timestamp with time zone NOT NULL,
    is_frozen boolean DEFAULT false NOT NULL,
    set_by text NOT NULL,
    updated_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT clock_id_check CHECK (id)
);


ALTER TABLE ops.clock OWNER TO postgres;

--
-- Name: pipeline_alerts; Type: TABLE; Schema: ops; Owner: postgres
--

CREATE TABLE ops.pipeline_alerts (
    dag_id text NOT NULL,
    run_id text NOT NULL,
    task_id text NOT NULL,
    map_index integer DEFAULT '-1'::integer NOT NULL,
    try_number integer,
    recipients text NOT NULL,
    subject text NOT NULL,
    message text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    external_ref text,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    sent_at timestamp with time zone
);


ALTER TABLE ops.pipeline_alerts OWNER TO postgres;

--
-- Name: pipeline_runs; Type: TABLE; Schema: ops; Owner: postgres
--

CREATE TABLE ops.pipeline_runs (
    dag_id text NOT NULL,
    run_id text NOT NULL,
    business_date date,
    state text NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    figures jsonb DEFAULT '{}'::jsonb NOT NULL,
    links jsonb DEFAULT '{}'::jsonb NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE ops.pipeline_runs OWNER TO postgres;

--
-- Name: quality_gate; Type: TABLE; Schema: ops; Owner: postgres
--

CREATE TABLE ops.quality_gate (
    run_id text NOT NULL,
    business_date date NOT NULL,
    store_id integer NOT NULL,
    is_automation_blocked boolean NOT NULL,
    reasons text[] DEFAULT '{}'::text[] NOT NULL,
    details text[] DEFAULT '{}'::text[] NOT NULL
);


ALTER TABLE ops.quality_gate OWNER TO postgres;

--
-- Name: quality_results; Type: TABLE; Schema: ops; Owner: postgres
--

CREATE TABLE ops.quality_results (
    run_id text NOT NULL,
    business_date date NOT NULL,
    check_name text NOT NULL,
    severity text NOT NULL,
    scope text NOT NULL,
    store_id integer,
    success boolean NOT NULL,
    observed jsonb DEFAULT '{}'::jsonb NOT NULL,
    checked_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE ops.quality_results OWNER TO postgres;

--
-- Name: quality_runs; Type: TABLE; Schema: ops; Owner: postgres
--

CREATE TABLE ops.quality_runs (
    run_id text NOT NULL,
    business_date date NOT NULL,
    is_automation_blocked_any boolean NOT NULL,
    checks_failed_blocking integer NOT NULL,
    checks_failed_warning integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE ops.quality_runs OWNER TO postgres;

--
-- Name: stage_results; Type: TABLE; Schema: ops; Owner: postgres
--

CREATE TABLE ops.stage_results (
    run_id text NOT NULL,
    business_date date NOT NULL,
    stage text NOT NULL,
    status text NOT NULL,
    summary jsonb DEFAULT '{}'::jsonb NOT NULL,
    finished_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE ops.stage_results OWNER TO postgres;

--
-- Name: task_runs; Type: TABLE; Schema: ops; Owner: postgres
--

CREATE TABLE ops.task_runs (
    dag_id text NOT NULL,
    run_id text NOT NULL,
    task_id text NOT NULL,
    map_index integer DEFAULT '-1'::integer NOT NULL,
    try_number integer NOT NULL,
    max_tries integer,
    state text NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    error text,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE ops.task_runs OWNER TO postgres;

--
-- Name: alerts; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.alerts (
    alert_id bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    order_id text,
    kind text NOT NULL,
    message text
);


ALTER TABLE orders.alerts OWNER TO postgres;

--
-- Name: alerts_alert_id_seq; Type: SEQUENCE; Schema: orders; Owner: postgres
--

CREATE SEQUENCE orders.alerts_alert_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER SEQUENCE orders.alerts_alert_id_seq OWNER TO postgres;

--
-- Name: alerts_alert_id_seq; Type: SEQUENCE OWNED BY; Schema: orders; Owner: postgres
--

ALTER SEQUENCE orders.alerts_alert_id_seq OWNED BY orders.alerts.alert_id;


--
-- Name: digest_outbox; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.digest_outbox (
    message_id bigint NOT NULL,
    business_date date NOT NULL,
    user_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    recipient text NOT NULL,
    subject text NOT NULL,
    payload jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_error text,
    run_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    sent_at timestamp with time zone,
    sent_by_run text,
    external_ref text
);


ALTER TABLE orders.digest_outbox OWNER TO postgres;

--
-- Name: digest_outbox_message_id_seq; Type: SEQUENCE; Schema: orders; Owner: postgres
--

CREATE SEQUENCE orders.digest_outbox_message_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER SEQUENCE orders.digest_outbox_message_id_seq OWNER TO postgres;

--
-- Name: digest_outbox_message_id_seq; Type: SEQUENCE OWNED BY; Schema: orders; Owner: postgres
--

ALTER SEQUENCE orders.digest_outbox_message_id_seq OWNED BY orders.digest_outbox.message_id;


--
-- Name: order_events; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.order_events (
    event_id bigint NOT NULL,
    order_id text NOT NULL,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    actor text NOT NULL,
    event text NOT NULL,
    from_value text,
    to_value text
);


ALTER TABLE orders.order_events OWNER TO postgres;

--
-- Name: order_events_event_id_seq; Type: SEQUENCE; Schema: orders; Owner: postgres
--

CREATE SEQUENCE orders.order_events_event_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER SEQUENCE orders.order_events_event_id_seq OWNER TO postgres;

--
-- Name: order_events_event_id_seq; Type: SEQUENCE OWNED BY; Schema: orders; Owner: postgres
--

ALTER SEQUENCE orders.order_events_event_id_seq OWNED BY orders.order_events.event_id;


--
-- Name: order_lines; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.order_lines (
    order_id text NOT NULL,
    item_id text NOT NULL,
    proposed_qty integer NOT NULL,
    final_qty integer NOT NULL,
    explanation jsonb,
    edited_by text,
    edited_at timestamp with time zone,
    edit_reason text,
    CONSTRAINT order_lines_final_qty_check CHECK ((final_qty >= 0)),
    CONSTRAINT order_lines_proposed_qty_check CHECK ((proposed_qty >= 0))
);


ALTER TABLE orders.order_lines OWNER TO postgres;

--
-- Name: outbox; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.outbox (
    message_id bigint NOT NULL,
    order_id text NOT NULL,
    idempotency_key text NOT NULL,
    channel text NOT NULL,
    payload jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    sent_at timestamp with time zone,
    sent_by_run text
);


ALTER TABLE orders.outbox OWNER TO postgres;

--
-- Name: outbox_message_id_seq; Type: SEQUENCE; Schema: orders; Owner: postgres
--

CREATE SEQUENCE orders.outbox_message_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER SEQUENCE orders.outbox_message_id_seq OWNER TO postgres;

--
-- Name: outbox_message_id_seq; Type: SEQUENCE OWNED BY; Schema: orders; Owner: postgres
--

ALTER SEQUENCE orders.outbox_message_id_seq OWNED BY orders.outbox.message_id;


--
-- Name: purchase_orders; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.purchase_orders (
    order_id text NOT NULL,
    store_id text NOT NULL,
    supplier_id text NOT NULL,
    delivery_date date NOT NULL,
    next_delivery_date date,
    order_date date NOT NULL,
    cutoff_at timestamp with time zone,
    status text DEFAULT 'proposed'::text NOT NULL,
    version integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    run_id text,
    released_by text,
    reasons text[] DEFAULT '{}'::text[] NOT NULL,
    channel text,
    order_value numeric(14,2),
    cutoff_action text,
    cutoff_handled_at timestamp with time zone
);


ALTER TABLE orders.purchase_orders OWNER TO postgres;

--
-- Name: release_stats; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.release_stats (
    run_id text NOT NULL,
    business_date date NOT NULL,
    supplier_id text NOT NULL,
    store_id text NOT NULL,
    orders integer NOT NULL,
    auto_released integer NOT NULL,
    touchless_rate numeric(6,4),
    rules_version text
);


ALTER TABLE orders.release_stats OWNER TO postgres;

--
-- Name: send_attempts; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.send_attempts (
    channel text NOT NULL,
    idempotency_key text NOT NULL,
    attempt integer NOT NULL,
    order_id text,
    started_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    possible_duplicate boolean DEFAULT false NOT NULL,
    outcome text,
    external_ref text,
    error text,
    finished_at timestamp with time zone,
    alerted_at timestamp with time zone,
    CONSTRAINT send_attempts_outcome_check CHECK ((outcome = ANY (ARRAY['accepted'::text, 'rejected'::text, 'unknown'::text, 'interrupted'::text])))
);


ALTER TABLE orders.send_attempts OWNER TO postgres;

--
-- Name: sent_ledger; Type: TABLE; Schema: orders; Owner: postgres
--

CREATE TABLE orders.sent_ledger (
    idempotency_key text NOT NULL,
    channel text NOT NULL,
    state text NOT NULL,
    external_ref text,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);


ALTER TABLE orders.sent_ledger OWNER TO postgres;

--
-- Name: api_idempotency; Type: TABLE; Schema: platform; Owner: postgres
--

CREATE TABLE platform.api_idempotency (
    key_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    request_hash text NOT NULL,
    status_code integer,
    response jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE platform.api_idempotency OWNER TO postgres;

--
-- Name: api_keys; Type: TABLE; Schema: platform; Owner: postgres
--

CREATE TABLE platform.api_keys (
    key_id bigint NOT NULL,
    name text NOT NULL,
    store_id text NOT NULL,
    key_prefix text NOT NULL,
    key_hash text NOT NULL,
    created_by text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    last_used_at timestamp with time zone
);


ALTER TABLE platform.api_keys OWNER TO postgres;

--
-- Name: api_keys_key_id_seq; Type: SEQUENCE; Schema: platform; Owner: postgres
--

CREATE SEQUENCE platform.api_keys_key_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER SEQUENCE platform.api_keys_key_id_seq OWNER TO postgres;

--
-- Name: api_keys_key_id_seq; Type: SEQUENCE OWNED BY; Schema: platform; Owner: postgres
--

ALTER SEQUENCE platform.api_keys_key_id_seq OWNED BY platform.api_keys.key_id;


--
-- Name: login_failures; Type: TABLE; Schema: platform; Owner: postgres
--

CREATE TABLE platform.login_failures (
    account text NOT NULL,
    failures integer DEFAULT 0 NOT NULL,
    last_failure_at timestamp with time zone,
    locked_until timestamp with time zone
);


ALTER TABLE platform.login_failures OWNER TO postgres;

--
-- Name: sessions; Type: TABLE; Schema: platform; Owner: postgres
--

CREATE TABLE platform.sessions (
    token_hash text NOT NULL,
    user_id bigint NOT NULL,
    csrf_token text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE platform.sessions OWNER TO postgres;

--
-- Name: user_scopes; Type: TABLE; Schema: platform; Owner: postgres
--

CREATE TABLE platform.user_scopes (
    user_id bigint NOT NULL,
    scope_type text NOT NULL,
    scope_value text NOT NULL,
    CONSTRAINT user_scopes_scope_type_check CHECK ((scope_type = ANY (ARRAY['store'::text, 'supplier'::text, 'category'::text])))
);


ALTER TABLE platform.user_scopes OWNER TO postgres;

--
-- Name: users; Type: TABLE; Schema: platform; Owner: postgres
--

CREATE TABLE platform.users (
    user_id bigint NOT NULL,
    username text NOT NULL,
    email text NOT NULL,
    display_name text DEFAULT ''::text NOT NULL,
    role text NOT NULL,
    password_hash text NOT NULL,
    is_active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['admin'::text, 'buyer'::text, 'store_manager'::text])))
);


ALTER TABLE platform.users OWNER TO postgres;

--
-- Name: users_user_id_seq; Type: SEQUENCE; Schema: platform; Owner: postgres
--

CREATE SEQUENCE platform.users_user_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER SEQUENCE platform.users_user_id_seq OWNER TO postgres;

--
-- Name: users_user_id_seq; Type: SEQUENCE OWNED BY; Schema: platform; Owner: postgres
--

ALTER SEQUENCE platform.users_user_id_seq OWNED BY platform.users.user_id;


--
-- Name: load_batches; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.load_batches (
    batch_id uuid NOT NULL,
    business_date date NOT NULL,
    connector text NOT NULL,
    entity text NOT NULL,
    source_file text,
    rows_in_file integer NOT NULL,
    rows_loaded integer NOT NULL,
    rows_quarantined integer NOT NULL,
    loaded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT load_batches_rows_balance CHECK (((rows_loaded + rows_quarantined) = rows_in_file))
);


ALTER TABLE raw.load_batches OWNER TO postgres;

--
-- Name: mms_calendar; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_calendar (
    calendar_date date NOT NULL,
    region text NOT NULL,
    weekday text,
    is_public_holiday boolean NOT NULL,
    is_school_holiday boolean NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_calendar OWNER TO postgres;

--
-- Name: mms_goods_receipts; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_goods_receipts (
    receipt_no text NOT NULL,
    po_id text NOT NULL,
    line_no integer NOT NULL,
    store_id integer NOT NULL,
    item_id integer NOT NULL,
    received_date date NOT NULL,
    quantity numeric NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_goods_receipts OWNER TO postgres;

--
-- Name: mms_item_suppliers; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_item_suppliers (
    item_id integer NOT NULL,
    supplier_id integer NOT NULL,
    pack_size integer NOT NULL,
    moq integer NOT NULL,
    min_order_value numeric NOT NULL,
    lead_time_days integer NOT NULL,
    order_weekdays text NOT NULL,
    cutoff_time text NOT NULL,
    max_order_qty integer,
    service_level numeric NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_item_suppliers OWNER TO postgres;

--
-- Name: mms_items; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_items (
    item_id integer NOT NULL,
    item_name text NOT NULL,
    category text NOT NULL,
    shelf_life_days integer NOT NULL,
    unit_price numeric NOT NULL,
    unit_cost numeric NOT NULL,
    is_active boolean NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_items OWNER TO postgres;

--
-- Name: mms_promotions; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_promotions (
    promotion_id text NOT NULL,
    store_id integer NOT NULL,
    item_id integer NOT NULL,
    start_date date NOT NULL,
    end_date date NOT NULL,
    promo_type text NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_promotions OWNER TO postgres;

--
-- Name: mms_purchase_orders; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_purchase_orders (
    po_id text NOT NULL,
    line_no integer NOT NULL,
    store_id integer NOT NULL,
    supplier_id integer NOT NULL,
    item_id integer NOT NULL,
    order_date date NOT NULL,
    due_date date NOT NULL,
    quantity numeric NOT NULL,
    status text NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_purchase_orders OWNER TO postgres;

--
-- Name: mms_stores; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_stores (
    store_id integer NOT NULL,
    store_name text NOT NULL,
    city text NOT NULL,
    region text NOT NULL,
    opened_date date NOT NULL,
    is_active boolean NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_stores OWNER TO postgres;

--
-- Name: mms_suppliers; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_suppliers (
    supplier_id integer NOT NULL,
    supplier_name text NOT NULL,
    channel text NOT NULL,
    email text,
    api_url text,
    allows_auto_order boolean NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_suppliers OWNER TO postgres;

--
-- Name: mms_weather; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.mms_weather (
    store_id integer NOT NULL,
    weather_date date NOT NULL,
    rain_mm numeric NOT NULL,
    temperature_c numeric NOT NULL,
    is_forecast boolean NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.mms_weather OWNER TO postgres;

--
-- Name: pos_receipts; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.pos_receipts (
    receipt_id text NOT NULL,
    store_id text NOT NULL,
    terminal text NOT NULL,
    sold_at timestamp with time zone NOT NULL,
    business_date date NOT NULL,
    total numeric(14,2) NOT NULL,
    lines jsonb NOT NULL,
    payload_hash text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.pos_receipts OWNER TO postgres;

--
-- Name: pos_sales_lines; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.pos_sales_lines (
    receipt_id text NOT NULL,
    store_id integer NOT NULL,
    item_id integer NOT NULL,
    sold_at timestamp with time zone NOT NULL,
    quantity numeric NOT NULL,
    unit_price numeric NOT NULL,
    amount numeric NOT NULL,
    weekday text,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.pos_sales_lines OWNER TO postgres;

--
-- Name: pos_stock_levels; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.pos_stock_levels (
    store_id integer NOT NULL,
    item_id integer NOT NULL,
    snapshot_at timestamp with time zone NOT NULL,
    on_hand_qty numeric NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.pos_stock_levels OWNER TO postgres;

--
-- Name: pos_waste_lines; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.pos_waste_lines (
    store_id integer NOT NULL,
    item_id integer NOT NULL,
    waste_date date NOT NULL,
    quantity numeric NOT NULL,
    reason text NOT NULL,
    _business_date date NOT NULL,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.pos_waste_lines OWNER TO postgres;

--
-- Name: quarantine; Type: TABLE; Schema: raw; Owner: postgres
--

CREATE TABLE raw.quarantine (
    batch_id uuid NOT NULL,
    business_date date NOT NULL,
    connector text NOT NULL,
    entity text,
    source_file text,
    line_no integer,
    field text,
    reason text NOT NULL,
    raw_record jsonb,
    quarantined_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE raw.quarantine OWNER TO postgres;

--
-- Name: alerts alert_id; Type: DEFAULT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.alerts ALTER COLUMN alert_id SET DEFAULT nextval('orders.alerts_alert_id_seq'::regclass);


--
-- Name: digest_outbox message_id; Type: DEFAULT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.digest_outbox ALTER COLUMN message_id SET DEFAULT nextval('orders.digest_outbox_message_id_seq'::regclass);


--
-- Name: order_events event_id; Type: DEFAULT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.order_events ALTER COLUMN event_id SET DEFAULT nextval('orders.order_events_event_id_seq'::regclass);


--
-- Name: outbox message_id; Type: DEFAULT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.outbox ALTER COLUMN message_id SET DEFAULT nextval('orders.outbox_message_id_seq'::regclass);


--
-- Name: api_keys key_id; Type: DEFAULT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.api_keys ALTER COLUMN key_id SET DEFAULT nextval('platform.api_keys_key_id_seq'::regclass);


--
-- Name: users user_id; Type: DEFAULT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.users ALTER COLUMN user_id SET DEFAULT nextval('platform.users_user_id_seq'::regclass);


--
-- Name: backtest_metrics backtest_metrics_pkey; Type: CONSTRAINT; Schema: forecast; Owner: postgres
--

ALTER TABLE ONLY forecast.backtest_metrics
    ADD CONSTRAINT backtest_metrics_pkey PRIMARY KEY (model_version, store_id, item_id, horizon);


--
-- Name: forecasts forecasts_pkey; Type: CONSTRAINT; Schema: forecast; Owner: postgres
--

ALTER TABLE ONLY forecast.forecasts
    ADD CONSTRAINT forecasts_pkey PRIMARY KEY (origin_date, store_id, item_id, target_date);


--
-- Name: models models_pkey; Type: CONSTRAINT; Schema: forecast; Owner: postgres
--

ALTER TABLE ONLY forecast.models
    ADD CONSTRAINT models_pkey PRIMARY KEY (version);


--
-- Name: clock clock_pkey; Type: CONSTRAINT; Schema: ops; Owner: postgres
--

ALTER TABLE ONLY ops.clock
    ADD CONSTRAINT clock_pkey PRIMARY KEY (id);


--
-- Name: pipeline_alerts pipeline_alerts_pkey; Type: CONSTRAINT; Schema: ops; Owner: postgres
--

ALTER TABLE ONLY ops.pipeline_alerts
    ADD CONSTRAINT pipeline_alerts_pkey PRIMARY KEY (dag_id, run_id, task_id, map_index);


--
-- Name: pipeline_runs pipeline_runs_pkey; Type: CONSTRAINT; Schema: ops; Owner: postgres
--

ALTER TABLE ONLY ops.pipeline_runs
    ADD CONSTRAINT pipeline_runs_pkey PRIMARY KEY (dag_id, run_id);


--
-- Name: quality_gate quality_gate_pkey; Type: CONSTRAINT; Schema: ops; Owner: postgres
--

ALTER TABLE ONLY ops.quality_gate
    ADD CONSTRAINT quality_gate_pkey PRIMARY KEY (run_id, store_id);


--
-- Name: quality_runs quality_runs_pkey; Type: CONSTRAINT; Schema: ops; Owner: postgres
--

ALTER TABLE ONLY ops.quality_runs
    ADD CONSTRAINT quality_runs_pkey PRIMARY KEY (run_id);


--
-- Name: stage_results stage_results_pkey; Type: CONSTRAINT; Schema: ops; Owner: postgres
--

ALTER TABLE ONLY ops.stage_results
    ADD CONSTRAINT stage_results_pkey PRIMARY KEY (business_date, stage);


--
-- Name: task_runs task_runs_pkey; Type: CONSTRAINT; Schema: ops; Owner: postgres
--

ALTER TABLE ONLY ops.task_runs
    ADD CONSTRAINT task_runs_pkey PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number);


--
-- Name: alerts alerts_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.alerts
    ADD CONSTRAINT alerts_pkey PRIMARY KEY (alert_id);


--
-- Name: digest_outbox digest_outbox_business_date_user_id_key; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.digest_outbox
    ADD CONSTRAINT digest_outbox_business_date_user_id_key UNIQUE (business_date, user_id);


--
-- Name: digest_outbox digest_outbox_idempotency_key_key; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.digest_outbox
    ADD CONSTRAINT digest_outbox_idempotency_key_key UNIQUE (idempotency_key);


--
-- Name: digest_outbox digest_outbox_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.digest_outbox
    ADD CONSTRAINT digest_outbox_pkey PRIMARY KEY (message_id);


--
-- Name: order_events order_events_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.order_events
    ADD CONSTRAINT order_events_pkey PRIMARY KEY (event_id);


--
-- Name: order_lines order_lines_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.order_lines
    ADD CONSTRAINT order_lines_pkey PRIMARY KEY (order_id, item_id);


--
-- Name: outbox outbox_idempotency_key_key; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.outbox
    ADD CONSTRAINT outbox_idempotency_key_key UNIQUE (idempotency_key);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (message_id);


--
-- Name: purchase_orders purchase_orders_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.purchase_orders
    ADD CONSTRAINT purchase_orders_pkey PRIMARY KEY (order_id);


--
-- Name: purchase_orders purchase_orders_store_id_supplier_id_delivery_date_key; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.purchase_orders
    ADD CONSTRAINT purchase_orders_store_id_supplier_id_delivery_date_key UNIQUE (store_id, supplier_id, delivery_date);


--
-- Name: release_stats release_stats_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.release_stats
    ADD CONSTRAINT release_stats_pkey PRIMARY KEY (run_id, supplier_id, store_id);


--
-- Name: send_attempts send_attempts_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.send_attempts
    ADD CONSTRAINT send_attempts_pkey PRIMARY KEY (channel, idempotency_key, attempt);


--
-- Name: sent_ledger sent_ledger_pkey; Type: CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.sent_ledger
    ADD CONSTRAINT sent_ledger_pkey PRIMARY KEY (idempotency_key, channel, state);


--
-- Name: api_idempotency api_idempotency_pkey; Type: CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.api_idempotency
    ADD CONSTRAINT api_idempotency_pkey PRIMARY KEY (key_id, idempotency_key);


--
-- Name: api_keys api_keys_key_hash_key; Type: CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.api_keys
    ADD CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (key_id);


--
-- Name: login_failures login_failures_pkey; Type: CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.login_failures
    ADD CONSTRAINT login_failures_pkey PRIMARY KEY (account);


--
-- Name: sessions sessions_pkey; Type: CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (token_hash);


--
-- Name: user_scopes user_scopes_pkey; Type: CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.user_scopes
    ADD CONSTRAINT user_scopes_pkey PRIMARY KEY (user_id, scope_type, scope_value);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (user_id);


--
-- Name: users users_username_key; Type: CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.users
    ADD CONSTRAINT users_username_key UNIQUE (username);


--
-- Name: load_batches load_batches_pkey; Type: CONSTRAINT; Schema: raw; Owner: postgres
--

ALTER TABLE ONLY raw.load_batches
    ADD CONSTRAINT load_batches_pkey PRIMARY KEY (batch_id);


--
-- Name: pos_receipts pos_receipts_store_receipt_pk; Type: CONSTRAINT; Schema: raw; Owner: postgres
--

ALTER TABLE ONLY raw.pos_receipts
    ADD CONSTRAINT pos_receipts_store_receipt_pk PRIMARY KEY (store_id, receipt_id);


--
-- Name: models_one_current; Type: INDEX; Schema: forecast; Owner: postgres
--

CREATE UNIQUE INDEX models_one_current ON forecast.models USING btree (is_current) WHERE is_current;


--
-- Name: pipeline_runs_recent_idx; Type: INDEX; Schema: ops; Owner: postgres
--

CREATE INDEX pipeline_runs_recent_idx ON ops.pipeline_runs USING btree (recorded_at DESC);


--
-- Name: quality_gate_date_idx; Type: INDEX; Schema: ops; Owner: postgres
--

CREATE INDEX quality_gate_date_idx ON ops.quality_gate USING btree (business_date);


--
-- Name: quality_results_date_idx; Type: INDEX; Schema: ops; Owner: postgres
--

CREATE INDEX quality_results_date_idx ON ops.quality_results USING btree (business_date);


--
-- Name: quality_results_key; Type: INDEX; Schema: ops; Owner: postgres
--

CREATE UNIQUE INDEX quality_results_key ON ops.quality_results USING btree (run_id, check_name, COALESCE(store_id, '-1'::integer));


--
-- Name: quality_runs_date_idx; Type: INDEX; Schema: ops; Owner: postgres
--

CREATE INDEX quality_runs_date_idx ON ops.quality_runs USING btree (business_date, created_at DESC);


--
-- Name: order_events_order_id_idx; Type: INDEX; Schema: orders; Owner: postgres
--

CREATE INDEX order_events_order_id_idx ON orders.order_events USING btree (order_id, event_id);


--
-- Name: outbox_due_idx; Type: INDEX; Schema: orders; Owner: postgres
--

CREATE INDEX outbox_due_idx ON orders.outbox USING btree (next_attempt_at, message_id) WHERE (status = ANY (ARRAY['pending'::text, 'retry'::text]));


--
-- Name: outbox_order_id_idx; Type: INDEX; Schema: orders; Owner: postgres
--

CREATE INDEX outbox_order_id_idx ON orders.outbox USING btree (order_id, message_id);


--
-- Name: purchase_orders_order_date_idx; Type: INDEX; Schema: orders; Owner: postgres
--

CREATE INDEX purchase_orders_order_date_idx ON orders.purchase_orders USING btree (order_date);


--
-- Name: purchase_orders_status_idx; Type: INDEX; Schema: orders; Owner: postgres
--

CREATE INDEX purchase_orders_status_idx ON orders.purchase_orders USING btree (status, delivery_date);


--
-- Name: api_keys_active_name; Type: INDEX; Schema: platform; Owner: postgres
--

CREATE UNIQUE INDEX api_keys_active_name ON platform.api_keys USING btree (name) WHERE (revoked_at IS NULL);


--
-- Name: login_failures_last_idx; Type: INDEX; Schema: platform; Owner: postgres
--

CREATE INDEX login_failures_last_idx ON platform.login_failures USING btree (last_failure_at);


--
-- Name: sessions_user_idx; Type: INDEX; Schema: platform; Owner: postgres
--

CREATE INDEX sessions_user_idx ON platform.sessions USING btree (user_id);


--
-- Name: load_batches__day_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX load_batches__day_idx ON raw.load_batches USING btree (business_date, entity);


--
-- Name: mms_calendar__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_calendar__business_date_idx ON raw.mms_calendar USING btree (_business_date);


--
-- Name: mms_goods_receipts__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_goods_receipts__business_date_idx ON raw.mms_goods_receipts USING btree (_business_date);


--
-- Name: mms_goods_receipts__key_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_goods_receipts__key_idx ON raw.mms_goods_receipts USING btree (receipt_no);


--
-- Name: mms_item_suppliers__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_item_suppliers__business_date_idx ON raw.mms_item_suppliers USING btree (_business_date);


--
-- Name: mms_items__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_items__business_date_idx ON raw.mms_items USING btree (_business_date);


--
-- Name: mms_promotions__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_promotions__business_date_idx ON raw.mms_promotions USING btree (_business_date);


--
-- Name: mms_promotions__key_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_promotions__key_idx ON raw.mms_promotions USING btree (promotion_id);


--
-- Name: mms_purchase_orders__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_purchase_orders__business_date_idx ON raw.mms_purchase_orders USING btree (_business_date);


--
-- Name: mms_purchase_orders__key_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_purchase_orders__key_idx ON raw.mms_purchase_orders USING btree (po_id, line_no);


--
-- Name: mms_stores__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_stores__business_date_idx ON raw.mms_stores USING btree (_business_date);


--
-- Name: mms_suppliers__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_suppliers__business_date_idx ON raw.mms_suppliers USING btree (_business_date);


--
-- Name: mms_weather__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX mms_weather__business_date_idx ON raw.mms_weather USING btree (_business_date);


--
-- Name: pos_receipts__store_day_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX pos_receipts__store_day_idx ON raw.pos_receipts USING btree (store_id, business_date);


--
-- Name: pos_sales_lines__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX pos_sales_lines__business_date_idx ON raw.pos_sales_lines USING btree (_business_date);


--
-- Name: pos_sales_lines__key_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX pos_sales_lines__key_idx ON raw.pos_sales_lines USING btree (receipt_id);


--
-- Name: pos_stock_levels__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX pos_stock_levels__business_date_idx ON raw.pos_stock_levels USING btree (_business_date);


--
-- Name: pos_waste_lines__business_date_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX pos_waste_lines__business_date_idx ON raw.pos_waste_lines USING btree (_business_date);


--
-- Name: pos_waste_lines__key_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX pos_waste_lines__key_idx ON raw.pos_waste_lines USING btree (store_id, item_id, waste_date);


--
-- Name: quarantine__day_idx; Type: INDEX; Schema: raw; Owner: postgres
--

CREATE INDEX quarantine__day_idx ON raw.quarantine USING btree (business_date, entity);


--
-- Name: order_events order_events_append_only; Type: TRIGGER; Schema: orders; Owner: postgres
--

CREATE TRIGGER order_events_append_only BEFORE DELETE OR UPDATE ON orders.order_events FOR EACH ROW EXECUTE FUNCTION orders.forbid_change();


--
-- Name: order_lines order_lines_order_id_fkey; Type: FK CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.order_lines
    ADD CONSTRAINT order_lines_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders.purchase_orders(order_id);


--
-- Name: outbox outbox_order_id_fkey; Type: FK CONSTRAINT; Schema: orders; Owner: postgres
--

ALTER TABLE ONLY orders.outbox
    ADD CONSTRAINT outbox_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders.purchase_orders(order_id);


--
-- Name: api_idempotency api_idempotency_key_id_fkey; Type: FK CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.api_idempotency
    ADD CONSTRAINT api_idempotency_key_id_fkey FOREIGN KEY (key_id) REFERENCES platform.api_keys(key_id);


--
-- Name: sessions sessions_user_id_fkey; Type: FK CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.sessions
    ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES platform.users(user_id);


--
-- Name: user_scopes user_scopes_user_id_fkey; Type: FK CONSTRAINT; Schema: platform; Owner: postgres
--

ALTER TABLE ONLY platform.user_scopes
    ADD CONSTRAINT user_scopes_user_id_fkey FOREIGN KEY (user_id) REFERENCES platform.users(user_id);


--
-- PostgreSQL database dump complete
--



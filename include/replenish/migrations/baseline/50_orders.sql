-- Schema orders: purchase orders, their lines and events, the outbox, send attempts, alerts, digests.
-- Revision 0001 (baseline), verbatim from release 0.1.0; idempotent: see versions/0001_baseline.py.
CREATE SCHEMA IF NOT EXISTS orders;
CREATE TABLE IF NOT EXISTS orders.purchase_orders (
    order_id text PRIMARY KEY,
    store_id text NOT NULL,
    supplier_id text NOT NULL,
    delivery_date date NOT NULL,
    next_delivery_date date,
    order_date date NOT NULL,
    cutoff_at timestamptz,
    status text NOT NULL DEFAULT 'proposed',
    version int NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    run_id text,
    released_by text,
    reasons text[] NOT NULL DEFAULT '{}',
    channel text,
    order_value numeric(14, 2),
    cutoff_action text,
    cutoff_handled_at timestamptz,
    UNIQUE (store_id, supplier_id, delivery_date)
);
-- cutoff_action: what happened when the supplier's cutoff passed (send | skip | escalate | missed), set once.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'orders'
                   AND table_name = 'purchase_orders' AND column_name = 'cutoff_action') THEN
        ALTER TABLE orders.purchase_orders ADD COLUMN cutoff_action text, ADD COLUMN cutoff_handled_at timestamptz;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS orders.order_lines (
    order_id text NOT NULL REFERENCES orders.purchase_orders(order_id),
    item_id text NOT NULL,
    proposed_qty int NOT NULL CHECK (proposed_qty >= 0),
    final_qty int NOT NULL CHECK (final_qty >= 0),
    explanation jsonb,
    edited_by text,
    edited_at timestamptz,
    edit_reason text,
    PRIMARY KEY (order_id, item_id)
);
CREATE TABLE IF NOT EXISTS orders.order_events (
    event_id bigserial PRIMARY KEY,
    order_id text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL,
    event text NOT NULL,
    from_value text,
    to_value text
);
CREATE OR REPLACE FUNCTION orders.forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'orders.order_events is append-only'; END $$;
-- Created only when missing: DROP/CREATE TRIGGER (and CREATE INDEX IF NOT EXISTS) lock the table until the
-- transaction ends (the release before migrations ran this DDL inside long stage and request transactions).
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'order_events_append_only'
                   AND tgrelid = 'orders.order_events'::regclass) THEN
        CREATE TRIGGER order_events_append_only BEFORE UPDATE OR DELETE ON orders.order_events
            FOR EACH ROW EXECUTE FUNCTION orders.forbid_change();
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS orders.outbox (
    message_id bigserial PRIMARY KEY,
    order_id text NOT NULL REFERENCES orders.purchase_orders(order_id),
    idempotency_key text NOT NULL UNIQUE,
    channel text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    attempts int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    sent_by_run text
);
CREATE TABLE IF NOT EXISTS orders.sent_ledger (
    idempotency_key text NOT NULL,
    channel text NOT NULL,
    state text NOT NULL,            -- 'sending' (claim) or 'sent' (marker)
    external_ref text,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (idempotency_key, channel, state)
);
-- One row per transmission attempt (orders and digest mails): the intent is committed before the provider
-- call, the outcome after it (replenish.orders.sent_ledger). Replaces orders.sent_ledger, whose rows are
-- carried over once: a 'sent' marker as an accepted attempt, a 'sending' claim alone as one without outcome.
DO $$ BEGIN
    IF to_regclass('orders.send_attempts') IS NULL THEN
        CREATE TABLE orders.send_attempts (
            channel text NOT NULL,
            idempotency_key text NOT NULL,
            attempt int NOT NULL,
            order_id text,
            started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            possible_duplicate boolean NOT NULL DEFAULT false,
            outcome text CHECK (outcome IN ('accepted', 'rejected', 'unknown', 'interrupted')),
            external_ref text,
            error text,
            finished_at timestamptz,
            alerted_at timestamptz,
            PRIMARY KEY (channel, idempotency_key, attempt)
        );
        INSERT INTO orders.send_attempts (channel, idempotency_key, attempt, started_at, outcome, external_ref,
                                          finished_at)
        SELECT channel, idempotency_key, 1, min(at), CASE WHEN bool_or(state = 'sent') THEN 'accepted' END,
               max(external_ref) FILTER (WHERE state = 'sent'), max(at) FILTER (WHERE state = 'sent')
        FROM orders.sent_ledger GROUP BY channel, idempotency_key;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS orders.alerts (
    alert_id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    order_id text,
    kind text NOT NULL,
    message text
);
CREATE TABLE IF NOT EXISTS orders.release_stats (
    run_id text NOT NULL,
    business_date date NOT NULL,
    supplier_id text NOT NULL,
    store_id text NOT NULL,
    orders int NOT NULL,
    auto_released int NOT NULL,
    touchless_rate numeric(6, 4),
    rules_version text,
    PRIMARY KEY (run_id, supplier_id, store_id)
);
DO $$ BEGIN
    IF to_regclass('orders.outbox_order_id_idx') IS NULL THEN
        CREATE INDEX outbox_order_id_idx ON orders.outbox (order_id, message_id);
    END IF;
    IF to_regclass('orders.order_events_order_id_idx') IS NULL THEN
        CREATE INDEX order_events_order_id_idx ON orders.order_events (order_id, event_id);
    END IF;
    IF to_regclass('orders.purchase_orders_status_idx') IS NULL THEN
        CREATE INDEX purchase_orders_status_idx ON orders.purchase_orders (status, delivery_date);
    END IF;
    -- the nightly stages select one order date; the dispatcher claims due messages one at a time: both stay
    -- index lookups while the order history and the sent outbox grow night after night
    IF to_regclass('orders.purchase_orders_order_date_idx') IS NULL THEN
        CREATE INDEX purchase_orders_order_date_idx ON orders.purchase_orders (order_date);
    END IF;
    IF to_regclass('orders.outbox_due_idx') IS NULL THEN
        CREATE INDEX outbox_due_idx ON orders.outbox (next_attempt_at, message_id) WHERE status IN ('pending', 'retry');
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS orders.digest_outbox (
    message_id      bigserial PRIMARY KEY,
    business_date   date        NOT NULL,
    user_id         bigint      NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    payload         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    run_id          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    sent_by_run     text,
    external_ref    text,
    UNIQUE (business_date, user_id)
);

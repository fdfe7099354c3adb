"""Tables the platform adds beside platform.users / user_scopes (accounts.py) and the orders schema.

- platform.sessions: server-side web sessions; the cookie carries a random token, the table only its
  SHA-256 (a stolen database does not yield usable cookies), plus the session's CSRF token.
- platform.api_keys: per-terminal POS API keys, SHA-256 at rest (the keys are 256-bit random, so a slow
  password hash would add latency without adding security), one store each, revocable.
- platform.api_idempotency: first result of every POST with an ``Idempotency-Key`` header.
- raw.pos_receipts: sales receipts pushed by the tills (intraday), one row per store and receipt id (a
  receipt id is only unique within its store).
- platform.login_failures: consecutive failed sign-ins per account name as typed (known or not), and until
  when that account's sign-in is refused (ratelimit.account_wait / record_failure).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replenish.orders import store as order_store
from replenish.platform import accounts

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DDL = """
CREATE TABLE IF NOT EXISTS platform.sessions (
    token_hash text PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES platform.users(user_id),
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
-- added after the first release; ALTER only when missing (it would lock the table on every start)
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'platform'
                   AND table_name = 'sessions' AND column_name = 'last_seen_at') THEN
        ALTER TABLE platform.sessions ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS sessions_user_idx ON platform.sessions (user_id);
CREATE TABLE IF NOT EXISTS platform.api_keys (
    key_id bigserial PRIMARY KEY,
    name text NOT NULL,
    store_id text NOT NULL,
    key_prefix text NOT NULL,
    key_hash text NOT NULL UNIQUE,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    last_used_at timestamptz
);
-- a name identifies one active key; a revoked key's name can be given to its replacement
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON platform.api_keys (name) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS platform.api_idempotency (
    key_id bigint NOT NULL REFERENCES platform.api_keys(key_id),
    idempotency_key text NOT NULL,
    request_hash text NOT NULL,
    status_code int,
    response jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, idempotency_key)
);
CREATE SCHEMA IF NOT EXISTS raw;
CREATE TABLE IF NOT EXISTS raw.pos_receipts (
    receipt_id text NOT NULL,
    store_id text NOT NULL,
    terminal text NOT NULL,
    sold_at timestamptz NOT NULL,
    business_date date NOT NULL,
    total numeric(14, 2) NOT NULL,
    lines jsonb NOT NULL,
    payload_hash text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pos_receipts_store_receipt_pk PRIMARY KEY (store_id, receipt_id)
);
-- a database from before receipt ids were scoped per store: widen its key (every existing row stays unique)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'pos_receipts_store_receipt_pk'
                   AND conrelid = 'raw.pos_receipts'::regclass) THEN
        ALTER TABLE raw.pos_receipts DROP CONSTRAINT IF EXISTS pos_receipts_pkey;
        ALTER TABLE raw.pos_receipts ADD CONSTRAINT pos_receipts_store_receipt_pk PRIMARY KEY (store_id, receipt_id);
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS pos_receipts__store_day_idx ON raw.pos_receipts (store_id, business_date);
CREATE TABLE IF NOT EXISTS platform.login_failures (
    account text PRIMARY KEY,
    failures int NOT NULL DEFAULT 0,
    last_failure_at timestamptz,
    locked_until timestamptz
);
CREATE INDEX IF NOT EXISTS login_failures_last_idx ON platform.login_failures (last_failure_at);
"""


def ensure_schema(conn: Connection) -> None:
    """Everything the platform reads or writes (idempotent; serialised by an advisory lock)."""
    accounts.ensure_schema(conn)
    order_store.ensure_schema(conn)
    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('platform.tables.ensure_schema'))")
    conn.exec_driver_sql(DDL)

-- Schema platform: accounts, sessions, API keys, idempotency records, sign-in throttling.
-- Revision 0001 (baseline), verbatim from release 0.1.0; idempotent: see versions/0001_baseline.py.
-- platform.users / user_scopes: accounts and what each may see (replenish.platform.accounts).
-- platform.sessions: server-side web sessions; the cookie carries a random token, the table only its
--   SHA-256 (a stolen database does not yield usable cookies), plus the session's CSRF token.
-- platform.api_keys: per-terminal POS API keys, SHA-256 at rest (the keys are 256-bit random, so a slow
--   password hash would add latency without adding security), one store each, revocable.
-- platform.api_idempotency: first result of every POST with an Idempotency-Key header.
-- platform.login_failures: consecutive failed sign-ins per account name as typed (known or not), and until
--   when that account's sign-in is refused (ratelimit.account_wait / record_failure).
CREATE SCHEMA IF NOT EXISTS platform;
CREATE TABLE IF NOT EXISTS platform.users (
    user_id bigserial PRIMARY KEY,
    username text NOT NULL UNIQUE,
    email text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    role text NOT NULL CHECK (role IN ('admin', 'buyer', 'store_manager')),
    password_hash text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS platform.user_scopes (
    user_id bigint NOT NULL REFERENCES platform.users(user_id),
    scope_type text NOT NULL CHECK (scope_type IN ('store', 'supplier', 'category')),
    scope_value text NOT NULL,
    PRIMARY KEY (user_id, scope_type, scope_value)
);
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
CREATE TABLE IF NOT EXISTS platform.login_failures (
    account text PRIMARY KEY,
    failures int NOT NULL DEFAULT 0,
    last_failure_at timestamptz,
    locked_until timestamptz
);
CREATE INDEX IF NOT EXISTS login_failures_last_idx ON platform.login_failures (last_failure_at);

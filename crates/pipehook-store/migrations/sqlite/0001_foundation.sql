-- Organizations, credentials and the durable job queue. Times are milliseconds since the Unix epoch.

CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    account_id  TEXT    NOT NULL UNIQUE,
    settings    TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    description  TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_tokens_org ON api_tokens(org_id);

CREATE TABLE access_keys (
    access_key_id      TEXT    PRIMARY KEY,
    org_id             INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    secret_ciphertext  TEXT    NOT NULL,
    description        TEXT    NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    revoked_at         INTEGER
);
CREATE INDEX access_keys_org ON access_keys(org_id);

-- state: 'ready' (waiting for run_at), 'running' (leased until lease_until), 'dead' (gave up; kept).
-- Completed jobs are deleted: the domain tables record outcomes.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    org_id        INTEGER,
    payload       TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('ready', 'running', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at        INTEGER NOT NULL,
    lease_token   INTEGER,
    lease_until   INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX jobs_ready   ON jobs(run_at, id) WHERE state = 'ready';
CREATE INDEX jobs_running ON jobs(lease_until) WHERE state = 'running';
CREATE INDEX jobs_dead    ON jobs(id) WHERE state = 'dead';

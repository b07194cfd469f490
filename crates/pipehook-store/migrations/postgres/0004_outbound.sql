-- Outbound webhooks: subscriptions (hooks) at organization, stack or environment scope, the events
-- published to them, one delivery per (event, hook), and every attempt to send one.

CREATE TABLE hooks (
    id                BIGSERIAL PRIMARY KEY,
    org_id            BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    -- 'org' | 'stack' | 'env'; the names that do not apply to the scope are ''.
    scope             TEXT    NOT NULL,
    project_name      TEXT    NOT NULL DEFAULT '',
    stack_name        TEXT    NOT NULL DEFAULT '',
    env_name          TEXT    NOT NULL DEFAULT '',
    name              TEXT    NOT NULL,
    display_name      TEXT    NOT NULL,
    payload_url       TEXT    NOT NULL,
    secret_ciphertext TEXT,
    active            BIGINT NOT NULL,
    format            TEXT    NOT NULL,
    filters           TEXT    NOT NULL,
    event_groups      TEXT    NOT NULL,
    disabled_reason   TEXT,
    failing_since     BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (org_id, scope, project_name, stack_name, env_name, name)
);

CREATE TABLE outbound_events (
    id              TEXT    PRIMARY KEY,
    org_id          BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    project_name    TEXT,
    stack_name      TEXT,
    env_name        TEXT,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX outbound_events_idempotency ON outbound_events(org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX outbound_events_created ON outbound_events(created_at);

CREATE TABLE deliveries (
    id         TEXT    PRIMARY KEY,
    org_id     BIGINT NOT NULL,
    hook_id    BIGINT NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
    event_id   TEXT    NOT NULL REFERENCES outbound_events(id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    -- 'pending' | 'succeeded' | 'failed'
    status     TEXT    NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_hook ON deliveries(hook_id);
CREATE INDEX deliveries_event ON deliveries(event_id);

CREATE TABLE delivery_attempts (
    seq              BIGSERIAL PRIMARY KEY,
    delivery_id      TEXT    NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    org_id           BIGINT NOT NULL,
    hook_id          BIGINT NOT NULL,
    kind             TEXT    NOT NULL,
    -- 'scheduled' | 'redeliver' | 'ping'
    attempt_trigger  TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    attempted_at     BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    request_url      TEXT    NOT NULL,
    request_headers  TEXT    NOT NULL,
    response_code    BIGINT NOT NULL,
    response_headers TEXT    NOT NULL,
    response_body    TEXT    NOT NULL
);
CREATE INDEX delivery_attempts_hook ON delivery_attempts(hook_id, seq);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id);
CREATE INDEX delivery_attempts_time ON delivery_attempts(attempted_at);

-- The relay turns run transitions into outbound events exactly once.
ALTER TABLE run_events ADD COLUMN relayed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX run_events_unrelayed ON run_events(seq) WHERE relayed = 0;

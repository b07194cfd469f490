-- Pipeline webhooks (CodePipeline PutWebhook), the inbound request log, and delivery-id dedupe.

CREATE TABLE webhooks (
    id                          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id                      INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name                        TEXT    NOT NULL,
    pipeline_id                 INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    -- The trigger URL's token: looked up by hash; kept encrypted so the URL can be shown again.
    url_token_hash              TEXT    NOT NULL UNIQUE,
    url_token_ciphertext        TEXT    NOT NULL,
    -- The definition as AWS shows it, with the secret redacted.
    definition                  TEXT    NOT NULL,
    secret_ciphertext           TEXT,
    previous_secret_ciphertext  TEXT,
    previous_secret_expires_at  INTEGER,
    revision                    INTEGER NOT NULL,
    last_triggered              INTEGER,
    error_code                  TEXT,
    error_message               TEXT,
    third_party_hook_id         TEXT,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE inbound_requests (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    org_id         INTEGER NOT NULL,
    webhook_id     INTEGER NOT NULL,
    webhook_name   TEXT    NOT NULL,
    received_at    INTEGER NOT NULL,
    peer           TEXT    NOT NULL,
    headers        TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    body_truncated INTEGER NOT NULL,
    delivery_id    TEXT,
    verdict        TEXT    NOT NULL,
    detail         TEXT    NOT NULL,
    execution_id   TEXT
);
CREATE INDEX inbound_requests_org ON inbound_requests(org_id, seq);
CREATE INDEX inbound_requests_received ON inbound_requests(received_at);

-- The first accepted request of each provider delivery id, per webhook.
CREATE TABLE inbound_deliveries (
    webhook_id   INTEGER NOT NULL,
    delivery_id  TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, delivery_id)
);
CREATE INDEX inbound_deliveries_received ON inbound_deliveries(received_at);

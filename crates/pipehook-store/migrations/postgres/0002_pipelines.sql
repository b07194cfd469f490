-- Pipelines, their versions, executions, action executions, tags and run events.

CREATE TABLE pipelines (
    id          BIGSERIAL PRIMARY KEY,
    org_id      BIGINT  NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    declaration TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE pipeline_versions (
    pipeline_id BIGINT  NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    version     BIGINT  NOT NULL,
    declaration TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (pipeline_id, version)
);

-- Tags by resource ARN (pipelines now; webhooks and projects later).
CREATE TABLE resource_tags (
    org_id       BIGINT  NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    resource_arn TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    PRIMARY KEY (org_id, resource_arn, key)
);

-- seq orders executions (newest first) and makes pagination cursors stable.
CREATE TABLE pipeline_executions (
    seq                  BIGSERIAL PRIMARY KEY,
    id                   TEXT    NOT NULL UNIQUE,
    org_id               BIGINT  NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    pipeline_id          BIGINT  NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    pipeline_name        TEXT    NOT NULL,
    pipeline_version     BIGINT  NOT NULL,
    status               TEXT    NOT NULL,
    status_summary       TEXT,
    execution_mode       TEXT    NOT NULL,
    trigger_info         TEXT    NOT NULL,
    source_revisions     TEXT    NOT NULL,
    variables            TEXT    NOT NULL,
    client_request_token TEXT,
    stop_requested       BIGINT  NOT NULL DEFAULT 0,
    stop_abandon         BIGINT  NOT NULL DEFAULT 0,
    stop_reason          TEXT,
    start_time           BIGINT  NOT NULL,
    last_update_time     BIGINT  NOT NULL,
    UNIQUE (pipeline_id, client_request_token)
);
CREATE INDEX pipeline_executions_pipeline ON pipeline_executions(pipeline_id, seq);

CREATE TABLE action_executions (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    execution_id     TEXT    NOT NULL REFERENCES pipeline_executions(id) ON DELETE CASCADE,
    org_id           BIGINT  NOT NULL,
    pipeline_id      BIGINT  NOT NULL,
    stage_name       TEXT    NOT NULL,
    action_name      TEXT    NOT NULL,
    stage_index      BIGINT  NOT NULL,
    action_index     BIGINT  NOT NULL,
    status           TEXT    NOT NULL,
    input            TEXT    NOT NULL,
    output           TEXT    NOT NULL,
    error_code       TEXT,
    error_message    TEXT,
    log              TEXT    NOT NULL DEFAULT '',
    start_time       BIGINT  NOT NULL,
    last_update_time BIGINT  NOT NULL,
    UNIQUE (execution_id, stage_name, action_name)
);
CREATE INDEX action_executions_pipeline ON action_executions(pipeline_id, seq);

-- Every run transition, in order: what the outbound side turns into events.
CREATE TABLE run_events (
    seq        BIGSERIAL PRIMARY KEY,
    org_id     BIGINT  NOT NULL,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE INDEX run_events_subject ON run_events(subject, seq);

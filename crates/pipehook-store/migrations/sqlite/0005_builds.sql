-- CodeBuild: build projects, their builds, and their webhooks (CreateWebhook).

CREATE TABLE build_projects (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    -- The project as CodeBuild shows it (source, environment, timeoutInMinutes, tags...).
    document       TEXT    NOT NULL,
    -- The last buildNumber given out.
    build_counter  INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (org_id, name)
);

-- Builds outlive their project (as in CodeBuild), so no foreign key to build_projects.
CREATE TABLE builds (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,
    id                      TEXT    NOT NULL UNIQUE,
    org_id                  INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_name            TEXT    NOT NULL,
    build_number            INTEGER NOT NULL,
    status                  TEXT    NOT NULL,
    current_phase           TEXT    NOT NULL,
    phases                  TEXT    NOT NULL,
    source_version          TEXT,
    resolved_source_version TEXT,
    initiator               TEXT    NOT NULL,
    env_overrides           TEXT    NOT NULL,
    buildspec_override      TEXT,
    idempotency_token       TEXT,
    -- What started it: the revision a webhook carried, the CODEBUILD_WEBHOOK_* variables...
    trigger_info            TEXT    NOT NULL,
    logs                    TEXT    NOT NULL DEFAULT '',
    stop_requested          INTEGER NOT NULL DEFAULT 0,
    start_time              INTEGER NOT NULL,
    end_time                INTEGER,
    UNIQUE (org_id, project_name, idempotency_token)
);
CREATE INDEX builds_project ON builds(org_id, project_name, seq);
CREATE INDEX builds_org ON builds(org_id, seq);

CREATE TABLE build_webhooks (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id                INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_id            INTEGER NOT NULL UNIQUE REFERENCES build_projects(id) ON DELETE CASCADE,
    -- The payload URL's token: looked up by hash; kept encrypted so the URL can be shown again.
    url_token_hash        TEXT    NOT NULL UNIQUE,
    url_token_ciphertext  TEXT    NOT NULL,
    secret_ciphertext     TEXT,
    branch_filter         TEXT,
    filter_groups         TEXT    NOT NULL,
    build_type            TEXT,
    manual_creation       INTEGER NOT NULL,
    status                TEXT    NOT NULL,
    status_message        TEXT,
    third_party_hook_id   TEXT,
    last_modified_secret  INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

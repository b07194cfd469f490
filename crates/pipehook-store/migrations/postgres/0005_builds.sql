-- CodeBuild: build projects, their builds, and their webhooks (CreateWebhook).

CREATE TABLE build_projects (
    id             BIGSERIAL PRIMARY KEY,
    org_id         BIGINT  NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    -- The project as CodeBuild shows it (source, environment, timeoutInMinutes, tags...).
    document       TEXT    NOT NULL,
    -- The last buildNumber given out.
    build_counter  BIGINT  NOT NULL DEFAULT 0,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    UNIQUE (org_id, name)
);

-- Builds outlive their project (as in CodeBuild), so no foreign key to build_projects.
CREATE TABLE builds (
    seq                     BIGSERIAL PRIMARY KEY,
    id                      TEXT    NOT NULL UNIQUE,
    org_id                  BIGINT  NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_name            TEXT    NOT NULL,
    build_number            BIGINT  NOT NULL,
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
    stop_requested          BIGINT  NOT NULL DEFAULT 0,
    start_time              BIGINT  NOT NULL,
    end_time                BIGINT,
    UNIQUE (org_id, project_name, idempotency_token)
);
CREATE INDEX builds_project ON builds(org_id, project_name, seq);
CREATE INDEX builds_org ON builds(org_id, seq);

CREATE TABLE build_webhooks (
    id                    BIGSERIAL PRIMARY KEY,
    org_id                BIGINT  NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_id            BIGINT  NOT NULL UNIQUE REFERENCES build_projects(id) ON DELETE CASCADE,
    -- The payload URL's token: looked up by hash; kept encrypted so the URL can be shown again.
    url_token_hash        TEXT    NOT NULL UNIQUE,
    url_token_ciphertext  TEXT    NOT NULL,
    secret_ciphertext     TEXT,
    branch_filter         TEXT,
    filter_groups         TEXT    NOT NULL,
    build_type            TEXT,
    manual_creation       BIGINT  NOT NULL,
    status                TEXT    NOT NULL,
    status_message        TEXT,
    third_party_hook_id   TEXT,
    last_modified_secret  BIGINT  NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);

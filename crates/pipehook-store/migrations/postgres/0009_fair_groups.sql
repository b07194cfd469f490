-- Fairness inside an organization: a job may name the group it is shared within (a pipeline's executions, a
-- project's builds), and claims go round robin between an organization's groups, found by skipping through
-- this index.
ALTER TABLE jobs ADD COLUMN fair_key TEXT;
CREATE INDEX jobs_fair_group ON jobs(kind, org_id, fair_key, run_at) WHERE state = 'ready';
-- What runs, by organization and group: fair claims count it on every claim, so it is read from this small
-- index instead of the whole table.
CREATE INDEX jobs_running_by ON jobs(kind, org_id, fair_key) WHERE state = 'running';

-- Fair claims: the organizations with ready jobs of a kind are found by skipping through this index (one seek
-- per organization), and each organization's oldest due jobs are read from it in order.
CREATE INDEX jobs_fair ON jobs(kind, org_id, run_at) WHERE state = 'ready';

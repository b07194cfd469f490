-- Which node holds a running job, so a node that restarts takes back at once what its previous life held
-- instead of waiting for those leases to run out.
ALTER TABLE jobs ADD COLUMN node TEXT;
CREATE INDEX jobs_node ON jobs(node) WHERE state = 'running';

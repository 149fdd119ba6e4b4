-- Several nodes on one catalog (docs/nodes.md). A job is held by the node
-- that runs it until lease_until (unix milliseconds), renewed while it
-- runs; a job whose lease ended is settled by any node. Jobs made before
-- nodes existed have no node and are free to settle.
ALTER TABLE jobs ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
-- One backup per instance at a time, across every node: at most one
-- unfinished job held by a node per instance.
CREATE UNIQUE INDEX jobs_one_running ON jobs (instance_id) WHERE node_id <> '' AND status NOT IN ('Finished', 'Failed');

-- Cluster-wide singletons (the scheduler, each instance's log stream):
-- one row per name, held by node_id until expires_at (unix milliseconds).
CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	node_id    TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Which version of each projection the read tables hold (issue 22: blue/green).
-- A worker whose projection is newer builds the new version beside the served one
-- (projections/blue_green.py) and switches in one transaction; a worker whose
-- projection is older stands by. A projection with no row is taken as served by the
-- first worker that runs it. No migration empties a read model in place any more.
CREATE TABLE IF NOT EXISTS projection_versions (
    name        text PRIMARY KEY,
    version     integer NOT NULL,
    switched_at timestamptz NOT NULL DEFAULT now()
);

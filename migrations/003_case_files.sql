-- Read model: one row per case with its case file (view + timeline), kept by
-- the case_files projection. `file` is what the projection folds further;
-- `view` and `timeline` are the bytes GET /v1/cases/{id} and /timeline send.
CREATE TABLE IF NOT EXISTS case_files (
    case_id uuid PRIMARY KEY,
    version bigint NOT NULL,
    status text NOT NULL,
    departments text[] NOT NULL,
    assignee text,
    file bytea NOT NULL,
    view bytea NOT NULL,
    timeline bytea NOT NULL
);

-- A refusal a plain SQL statement can raise (issue 22: a projection batch in fewer round trips).
-- A projection batch ends with one simple-protocol message, "move the position; COMMIT": when the
-- position was already there (a batch replayed) or the tables hold another version of the
-- projection, the statement must fail so that its COMMIT is never reached. SQL has no RAISE of its
-- own; this function is it, with the SQLSTATE and message the caller gives (VOLATILE, so the planner
-- never evaluates it ahead of the condition that guards it, e.g. the second argument of coalesce).
-- The SQL of each table stays with the module that owns the table; only the raising lives here.
CREATE OR REPLACE FUNCTION casedesk_refuse(sqlstate text, message text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message;
END $$;

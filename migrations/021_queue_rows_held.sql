-- A claim's hold, also on the queue row it took (issue 22: claims at the queue head).
-- claim_holds stays the authority; `held_until` is its copy on the row the claim
-- locked, so that a claim whose snapshot predates another's hold, reaching the same
-- row, re-checks the row's newer version under FOR UPDATE and moves on to the next
-- case in the same statement instead of losing the race and asking again.
-- A nullable column: no read model is emptied or rewritten.
ALTER TABLE queue_items ADD COLUMN IF NOT EXISTS held_until timestamptz;

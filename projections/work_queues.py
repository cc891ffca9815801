"""Work queues: which queues a case waits in, with what priority, derived from its view.

A case waits only while it is open and nobody holds it; a claim takes it out
of every queue and a release puts it back where it was, with its original
place (enqueued_at), as a person in the queue would expect.

- `fraud_alerts`: a fraud-alert case nobody has reached yet (no connected contact);
- `breach_outreach`: a breach case nobody has reached yet;
- `disputes`: a case with an open dispute;
- `reissue`: a case with a suspended card not yet replaced;
- `callbacks_due`: a promised callback of department fraud (due_at = when);
- `deadlines`: a running deadline clock, due_at the earliest; every such case has a
  row, but the queue shows only those due within DEADLINE_WINDOW or already past
  due (`WAITING`, read at query time: a clock comes due as time passes, not by
  an event); ordered by due_at alone (all its rows have priority 1);
- `processor_failures`: the card processor refused an instruction (always priority 1: a
  card the agent blocked may still be authorising);
- `approvals`: a waiver or credit above the approval limit waits for a supervisor's
  decision (due when the first pending request expires); the one queue a held case
  still waits in: the decision is not the holder's;
- department D (e.g. `credit_management`): the case was escalated to D and awaits its
  decision (EscalationConcluded takes it out), or D owes a callback.

A missed callback keeps its place in the callbacks queue (overdue) until it is
rescheduled or waived.

Priority: 1 when the case names a flagged merchant, else from the amount at
risk (2 urgent, 3 pressing, 4 otherwise), or the escalation's if higher.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from casedesk.domain.values import Money
from casedesk.projections.timeline.rows import case_file_row_sql
from casedesk.projections.timeline.shapes import CaseFile, CaseView
from casedesk.services.store.database import ASYNCHRONOUS_COMMIT
from casedesk.services.store.event_store import stream_after_sql
from casedesk.services.store.snapshots import latest_snapshot_sql

_encode = msgspec.json.Encoder().encode

HOME = "fraud"
FRAUD_QUEUES = ("fraud_alerts", "callbacks_due", "disputes", "reissue", "breach_outreach", "processor_failures",
                "deadlines")
DEADLINES = "deadlines"
# Four eyes: cases with a waiver or credit waiting for a supervisor's approval, held or not (worked by
# supervisors: no agent's department is `approvals`). Due when the first request expires (72 h).
APPROVALS = "approvals"
# How soon a running clock's due time must be for its case to show in `deadlines` (CONTRACT.md: 48 h).
DEADLINE_WINDOW = "48 hours"
# Which queue_items rows a queue shows now: all, except deadlines not yet within the window.
WAITING = f"(queue <> '{DEADLINES}' OR due_at < now() + interval '{DEADLINE_WINDOW}')"
# Amount at risk in major units from which a case is urgent (2) or pressing (3).
_ZERO_DECIMAL_CURRENCIES = {"JPY", "KRW"}


class QueueRow(msgspec.Struct, frozen=True, kw_only=True):
    queue: str
    case_id: object
    priority: int
    reason: str
    due_at: datetime | None
    enqueued_at: datetime
    amount_at_risk: Money | None


def department_of(queue: str) -> str:
    """The department whose agents work a queue."""
    return HOME if queue in FRAUD_QUEUES else queue


def amount_priority(amount: Money | None) -> int:
    if amount is None:
        return 4
    try:
        value = Decimal(amount.amount)
    except InvalidOperation:
        return 4
    scale = Decimal(100) if amount.currency in _ZERO_DECIMAL_CURRENCIES else Decimal(1)
    if value >= 1000 * scale:
        return 2
    if value >= 100 * scale:
        return 3
    return 4


def queue_rows(view: CaseView) -> list[QueueRow]:
    """Every queue the case waits in now (none when resolved; only `approvals` when held)."""
    if view.status != "open" or view.merged_into is not None:
        return []  # a merged-away case waits in no queue: its survivor carries what it owes
    base = 1 if view.flagged_merchants else amount_priority(view.amount_at_risk)
    approvals = _waiting_for_approval(view, base)
    if view.assignee is not None:
        return approvals  # the supervisors' decision does not wait for the agent holding the case
    rows: dict[str, QueueRow] = {}

    def add(queue: str, enqueued_at: datetime, priority: int = base, due_at: datetime | None = None) -> None:
        known = rows.get(queue)
        if known is not None:
            priority = min(priority, known.priority)
            enqueued_at = min(enqueued_at, known.enqueued_at)
            due_at = min(d for d in (due_at, known.due_at) if d) if (due_at or known.due_at) else None
        rows[queue] = QueueRow(queue=queue, case_id=view.case_id, priority=priority, reason=view.reason,
                               due_at=due_at, enqueued_at=enqueued_at, amount_at_risk=view.amount_at_risk)

    if view.connected_contacts == 0 and view.reason == "fraud_alert":
        add("fraud_alerts", view.opened_at)
    if view.connected_contacts == 0 and view.reason == "data_breach":
        add("breach_outreach", view.opened_at)
    carried = view.merged_cases
    for dispute in [*view.disputes, *(d for m in carried for d in m.disputes)]:
        if dispute.status == "open":
            add("disputes", dispute.opened_at or view.opened_at)
    for card in view.cards:
        if card.state == "suspended":
            add("reissue", card.suspended_at or view.opened_at)
    for instruction in view.instructions:
        if instruction.state == "rejected":
            add("processor_failures", instruction.rejected_at or view.opened_at, 1)
    for escalation in view.escalations:
        if escalation.to_department != HOME and escalation.status == "open":
            add(escalation.to_department, escalation.at, min(base, escalation.priority))
    for callback in [*view.callbacks, *(c for m in carried for c in m.callbacks)]:
        if callback.status in ("scheduled", "missed"):
            queue = "callbacks_due" if callback.department == HOME else callback.department
            add(queue, view.opened_at, base, callback.due_at)
    running = [c for c in [*view.clocks, *(k for m in carried for k in m.clocks)] if c.state == "running"]
    if running:
        add(DEADLINES, min(c.started_at for c in running), 1, min(c.due_at for c in running))
    return [*rows.values(), *approvals]


def _waiting_for_approval(view: CaseView, priority: int) -> list[QueueRow]:
    """The `approvals` row: due when the first pending request expires, enqueued when it was asked."""
    pending = [a for a in view.approvals if a.state == "pending"]
    if not pending:
        return []
    return [QueueRow(queue=APPROVALS, case_id=view.case_id, priority=priority, reason=view.reason,
                     due_at=min(a.expires_at for a in pending), enqueued_at=min(a.requested_at for a in pending),
                     amount_at_risk=view.amount_at_risk)]


# --- queries -----------------------------------------------------------------

QUEUE_ORDER = "priority, due_at NULLS LAST, enqueued_at, case_id"


# The standing queues, in the order people expect them; other department queues follow.
KNOWN_QUEUES = ("fraud_alerts", "callbacks_due", "credit_management", "disputes", "reissue", "breach_outreach",
                "processor_failures", DEADLINES, APPROVALS)

_DEPTHS = f"""
WITH waiting AS (
    SELECT queue, count(*) AS depth, min(enqueued_at) AS oldest,
           count(*) FILTER (WHERE due_at < now()) AS overdue
    FROM queue_items WHERE {WAITING} GROUP BY queue
), activity AS (
    SELECT queue, sum(claims) AS claims, sum(resolutions) AS resolutions
    FROM queue_activity WHERE hour > now() - interval '1 hour' GROUP BY queue
), names AS (
    SELECT unnest($1::text[]) AS queue UNION SELECT queue FROM waiting UNION SELECT queue FROM activity
)
SELECT n.queue,
       coalesce(w.depth, 0) AS depth,
       coalesce(greatest(0, floor(extract(epoch FROM now() - w.oldest)))::bigint, 0) AS oldest_age_seconds,
       coalesce(w.overdue, 0) AS overdue,
       coalesce(a.claims, 0)::bigint AS claims_last_hour,
       coalesce(a.resolutions, 0)::bigint AS resolutions_last_hour
FROM names n LEFT JOIN waiting w USING (queue) LEFT JOIN activity a USING (queue)
ORDER BY array_position($1::text[], n.queue) NULLS LAST, n.queue
"""


async def queue_exists(conn: Any, queue: str) -> bool:
    """A standing queue, or a department's that has held a case (by escalation or a callback owed)."""
    if queue in KNOWN_QUEUES or queue in FRAUD_QUEUES:
        return True
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM queue_items WHERE queue = $1)"
        " OR EXISTS (SELECT 1 FROM queue_activity WHERE queue = $1)", queue))


async def queue_depths(conn: Any) -> list[dict[str, Any]]:
    """Per queue: depth, oldest wait, overdue, claims and resolutions this hour (known queues even when empty)."""
    return [dict(r) for r in await conn.fetch(_DEPTHS, list(KNOWN_QUEUES))]


async def queue_page(conn: Any, queue: str, limit: int, after: tuple[Any, ...] | None) -> list[Any]:
    """Items in claim order, `limit` of them after the cursor position."""
    if after is None:
        return list(await conn.fetch(
            f"SELECT * FROM queue_items WHERE queue = $1 AND {WAITING} ORDER BY {QUEUE_ORDER} LIMIT $2", queue,
            limit))
    priority, due_at, enqueued_at, case_id = after
    # Row comparison cannot express NULLS LAST; compare on (priority, due or +infinity, ...).
    return list(await conn.fetch(
        f"SELECT * FROM queue_items WHERE queue = $1 AND {WAITING} AND (priority, coalesce(due_at, 'infinity'),"
        " enqueued_at,"
        " case_id) > ($2, coalesce($3::timestamptz, 'infinity'), $4, $5)"
        f" ORDER BY {QUEUE_ORDER} LIMIT $6", queue, priority, due_at, enqueued_at, case_id, limit))


# Buckets are matched by range, so any whole-hour bucketing of queue_activity fits.
_HOURS = """
SELECT h.hour, coalesce(sum(a.claims), 0)::bigint AS claims, coalesce(sum(a.resolutions), 0)::bigint AS resolutions
FROM generate_series(date_trunc('hour', now()) - interval '7 hours', date_trunc('hour', now()),
                     interval '1 hour') AS h(hour)
LEFT JOIN queue_activity a ON a.hour >= h.hour AND a.hour < h.hour + interval '1 hour'
GROUP BY h.hour ORDER BY h.hour
"""


async def claims_per_hour(conn: Any) -> list[dict[str, Any]]:
    """Claims and resolutions in each of the last eight hours, this one last (empty hours as 0)."""
    return [dict(r) for r in await conn.fetch(_HOURS)]


# --- the projection's writes (projections/case_files.py calls them in its batch) and the claim hold ---


# How long a claim holds its case (services/queue_claims.py): from the hold to the read model's
# dropping the case from the queue. A hold's `until` less this is when it was taken.
CLAIM_HOLD_SECONDS = 600


# What queue_items holds as a read model, for comparing a live projection with a rebuild: the
# claims' marks (`held_until`) are not folded from events.
QUEUE_CONTENTS = "SELECT queue, case_id, priority, reason, due_at, enqueued_at, amount_at_risk FROM queue_items"


async def write_queues(conn: asyncpg.Connection, files: list[CaseFile]) -> None:
    """Put each case in the queues its file now says, and free the hold of a case that waits again."""
    waiting = [f for f in files if f.view.assignee is None and f.view.status == "open"]
    # A released or reopened case is claimable again: drop the hold its last claim left, the one taken
    # before the release. A rebuild or a new version's build folds old releases: a hold taken after them
    # belongs to a claim of today, which the served queue still needs until it drops the case.
    # In one round trip with the batch's queue rows going, and after them (the count is computed before
    # the holds are looked at): a claim locks a queue row, then its hold, so a batch doing the same in
    # the same order never waits for a claim that waits for it.
    await conn.execute(
        "WITH gone AS (DELETE FROM queue_items WHERE case_id = ANY($1::uuid[]) RETURNING 1)"
        " DELETE FROM claim_holds h USING unnest($2::uuid[], $3::timestamptz[]) AS w(case_id, at)"
        " WHERE (SELECT count(*) FROM gone) >= 0 AND h.case_id = w.case_id"
        " AND h.until > now() + interval '60 s' AND h.until - $4 * interval '1 second' <= w.at",
        [f.view.case_id for f in files], [f.view.case_id for f in waiting], [f.view.updated_at for f in waiting],
        CLAIM_HOLD_SECONDS)
    rows = [r for f in files for r in queue_rows(f.view)]
    if rows:  # one statement of arrays, not a row per round trip
        await conn.execute(
            "INSERT INTO queue_items (queue, case_id, priority, reason, due_at, enqueued_at, amount_at_risk)"
            " SELECT * FROM unnest($1::text[], $2::uuid[], $3::smallint[], $4::text[], $5::timestamptz[],"
            " $6::timestamptz[], $7::jsonb[])",
            [r.queue for r in rows], [r.case_id for r in rows], [r.priority for r in rows],
            [r.reason for r in rows], [r.due_at for r in rows], [r.enqueued_at for r in rows],
            [_encode(r.amount_at_risk).decode() if r.amount_at_risk else None for r in rows],
        )


async def write_activity(conn: asyncpg.Connection, activity: Counter[tuple[str, object, str]]) -> None:
    """Add the batch's claims and resolutions to each queue's hourly counts."""
    if activity:
        await conn.executemany(
            "INSERT INTO queue_activity (queue, hour, claims, resolutions) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (queue, hour) DO UPDATE SET claims = queue_activity.claims + excluded.claims,"
            " resolutions = queue_activity.resolutions + excluded.resolutions",
            # In key order: a rebuild in parts adds to the same rows from several transactions at once.
            [(queue, hour, n if kind == "claims" else 0, n if kind == "resolutions" else 0)
             for (queue, hour, kind), n in sorted(activity.items(), key=lambda item: str(item[0]))],
        )


# One statement, one round trip: pick the first waiting case nobody holds (SKIP
# LOCKED), hold it unless another claim's hold is still running, and say which
# happened (no candidate: the queue is empty; a candidate not held: lost race).
# With no candidate it also says whether a waiting case was only skipped for its
# row lock (`only_locked`): a projection batch rewriting that case's queue rows,
# or another claim in its statement. The queue is not empty then: look again.
# For a held case it also brings what the claim needs next, so nothing more is
# read before the assignment is appended: the latest snapshot, the case file row,
# and the stream's events after whichever of the two is older. Its commit does not
# wait for the WAL flush: a hold only matters until the assignment, whose own
# (flushed) commit makes the hold durable too; a crash before that fails the claim.
# The held case's snapshot, case file row and stream after the older of the two, each spelled by its
# table's owner.
_HELD = "(SELECT case_id FROM held)"
# A queue row `q` nobody holds. The hold is marked on the row a claim took (`held_until`, migration 021)
# as well as kept in claim_holds: a claim whose snapshot is older than another claim's committed hold
# does not see that hold, but its row lock does. PostgreSQL re-checks a locked row that changed since
# the snapshot against its newer version, so the claim passes over a case just held and takes the next
# in the same statement, instead of losing the race at the hold and asking again (at the head of a
# queue that 50 agents claim from, one claim in eight did). claim_holds stays the guard for what the
# mark does not reach: the case's rows in other queues, and rows the projection wrote anew.
NOT_HELD = ("(q.held_until IS NULL OR q.held_until <= now()) AND NOT EXISTS ("
            "SELECT 1 FROM claim_holds h WHERE h.case_id = q.case_id AND h.until > now())")
_HELD_SNAPSHOT = latest_snapshot_sql(_HELD)
_HELD_FILE = case_file_row_sql(_HELD)
_HELD_TAIL = stream_after_sql(_HELD, "LEAST(coalesce((SELECT originator_version FROM snapshot), 0),"
                                     " coalesce((SELECT version FROM case_file), 0))")
_HOLD_NEXT = f"""
WITH candidate AS (
    SELECT q.case_id FROM queue_items q
    WHERE q.queue = $1 AND {WAITING} AND {NOT_HELD}
    ORDER BY {QUEUE_ORDER} LIMIT 1 FOR UPDATE OF q SKIP LOCKED
), held AS (
    INSERT INTO claim_holds (case_id, agent_id, until)
    SELECT case_id, $2, now() + $3 * interval '1 second' FROM candidate
    ON CONFLICT (case_id) DO UPDATE SET agent_id = excluded.agent_id, until = excluded.until
    WHERE claim_holds.until <= now()
    RETURNING case_id, until
), marked AS (
    UPDATE queue_items q SET held_until = held.until FROM held WHERE q.queue = $1 AND q.case_id = held.case_id
), snapshot AS (
    {_HELD_SNAPSHOT}
), case_file AS (
    {_HELD_FILE}
), tail AS (
    {_HELD_TAIL}
)
SELECT (SELECT case_id FROM candidate) AS candidate, (SELECT case_id FROM held) AS held,
    CASE WHEN NOT EXISTS (SELECT 1 FROM candidate) THEN EXISTS (
        SELECT 1 FROM queue_items q WHERE q.queue = $1 AND {WAITING} AND {NOT_HELD})
    END AS only_locked,
    {ASYNCHRONOUS_COMMIT} AS asynchronous_commit,
    (SELECT originator_version FROM snapshot) AS snapshot_version, (SELECT state FROM snapshot) AS snapshot,
    (SELECT version FROM case_file) AS version, (SELECT view FROM case_file) AS view,
    (SELECT file FROM case_file) AS file, (SELECT timeline_head FROM case_file) AS timeline_head,
    (SELECT entries FROM case_file) AS entries,
    (SELECT array_agg(originator_version ORDER BY originator_version) FROM tail) AS versions,
    (SELECT array_agg(topic ORDER BY originator_version) FROM tail) AS topics,
    (SELECT array_agg(state ORDER BY originator_version) FROM tail) AS states
"""


async def hold_next(conn: Any, queue: str, agent_id: str, seconds: float) -> asyncpg.Record:
    """Hold the queue's next waiting case for `seconds` for the agent (services/queue_claims.py), in one
    statement with what the claim reads next: `candidate` (None: nothing claimable now; `only_locked` then
    says whether a waiting case was only skipped for a row lock), `held` (None: another claim held it
    first), the snapshot, the case file row (CASE_FILE_COLUMNS) and the stream after them."""
    row: asyncpg.Record = await conn.fetchrow(_HOLD_NEXT, queue, agent_id, seconds)
    return row


async def hold_briefly(conn: Any, case_id: UUID, agent_id: str, seconds: float) -> None:
    """Shorten the agent's hold on a case, and its mark on the queue row, to `seconds` from now (a claim
    that did not assign it; 0: claimable at once).

    The queue rows first, then the hold, as a claim (hold_next) and a projection batch (write_queues)
    take them: in the other order this waited for a batch that was waiting for it (a deadlock)."""
    await conn.execute(
        "WITH unmarked AS (UPDATE queue_items q SET held_until = nullif(now() + $2 * interval '1 second', now())"
        " WHERE q.case_id = $1 AND q.held_until IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM claim_holds h WHERE h.case_id = $1 AND h.agent_id = $3) RETURNING 1)"
        " UPDATE claim_holds SET until = now() + $2 * interval '1 second'"
        " WHERE (SELECT count(*) FROM unmarked) >= 0 AND case_id = $1 AND agent_id = $3",
        case_id, seconds, agent_id)

"""One table of every URL casedesk answers, with the roles each admits.

Case-level access (an agent's departments, the assignee) is checked by the
application service once the case is loaded; this table is the role gate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import msgspec
from aiohttp import web

from casedesk.projections.approvals import ApprovalsAnswer
from casedesk.projections.timeline.history import HistoryAnswer
from casedesk.projections.timeline.shapes import CaseView
from casedesk.services.access_log import AccessLogPage
from casedesk.services.breach_intake import AffectedCardLine
from casedesk.services.call_verification import CallVerificationAnswer
from casedesk.services.case_clocks import ClocksAnswer
from casedesk.services.effects import webhook_subscriptions as subs
from casedesk.services.http import answers as ans
from casedesk.services.http import approval_handlers as approvals
from casedesk.services.http import audit_handlers as audit
from casedesk.services.http import breach_handlers as breaches
from casedesk.services.http import call_verification_handlers as calls
from casedesk.services.http import case_handlers as cmd
from casedesk.services.http import case_queries as q
from casedesk.services.http import case_requests as rq
from casedesk.services.http import case_stream as live
from casedesk.services.http import customer_handlers as customers
from casedesk.services.http import dashboard, health, lookup_handlers, metrics, openapi, replay_page
from casedesk.services.http import merchant_handlers as merchants
from casedesk.services.http import queue_handlers as queues
from casedesk.services.http import webhook_handlers as webhooks
from casedesk.services.http.answers import Anything, CommandAnswer, Health, TimelineAnswer
from casedesk.services.http.middleware import ALLOWED_ROLES
from casedesk.services.presence import PresenceAnswer
from casedesk.services.privacy.customer_erasure import Erasure
from casedesk.services.store.audit_chain import ChainCheck

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Roles = tuple[str, ...] | None
PUBLIC: Roles = None
AGENTS: Roles = ("agent", "supervisor", "admin")
READERS: Roles = ("agent", "supervisor", "auditor", "admin")
SUPERVISORS: Roles = ("supervisor", "admin")
# History: CONTRACT.md's cases table names "auditor, supervisor or admin".
HISTORY_READERS: Roles = ("auditor", "supervisor", "admin")
# The role table's "verify" is the auditor's; the access log (who read personal data, supervisors
# among them) is read by those who audit, not by those whose reads it records.
AUDITORS: Roles = ("auditor", "admin")
ADMINS: Roles = ("admin",)
# The phone system's service token: it may call the call verification and nothing else, and no one else may.
IVR: Roles = ("ivr",)

CASE = "/v1/cases/{case_id}"
WEBHOOK = "/v1/webhooks/{webhook_id}"

HTML = "text/html"  # an answer that is a page, not JSON
TEXT = "text/plain"  # an answer that is plain text (Prometheus' exposition format)
SSE = "text/event-stream"  # server-sent events (the dashboard's; a case's presence and new events)


class Route(NamedTuple):
    """One URL: who may call it, what it takes and what it answers."""

    method: str
    path: str
    handler: Handler
    roles: Roles
    summary: str
    body: type | None = None
    answer: Any = CommandAnswer
    status: int = 200
    query: tuple[str, ...] = ()
    also: tuple[tuple[int, Any], ...] = ()  # other answers than `status` and problems: (status, answer or None)
    upload: tuple[str, ...] = ()  # media types of a body read as a stream, not as one JSON document
    line: type | None = None  # what each line of such a body holds
    rate_limited: bool = False  # may answer 429 with Retry-After


ROUTES: list[Route] = [
    Route("GET", "/healthz", health.healthz, PUBLIC, "Liveness", answer=Health),
    Route("GET", "/readyz", health.readyz, PUBLIC,
          "Readiness: database reachable and projections caught up (503 when not)", answer=Health,
          also=((503, Health),)),
    Route("GET", "/metrics", metrics.serve_metrics, PUBLIC, "Prometheus text", answer=TEXT),
    Route("POST", "/v1/cases", cmd.open_case, AGENTS,
          "Open a case (with alert_id: one case per fraud-engine alert; 200 with it when already open)",
          rq.OpenCase, status=201, also=((200, CommandAnswer),)),
    Route("GET", CASE, q.get_case, READERS, "The case view with its handoff summary", answer=CaseView,
          query=("min_position",)),
    Route("GET", f"{CASE}/contact-details", q.get_contact_details, AGENTS,
          "The unmasked follow-up phone (every read is in the access log)", answer=ans.ContactDetailsAnswer),
    Route("GET", f"{CASE}/timeline", q.get_timeline, READERS, "The handoff timeline",
          answer=TimelineAnswer, query=("min_position",)),
    Route("POST", f"{CASE}/presence", live.post_presence, READERS,
          "A heartbeat: the caller has the case open (every 15 s at most; gone 30 s after the last)",
          live.Heartbeat, answer=None, status=204),
    Route("GET", f"{CASE}/presence", live.get_presence, READERS, "Who has the case open now",
          answer=PresenceAnswer),
    Route("GET", f"{CASE}/stream", live.case_stream, READERS,
          "Server-sent events: who is on the case (presence) and each new event of it (case-event);"
          " token also as ?access_token=", answer=SSE, query=("access_token",)),
    Route("GET", f"{CASE}/history", audit.get_history, HISTORY_READERS,
          "Every stored event to a time (as_of) or version, with the case as it stood then (access logged)",
          answer=HistoryAnswer, query=("as_of", "version")),
    Route("GET", f"{CASE}/verify", audit.verify_case, AUDITORS,
          "Recompute the case's hash chain and name the first tampered version", answer=ChainCheck),
    Route("GET", f"{CASE}/access-log", audit.get_access_log, AUDITORS,
          "Who read the case's history or personal data, and why, newest first", answer=AccessLogPage,
          query=("limit", "cursor")),
    Route("POST", f"{CASE}/contacts", cmd.start_contact, AGENTS, "Start a contact", rq.StartContact,
          status=201),
    Route("POST", f"{CASE}/contacts/{{contact_id}}/end", cmd.end_contact, AGENTS, "End a contact",
          rq.EndContact),
    Route("POST", f"{CASE}/identity-checks", cmd.check_identity, AGENTS, "Record an identity check",
          rq.CheckIdentity),
    Route("POST", f"{CASE}/identity-unlock", cmd.unlock_identity, SUPERVISORS,
          "Unlock identity checks", rq.UnlockIdentity),
    Route("POST", f"{CASE}/transactions/reviewed", cmd.review_transactions, AGENTS,
          "Record transactions reviewed with the customer", rq.ReviewTransactions),
    Route("POST", f"{CASE}/disputes", cmd.dispute_charge, AGENTS, "Dispute a charge",
          rq.DisputeCharge, status=201),
    Route("POST", f"{CASE}/disputes/{{dispute_id}}/resolve", cmd.resolve_dispute, AGENTS,
          "Resolve a dispute", rq.ResolveDispute),
    Route("POST", f"{CASE}/disputes/{{dispute_id}}/stages", cmd.record_dispute_stage, AGENTS,
          "Record a step of the card network's dispute lifecycle", rq.RecordDisputeStage),
    Route("GET", f"{CASE}/clocks", q.get_clocks, READERS,
          "The case's deadline clocks as they stand now", answer=ClocksAnswer, query=("min_position",)),
    Route("POST", f"{CASE}/customer-notices", cmd.notify_customer, AGENTS,
          "Record what the customer was told, and how", rq.NotifyCustomer),
    Route("POST", f"{CASE}/liability-waivers", cmd.waive_liability, AGENTS,
          "Waive the customer's liability (202 with approval_id above the approval limit)", rq.WaiveLiability,
          also=((202, CommandAnswer),)),
    Route("POST", f"{CASE}/provisional-credits", cmd.grant_provisional_credit, AGENTS,
          "Credit the customer for a dispute while it is investigated (202 with approval_id above the approval"
          " limit)", rq.GrantProvisionalCredit, also=((202, CommandAnswer),)),
    Route("POST", f"{CASE}/provisional-credits/{{credit_id}}/reverse", cmd.reverse_provisional_credit, AGENTS,
          "Take a provisional credit back, saying why", rq.ReverseProvisionalCredit),
    Route("POST", f"{CASE}/payment-stops", cmd.stop_payments, AGENTS, "Stop payments",
          rq.StopPayments),
    Route("POST", f"{CASE}/cards/{{card_id}}/suspend", cmd.suspend_card, AGENTS, "Suspend a card",
          rq.SuspendCard),
    Route("POST", f"{CASE}/cards/{{card_id}}/reissue", cmd.reissue_card, AGENTS,
          "Issue a replacement card", rq.ReissueCard),
    Route("POST", f"{CASE}/cards/{{card_id}}/destroyed", cmd.record_card_destroyed, AGENTS,
          "Record the old card destroyed at a branch", rq.RecordCardDestroyed),
    Route("POST", f"{CASE}/online-access/suspend", cmd.suspend_online_access, AGENTS,
          "Suspend online account access", rq.SuspendOnlineAccess),
    Route("POST", f"{CASE}/compromise", cmd.record_compromise, AGENTS,
          "Record where the card data probably leaked", rq.RecordCompromise),
    Route("POST", f"{CASE}/contact-details", cmd.record_contact_details, AGENTS,
          "Record a daytime phone for follow-up", rq.RecordContactDetails),
    Route("POST", f"{CASE}/notes", cmd.add_note, AGENTS, "Add a handoff note", rq.AddNote,
          status=201),
    Route("POST", f"{CASE}/escalations", cmd.escalate, AGENTS, "Escalate to a department",
          rq.Escalate),
    Route("POST", f"{CASE}/escalations/{{department}}/conclude", cmd.conclude_escalation, AGENTS,
          "The escalated department's decision (its agents or a supervisor): the case leaves that department's"
          " queue and the decision shows in handoff.decisions; 409 no-open-escalation,"
          " not-the-escalated-department", rq.ConcludeEscalation),
    Route("POST", f"{CASE}/callbacks", cmd.schedule_callback, AGENTS, "Promise a callback",
          rq.ScheduleCallback, status=201),
    Route("POST", f"{CASE}/callbacks/{{callback_id}}/complete", cmd.complete_callback, AGENTS,
          "Record a callback made", rq.CloseCallback),
    Route("POST", f"{CASE}/callbacks/{{callback_id}}/missed", cmd.miss_callback, AGENTS,
          "Record a callback missed", rq.CloseCallback),
    Route("POST", f"{CASE}/callbacks/{{callback_id}}/reschedule", cmd.reschedule_callback, AGENTS,
          "Move a missed (or not yet due) callback to a new time; it is owed again", rq.RescheduleCallback),
    Route("POST", f"{CASE}/callbacks/{{callback_id}}/waive", cmd.waive_callback, AGENTS,
          "Release the issuer from a missed (or scheduled) callback, saying why; until rescheduled or waived"
          " a missed callback stays in handoff.pending and resolve answers 409 callback-missed",
          rq.WaiveCallback),
    Route("POST", f"{CASE}/release", cmd.release, AGENTS, "Release the case", rq.Release),
    Route("POST", f"{CASE}/resolve", cmd.resolve_case, AGENTS, "Resolve the case", rq.ResolveCase),
    Route("POST", f"{CASE}/reopen", cmd.reopen_case, AGENTS, "Reopen the case", rq.ReopenCase),
    Route("POST", f"{CASE}/merge", cmd.merge_case, AGENTS,
          "Merge this case (a duplicate) into another case of the customer", rq.MergeCase,
          answer=ans.MergeAnswer),
    Route("POST", f"{CASE}/unmerge", cmd.unmerge_case, AGENTS,
          "Undo the merge of a case into this one", rq.UnmergeCase, answer=ans.UnmergeAnswer),
    Route("GET", "/v1/queues", queues.list_queues, READERS, "Queues with depth, oldest wait, overdue",
          answer=ans.QueuesAnswer, query=("min_position",)),
    Route("GET", "/v1/queues/{queue}/items", queues.list_items, READERS, "A queue's items in claim order",
          answer=ans.QueueItemsAnswer, query=("limit", "cursor", "min_position")),
    Route("POST", "/v1/queues/{queue}/claim", queues.claim, AGENTS,
          "Take the next case of a queue (204 when empty)", answer=ans.ClaimAnswer, also=((204, None),)),
    Route("GET", "/v1/approvals", approvals.get_approvals, SUPERVISORS,
          "Waivers and credits above the approval limit: pending, approved, rejected or expired",
          answer=ApprovalsAnswer, query=("state", "limit", "min_position")),
    Route("POST", "/v1/approvals/{approval_id}/approve", approvals.grant_approval, SUPERVISORS,
          "Approve a request of another person: the waiver or credit is granted", approvals.DecideApproval),
    Route("POST", "/v1/approvals/{approval_id}/reject", approvals.reject_approval, SUPERVISORS,
          "Reject a request: nothing is given", approvals.DecideApproval),
    Route("GET", "/v1/lookup", lookup_handlers.lookup, AGENTS,
          "Find a caller's customer record and recent outbound calls", answer=ans.LookupAnswer,
          query=("phone", "name", "last4", "min_position")),
    Route("POST", "/v1/call-verifications", calls.verify_call, IVR,
          "Did the issuer call this number? (the IVR asks for a customer returning a call)", calls.VerifyCall,
          answer=CallVerificationAnswer, rate_limited=True),
    Route("POST", "/v1/breaches", breaches.record_breach, SUPERVISORS,
          "Record a merchant's data breach: exposure window, data exposed, who pays for reissues",
          breaches.RecordBreach, answer=breaches.BreachAnswer, status=201),
    Route("GET", "/v1/breaches/{breach_id}", breaches.get_breach, SUPERVISORS, "A breach record",
          answer=breaches.BreachAnswer),
    Route("POST", "/v1/breaches/{breach_id}/affected-cards", breaches.take_affected_cards, SUPERVISORS,
          "Take in the breach's list of affected cards (NDJSON or CSV, streamed): one outreach case per card",
          answer=breaches.IntakeAnswer, status=202, upload=tuple(breaches.LIST_TYPES),
          line=AffectedCardLine),
    Route("GET", "/v1/merchants/flagged", merchants.list_flagged, READERS,
          "Flagged merchant descriptors with their dispute counts", answer=ans.FlaggedMerchantsAnswer,
          query=("min_position",)),
    Route("POST", "/v1/merchants/flags", merchants.flag_merchant, SUPERVISORS,
          "Flag a merchant descriptor known for fraud billing", merchants.FlagMerchant, answer=ans.MerchantFlagAnswer,
          status=201),
    Route("GET", "/v1/dashboard", dashboard.get_dashboard, ("supervisor", "auditor", "admin"),
          "Queues, agents holding cases, claims and resolutions per hour", answer=ans.DashboardAnswer),
    Route("GET", "/v1/dashboard/stream", dashboard.dashboard_stream, ("supervisor", "auditor", "admin"),
          "Server-sent events with the dashboard on every change (token also as ?access_token=)",
          answer=SSE, query=("access_token",)),
    Route("GET", "/dashboard", dashboard.dashboard_page, PUBLIC, "The supervisor dashboard page",
          answer=HTML),
    Route("GET", "/cases/{case_id}", replay_page.replay_page, PUBLIC, "The case replay page", answer=HTML),
    Route("GET", "/desk/cases/{case_id}", live.desk_case_page, PUBLIC, "The agent's live case page", answer=HTML),
    Route("POST", "/v1/customers/{customer_id}/erasure", customers.erase_customer_data, ADMINS,
          "Erase a customer's personal data on all their cases (crypto-shredding)", customers.EraseCustomer,
          answer=Erasure),
    Route("POST", "/v1/webhooks", webhooks.create_webhook, ADMINS,
          "Subscribe a receiver to case events (Standard Webhooks); the signing secret is shown only here",
          webhooks.CreateWebhook, answer=webhooks.CreatedWebhook, status=201),
    Route("GET", "/v1/webhooks", webhooks.list_webhooks, ADMINS,
          "Every subscription with its state and position (never its secret)", answer=webhooks.WebhookList),
    Route("POST", f"{WEBHOOK}/pause", webhooks.pause_webhook, ADMINS, "Stop delivering (the position is kept)",
          answer=subs.WebhookSubscription),
    Route("POST", f"{WEBHOOK}/resume", webhooks.resume_webhook, ADMINS,
          "Deliver again from the position, with a fresh retry window", answer=subs.WebhookSubscription),
    Route("DELETE", WEBHOOK, webhooks.delete_webhook, ADMINS, "Delete a subscription and its delivery log",
          answer=None, status=204),
    Route("GET", f"{WEBHOOK}/deliveries", webhooks.list_deliveries, ADMINS,
          "Recent delivery attempts, newest first", answer=webhooks.DeliveriesPage, query=("limit", "cursor")),
    Route("POST", f"{WEBHOOK}/replay", webhooks.replay_webhook, ADMINS,
          "Deliver every event again from a position of the log", webhooks.ReplayWebhook,
          answer=webhooks.ReplayAccepted, status=202),
    Route("GET", "/v1/openapi.json", openapi.serve, PUBLIC, "This document", answer=Anything),
]


# aiohttp tries the routes under one prefix (every case route is under /v1/cases) one by one, in the
# order they were added: the calls a desk makes most are added first. A note, added 27th, took 24 us to
# route (of ~700 us a request), first it takes 2. The document keeps ROUTES' order, and no two case
# routes match the same path, so the order changes nothing else.
BUSIEST_FIRST = (f"{CASE}/notes", CASE, f"{CASE}/timeline", f"{CASE}/contacts", f"{CASE}/contacts/{{contact_id}}/end",
                 "/v1/queues/{queue}/claim", f"{CASE}/identity-checks", f"{CASE}/callbacks",
                 f"{CASE}/cards/{{card_id}}/suspend", f"{CASE}/release")


def _by_traffic(routes: list[Route]) -> list[Route]:
    rank = {path: n for n, path in enumerate(BUSIEST_FIRST)}
    return sorted(routes, key=lambda r: rank.get(r.path, len(rank)))  # stable: the rest keep their order


def add_routes(app: web.Application) -> None:
    for r in _by_traffic(ROUTES):
        route = app.router.add_route(r.method, r.path, r.handler)
        app[ALLOWED_ROLES][(r.method, route.resource.canonical)] = r.roles
    app[openapi.DOCUMENT] = msgspec.json.encode(openapi.build_document(ROUTES))

"""What each operation of the OpenAPI document says to an integrator: its tag and description.

Kept apart from the route table so the table stays one line of facts per URL.
A description says what the operation does, the rules it enforces and the
names (the last part of a 409 problem's `type`) a client can branch on.
`tests/contract` fails for an operation that has none.
"""

from __future__ import annotations

CASE = "/v1/cases/{case_id}"
_IDENTITY = " Needs an identity check passed in the contact named (`identity-not-verified`)."
_OPEN = " Refused on a resolved case (`case-resolved`)."
_FOUR_EYES = (" Above `CASEDESK_APPROVAL_LIMIT` for its currency (a waiver without an amount: the disputed"
              " amount) it is not granted: 202 with `approval_id` (ApprovalRequested); it waits in queue"
              " `approvals` for a supervisor other than the requester (POST /v1/approvals/{approval_id}/approve),"
              " 72 h at most.")
_DECIDE = (" Unknown approval: 404. Decided already: 409 `approval-already-decided`. More than 72 h after the"
           " request: 409 `approval-expired`, and the expiry is recorded (ApprovalExpired).")

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "Liveness: the process answers. No database is touched.",
    ("GET", "/readyz"): "Readiness: the database answers and every projection is within `CASEDESK_READY_MAX_LAG`"
                        " events of the log (503 with the reason otherwise).",
    ("GET", "/metrics"): "Prometheus text exposition: request counts and latencies, projection lag, pool use.",
    ("POST", "/v1/cases"): "Open a fraud case for a customer's cards; with `contact`, the contact starts at once."
                           " Refused: no card (`case-needs-a-card`), a card twice (`duplicate-card`), a family card"
                           " naming itself or a primary naming a primary (`invalid-card-link`), a full card number"
                           " in any field (422).",
    ("GET", CASE): "The case view the next agent reads first: status, masked customer, cards and their states,"
                   " disputes, payment stops, callbacks, assignee, pinned note, identity and the `handoff` summary"
                   " derived from the events. `min_position` waits for the projection (read your writes)."
                   " `merged_into` names the case this one was merged into (it then takes no command);"
                   " `merged_cases` the cases merged into this one, with what it carries of them.",
    ("GET", f"{CASE}/contact-details"): "The unmasked follow-up phone, for the agent who must dial it. Every read is"
                                         " written to the access log with the `X-Access-Reason` header.",
    ("GET", f"{CASE}/timeline"): "Every contact and action in order, each as a sentence for a person, the pinned"
                                 " note first. While cases are merged into this one, their entries are"
                                 " interleaved in time order and every entry names the case it came from"
                                 " (`from_case_id`).",
    ("GET", f"{CASE}/history"): (
        "Auditors and supervisors: every stored event up to a time (`as_of`) or a `version` (not both), each with"
        " actor, contact, time, masked payload and hash, and the case view as it stood. The read is written to the"
        " access log."),
    ("GET", f"{CASE}/verify"): "Auditors: recompute the case's hash chain; name the first version that does not"
                               " chain.",
    ("GET", f"{CASE}/access-log"): "Auditors: who read the case's history or personal data, when and why, newest"
                                   " first. Not supervisors: their own reads are among those it records.",
    ("POST", f"{CASE}/presence"): "A heartbeat from an agent's client for the case it has open: `viewing` or"
                                  " `editing`, every 15 s at most; 30 s (`CASEDESK_PRESENCE_EXPIRY`) after the last"
                                  " one the agent is no longer on the case. Presence is not a case event: it is in no"
                                  " history, timeline or hash chain, takes no If-Match and never holds a command."
                                  " Whoever may read the case may send it (404 for a case the caller may not see).",
    ("GET", f"{CASE}/presence"): "Who has the case open now: each agent with their name, activity and since when"
                                 " (oldest first), across every API process.",
    ("GET", f"{CASE}/stream"): "Server-sent events for an open case view: `presence` (the same answer as GET"
                               " .../presence) at once and whenever someone arrives, changes activity or leaves;"
                               " `case-event` (`case_id`, `type`, `version`, `position` and the `entry` as the"
                               " timeline shows it, masked alike) for each event appended from then on, within a"
                               " second. A browser's EventSource cannot send headers, so the token may come as"
                               " `access_token`. A client far behind is disconnected and reads afresh on reconnect.",
    ("POST", f"{CASE}/contacts"): "Start a call, chat, branch visit or email. One contact is open at a time"
                                  " (`contact-already-open`); an outbound call needs the dialled number"
                                  " (`dialled-number-needed`) and is recorded for returning-caller lookup." + _OPEN,
    ("POST", f"{CASE}/contacts/{{contact_id}}/end"): "End the open contact with its outcome and a summary"
                                                     " (`contact-already-ended`, `unknown-contact`).",
    ("POST", f"{CASE}/identity-checks"): "Record an identity check in the open contact; three failures in 24 h lock"
                                         " further checks (`identity-locked`). A callback check is valid only on a"
                                         " call to the registered number"
                                         " (`callback-verification-needs-registered-number`).",
    ("POST", f"{CASE}/identity-unlock"): "Supervisors: lift an identity lock (`identity-not-locked`).",
    ("POST", f"{CASE}/transactions/reviewed"): "Record the customer's answer for each transaction read out."
                                               + _IDENTITY + " (`no-transactions`, `duplicate-transaction`)",
    ("POST", f"{CASE}/disputes"): "Dispute a charge; one dispute per transaction (`duplicate-dispute`)."
                                  " `transaction_date` starts the network's filing clock (not in the future:"
                                  " `transaction-date-in-future`); `foreign` or `point_of_sale` give a debit"
                                  " dispute 90 days to investigate under Regulation E." + _IDENTITY,
    ("POST", f"{CASE}/disputes/{{dispute_id}}/resolve"): "Resolve a dispute as upheld, rejected or withdrawn"
                                                         " (`dispute-already-resolved`, `unknown-dispute`).",
    ("POST", f"{CASE}/disputes/{{dispute_id}}/stages"): "Record a step of the card network's dispute lifecycle,"
                                                        " with the network's reference: filed, representment,"
                                                        " pre_arbitration, arbitration; won, lost or withdrawn"
                                                        " end it and resolve the dispute (upheld, rejected,"
                                                        " withdrawn). A representment starts the network's"
                                                        " pre-arbitration clock (`dispute-stage-out-of-order`,"
                                                        " `dispute-already-resolved`, `unknown-dispute`).",
    ("GET", f"{CASE}/clocks"): "The case's deadline clocks as they stand now: the card network's filing limit,"
                               " promised callbacks and, under policy `us`, Regulation E (debit) or Regulation Z"
                               " (credit). Each names its rule and source, what started it (`started_by_event`),"
                               " `due_at`, its calendar and its state; a running clock past `due_at` is"
                               " `breached`. A promised callback is `paused` (since `paused_at`) while"
                               " identity checks are locked, and runs again at the unlock, due later by the"
                               " time it waited; regulatory and network clocks never pause. The case view"
                               " carries the same `clocks`.",
    ("POST", f"{CASE}/customer-notices"): "Record what the customer was told by letter, email or call; an"
                                          " `investigation_result` meets Regulation E's results clock, any"
                                          " notice Regulation Z's acknowledgment (`notice-needs-summary`).",
    ("POST", f"{CASE}/liability-waivers"): "Tell the customer they owe nothing, for one dispute or the whole case,"
                                           " with the `amount` waived and its `finality` (`pending` while the"
                                           " dispute runs, the default, or `final`); a pending waiver may be"
                                           " made final once (`liability-already-waived`)." + _FOUR_EYES
                                           + _IDENTITY,
    ("POST", f"{CASE}/provisional-credits"): "Credit the customer for an open dispute while it is investigated;"
                                             " answers the `credit_id`. Under policy `us` it meets Regulation E's"
                                             " provisional-credit clock. Refused: a dispute not on the case"
                                             " (`unknown-dispute`) or resolved (`dispute-already-resolved`),"
                                             " another currency than the dispute's (`credit-currency-mismatch`),"
                                             " more than the disputed amount less the credits not reversed"
                                             " (`credit-above-disputed-amount`), a `contact_id` not on the case"
                                             " (`unknown-contact`)." + _FOUR_EYES + _OPEN,
    ("POST", f"{CASE}/provisional-credits/{{credit_id}}/reverse"): "Take a provisional credit back, saying why; it"
                                                                   " no longer counts against the disputed amount"
                                                                   " (`unknown-credit`, `credit-already-reversed`,"
                                                                   " `reversal-needs-reason`)." + _OPEN,
    ("POST", f"{CASE}/payment-stops"): "Stop payments to one merchant, all overseas, or all"
                                       " (`payment-stop-needs-merchant`, `duplicate-payment-stop`)." + _IDENTITY,
    ("POST", f"{CASE}/cards/{{card_id}}/suspend"): "Suspend a card, with `include_linked` every card linked to it"
                                                   " (primary and family). Protective: no identity check needed"
                                                   " (`card-already-suspended`, `unknown-card`).",
    ("POST", f"{CASE}/cards/{{card_id}}/reissue"): "Issue a replacement for a suspended card (`card-not-suspended`):"
                                                   " delivery, expedite and who pays the fee (a breach's merchant,"
                                                   " never the customer: `breach-reissue-not-charged-to-customer`)."
                                                   + _IDENTITY,
    ("POST", f"{CASE}/cards/{{card_id}}/destroyed"): "Record the replaced card destroyed at a branch against a"
                                                     " certificate (`card-not-replaced`, `card-already-destroyed`).",
    ("POST", f"{CASE}/online-access/suspend"): "Suspend the cardholder's online account access"
                                               " (`online-access-already-suspended`).",
    ("POST", f"{CASE}/compromise"): "Record where the card data probably leaked: a merchant site, a breach,"
                                    " skimming or unknown.",
    ("POST", f"{CASE}/contact-details"): "Record a daytime phone for follow-up (masked in views)." + _IDENTITY,
    ("POST", f"{CASE}/notes"): "Add a handoff note, optionally for a department or pinned; card numbers in the text"
                               " are redacted (`empty-note`).",
    ("POST", f"{CASE}/escalations"): "Escalate to a department's queue with a reason and priority 1 (highest) to 5"
                                     " (`invalid-priority`, `department-needed`).",
    ("POST", f"{CASE}/callbacks"): "Promise the customer a callback at a time (`callback-due-in-the-past`).",
    ("POST", f"{CASE}/callbacks/{{callback_id}}/complete"): "Record the promised callback made"
                                                            " (`callback-already-closed`, `unknown-callback`).",
    ("POST", f"{CASE}/callbacks/{{callback_id}}/missed"): "Record the promised callback missed"
                                                          " (`callback-already-closed`, `unknown-callback`).",
    ("POST", f"{CASE}/escalations/{{department}}/conclude"): "The escalated department records its decision: the"
                                                             " case leaves that department's queue and the decision"
                                                             " joins the handoff. By an agent of that department or"
                                                             " a supervisor (`not-the-escalated-department`,"
                                                             " `no-open-escalation`).",
    ("POST", f"{CASE}/callbacks/{{callback_id}}/reschedule"): "Promise a missed callback again, at a new time: it"
                                                              " stays owed until made or waived"
                                                              " (`callback-due-in-the-past`).",
    ("POST", f"{CASE}/callbacks/{{callback_id}}/waive"): "Let a missed callback go, with the reason: the case can"
                                                         " then be resolved (`waiver-needs-reason`,"
                                                         " `callback-already-closed`).",
    ("POST", f"{CASE}/release"): "Give the case back to its queues (`not-assigned`, `held-by-another-agent`).",
    ("POST", f"{CASE}/resolve"): "Resolve the case. Refused while a contact is open (`contact-still-open`), a"
                                 " dispute is open (`dispute-still-open`) or a callback is pending"
                                 " (`callback-pending`) or missed and not rescheduled or waived (`callback-missed`).",
    ("POST", f"{CASE}/reopen"): "Reopen a resolved case (`case-not-resolved`).",
    ("POST", f"{CASE}/merge"): "Merge this case, a duplicate, into `into_case_id` (the survivor), saying why. Both"
                               " streams record it (`CaseMergedInto` here, `CaseMerged` there) and neither is"
                               " rewritten: the survivor's view lists it in `merged_cases` with what it still owes"
                               " (open disputes, callbacks, running clocks), its timeline interleaves both cases'"
                               " entries (`from_case_id`), and this case leaves the queues and lookup; every command"
                               " on it is then 409 `case-merged` with `merged_into`, and its reads say"
                               " `merged_into`. Refused: into itself (`merge-into-itself`), into a case merged away"
                               " (`merge-into-merged-case`), a case already merged elsewhere (`case-merged`), back"
                               " into a case merged into this one (`merge-cycle`), again into the case already"
                               " holding it (`merge-already-holds-case`), a case that holds merged cases itself"
                               " (`merge-of-case-holding-merges`), into a resolved case (`case-resolved`), without a"
                               " reason (`merge-needs-reason`), cases of two customers (`merge-across-customers`)"
                               " unless a supervisor sends `different_customer_ok` (an agent sending it: 403)."
                               " `into_case_id` unknown or hidden from the caller: 422. `If-Match` is this case's"
                               " version.",
    ("POST", f"{CASE}/unmerge"): "Undo the merge of `case_id` into this case (the survivor), saying why:"
                                 " `CaseUnmerged` on both. Both then read as if never merged, plus what was done"
                                 " on this case meanwhile (it stays here) and the merge and unmerge entries."
                                 " Refused: `case_id` not merged into this case (`unmerge-not-merged-here`), no"
                                 " reason (`unmerge-needs-reason`); `case_id` unknown or hidden: 422.",
    ("GET", "/v1/queues"): "Every work queue with its depth, oldest wait and items past due.",
    ("GET", "/v1/queues/{queue}/items"): "A queue's items in claim order: priority 1 first, then earliest due,"
                                         " then earliest enqueued. Paged with `limit` and `cursor`.",
    ("POST", "/v1/queues/{queue}/claim"): "Take the next case of a queue: it is assigned to the caller and answered"
                                          " with its view and timeline; two agents never get the same case. 204 when"
                                          " the queue is empty.",
    ("GET", "/v1/approvals"): "Supervisors: liability waivers and provisional credits above the approval limit,"
                              " each with what was asked, by whom, until when (`expires_at`, 72 h) and what"
                              " became of it; `state` filters (pending, approved, rejected, expired). Pending"
                              " ones first, the first to expire first; then the latest decided.",
    ("POST", "/v1/approvals/{approval_id}/approve"): "Supervisors: approve another person's request: ApprovalGranted"
                                                     " and the waiver or credit itself, naming `approved_by` and"
                                                     " `requested_by`. The requester may not approve their own"
                                                     " (409 `same-person`). The request's rules run again on the"
                                                     " case as it is now: one that no longer holds is 409 with"
                                                     " that rule's name (`dispute-already-resolved`,"
                                                     " `credit-above-disputed-amount`, `liability-already-waived`,"
                                                     " `case-resolved`) and stays pending for a rejection."
                                                     + _DECIDE,
    ("POST", "/v1/approvals/{approval_id}/reject"): "Supervisors: reject a request (ApprovalRejected, with the note):"
                                                    " nothing is given. The requester may so withdraw their own."
                                                    + _DECIDE,
    ("GET", "/v1/lookup"): (
        "Find a caller: by `phone`, `name` + `phone` or `name` + `last4`. Answers masked customers with open cases,"
        " and outbound calls recently made to that number. An agent is shown only the cases it may see (its"
        " departments', or assigned to it); a call about any other case is still listed (when, which department,"
        " who) with `case_id` and `purpose` null."),
    ("POST", "/v1/call-verifications"): "Role `ivr` only (and `ivr` may call nothing else): did the issuer call"
                                        " this `phone` in the last 14 days, when, from which department, for what"
                                        " kind of purpose, and does the six-digit `code` the agent gave match"
                                        " (null without a code). A number never called gets the same shape."
                                        " 5 checks per number per hour, then 429 with `Retry-After`; after 5 wrong"
                                        " codes for a number none matches for an hour. Each check is recorded on"
                                        " the case (CallVerified) for the agent who takes the returning call.",
    ("POST", "/v1/breaches"): "Supervisors: record a merchant's data breach: exposure window, data exposed, who"
                              " pays for reissues (`invalid-exposure-window`, `data-exposed-needed`).",
    ("GET", "/v1/breaches/{breach_id}"): "Supervisors: a breach record.",
    ("POST", "/v1/breaches/{breach_id}/affected-cards"): "Supervisors: the breach's list of affected cards, NDJSON or"
                                                         " CSV, read as a stream: one outreach case per card,"
                                                         " idempotent; bad lines are listed, never stop good ones.",
    ("GET", "/v1/merchants/flagged"): "Flagged merchant descriptors with their dispute counts across cases.",
    ("POST", "/v1/merchants/flags"): "Supervisors: flag a merchant descriptor known for fraud billing; new cases"
                                     " involving it rank higher (`merchant-needed`).",
    ("GET", "/v1/dashboard"): "Queues, agents holding cases, claims and resolutions per hour.",
    ("GET", "/v1/dashboard/stream"): "Server-sent events with the dashboard on every change. A browser's"
                                     " EventSource cannot send headers, so the token may come as `access_token`.",
    ("GET", "/dashboard"): "The supervisors' live dashboard page (HTML). It takes the token from its URL fragment.",
    ("GET", "/cases/{case_id}"): "The auditors' replay page of one case (HTML), stepping event by event.",
    ("GET", "/desk/cases/{case_id}"): "The agents' live case page (HTML): the case view, handoff and timeline kept"
                                      " live by the case stream, who else is on the case, and the everyday actions,"
                                      " each sent with If-Match. It takes the token from its URL fragment.",
    ("GET", "/v1/openapi.json"): "This document.",
    ("POST", "/v1/webhooks"): "Admins: subscribe another system to case events (`[\"*\"]`: all). The answer shows the"
                              " `whsec_` signing secret, the only time it is shown. Refused (422): a URL that is not"
                              " http(s), resolves to a private address (unless CASEDESK_WEBHOOK_ALLOW_PRIVATE), or"
                              " takes no connection. A new subscription starts at the end of the log.",
    ("POST", "/v1/customers/{customer_id}/erasure"): "Admins: erase the customer's personal data (names, phones,"
                                                     " contact summaries, note texts) on all their cases by"
                                                     " destroying their data key; `CustomerDataErased` is recorded on"
                                                     " each case. Reads then show \"[erased]\"; decisions, amounts,"
                                                     " last4, times and actors remain and the hash chain verifies."
                                                     " Idempotent; 404 for a customer never seen.",
    ("GET", "/v1/webhooks"): "Admins: every subscription with its state, position and last delivery (never a secret).",
    ("POST", "/v1/webhooks/{webhook_id}/pause"): "Admins: stop sending to a subscription; its position is kept.",
    ("POST", "/v1/webhooks/{webhook_id}/resume"): "Admins: send again from the kept position (also a failing or"
                                                  " disabled subscription).",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "Admins: end a subscription.",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "Admins: recent delivery attempts, newest first, paged.",
    ("POST", "/v1/webhooks/{webhook_id}/replay"): "Admins: send again every event from `from_position` on, in log"
                                                  " order per case.",
}


def tag_of(path: str) -> str:
    """The resource an operation belongs to, for grouping in generated clients and docs."""
    if not path.startswith("/v1/"):
        return "pages" if path in ("/dashboard", "/cases/{case_id}", "/desk/cases/{case_id}") else "operations"
    resource = path.split("/")[2]
    if resource == "cases" and path.rsplit("/", 1)[-1] in ("history", "verify", "access-log"):
        return "audit"
    return {"openapi.json": "operations"}.get(resource, resource)


TAGS = [
    {"name": "cases", "description": "Fraud cases: open, work and read them"},
    {"name": "audit", "description": "History as of any moment, hash chains, access log"},
    {"name": "queues", "description": "Work queues and claiming"},
    {"name": "approvals", "description": "Four eyes: money given away above the approval limit"},
    {"name": "lookup", "description": "Finding a returning caller"},
    {"name": "call-verifications", "description": "The IVR checks that a call came from the issuer"},
    {"name": "breaches", "description": "Merchant data breaches and their affected cards"},
    {"name": "merchants", "description": "Merchant intelligence"},
    {"name": "dashboard", "description": "Supervisors' live view"},
    {"name": "customers", "description": "A customer's personal data: erasure"},
    {"name": "webhooks", "description": "Other systems told of every case event, signed (Standard Webhooks)"},
    {"name": "pages", "description": "HTML pages for browsers"},
    {"name": "operations", "description": "Health, readiness, metrics, this document"},
]


_RENAMED = {"serve": "get_openapi_document", "serve_metrics": "get_metrics", "healthz": "get_liveness",
            "readyz": "get_readiness"}


def operation_id(handler_name: str) -> str:
    """camelCase of the handler's name: stable, in the API's words, free of module names."""
    first, *rest = _RENAMED.get(handler_name, handler_name).split("_")
    return first + "".join(word.capitalize() for word in rest)


# Request examples, as an integrator would first send them (the lint checks each against its schema).
EXAMPLES: dict[tuple[str, str], dict[str, object]] = {
    ("POST", "/v1/cases"): {
        "customer": {"customer_id": "cust-0042", "name": "Taro Yamada", "registered_phone": "+81 90 1234 5678"},
        "cards": [{"card_id": "card-1", "last4": "4242", "network": "visa", "kind": "primary"}],
        "reason": "unrecognized_charge", "channel": "phone",
        "summary": "Customer does not recognise USD 19.95 from WEBTEL",
        "amount_at_risk": {"amount": "19.95", "currency": "USD"},
        "contact": {"direction": "inbound", "channel": "phone", "department": "fraud"}},
    ("POST", f"{CASE}/contacts"): {"direction": "outbound", "channel": "phone", "phone": "+81 90 1234 5678",
                                   "department": "fraud", "purpose": "confirm a USD 19.95 charge"},
    ("POST", f"{CASE}/notes"): {"text": "Customer travels next week; reissue by branch pickup.", "pinned": True},
    ("POST", f"{CASE}/escalations"): {"to_department": "credit_management", "reason": "limit review after fraud",
                                      "priority": 2},
    ("POST", "/v1/merchants/flags"): {"merchant": "WEBTEL", "reason": "recurring unrecognised charges"},
}

# What each query parameter means, for the document.
QUERY_TEXTS: dict[str, str] = {
    "min_position": "Answer only once the read side has reached this position (a command's `position`): waits"
                    " up to 5 s, then 503 with Retry-After; a position never written is 422 position-not-written.",
    "limit": "Items per page.",
    "cursor": "Opaque: the `next_cursor` of the page before, as given (anything else is 422). Absent for the"
              " first page.",
    "as_of": "A time with its offset: the case as it stood then. Not with `version`.",
    "version": "A version the case reached: the case as it stood then (404 past its last). Not with `as_of`.",
    "phone": "The caller's number; alone, or with `name`.",
    "name": "The customer's name, with `phone` or `last4`.",
    "last4": "The card's last four digits, with `name`.",
    "access_token": "The bearer token, for browsers' EventSource (which cannot send headers): streams only.",
    "state": "Only approvals in this state: pending, approved, rejected or expired (all when absent).",
}

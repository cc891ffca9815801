"""Every command on a fraud case, one decision function each.

A decision takes the current `FraudCase` and the command's arguments (always
`actor` and `at`), checks the rules and returns the new events, or raises
`RuleViolation` naming the broken rule. It never changes state itself; the
events do, through `case.evolve`. The decisions live by concern in
`decisions_case`, `decisions_contacts`, `decisions_cards`,
`decisions_charges`, `decisions_credits`, `decisions_approvals`,
`decisions_processor` and `decisions_calls`; this module gathers them in one place.
"""

from __future__ import annotations

from .decisions_approvals import approve, expire_approval, reject_approval
from .decisions_calls import record_call_verified
from .decisions_cards import (
    record_card_destroyed,
    record_compromise,
    reissue_card,
    reissue_fee,
    suspend_card,
    suspend_online_access,
)
from .decisions_case import (
    add_handoff_note,
    alert_case_id,
    assign,
    conclude_escalation,
    escalate,
    open_case,
    release,
    reopen_case,
    resolve_case,
)
from .decisions_charges import (
    dispute_charge,
    notify_customer,
    record_dispute_stage,
    resolve_dispute,
    review_transactions,
    stop_payments,
    waive_liability,
)
from .decisions_contacts import (
    check_identity,
    complete_callback,
    end_contact,
    miss_callback,
    record_contact_details,
    reschedule_callback,
    schedule_callback,
    start_contact,
    unlock_identity,
    waive_callback,
)
from .decisions_credits import grant_provisional_credit, reverse_provisional_credit
from .decisions_merge import merge_case, unmerge_case
from .decisions_processor import confirm_instruction, reject_instruction

__all__ = [
    "add_handoff_note",
    "alert_case_id",
    "approve",
    "assign",
    "check_identity",
    "complete_callback",
    "conclude_escalation",
    "confirm_instruction",
    "dispute_charge",
    "end_contact",
    "escalate",
    "expire_approval",
    "grant_provisional_credit",
    "merge_case",
    "miss_callback",
    "notify_customer",
    "open_case",
    "record_call_verified",
    "record_card_destroyed",
    "record_compromise",
    "record_contact_details",
    "record_dispute_stage",
    "reissue_card",
    "reissue_fee",
    "reject_approval",
    "reject_instruction",
    "release",
    "reopen_case",
    "reschedule_callback",
    "resolve_case",
    "resolve_dispute",
    "reverse_provisional_credit",
    "review_transactions",
    "schedule_callback",
    "start_contact",
    "stop_payments",
    "suspend_card",
    "suspend_online_access",
    "unlock_identity",
    "unmerge_case",
    "waive_callback",
    "waive_liability",
]

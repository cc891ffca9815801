"""Every rule the case enforces is named, and every name has a given/when/then test.

The rule names are the 409 problem types clients branch on. A rule nobody
tests can silently stop holding; `test_every_rule_name_has_a_test` finds the
names raised in `domain/` and fails for any that no test under tests/domain
names, so a new rule lands with its test.
"""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

from casedesk.domain import decisions as do
from casedesk.domain import events as ev
from casedesk.domain.values import Card

from .story import (
    CALL,
    CALLBACK,
    CASE,
    CUSTOMER,
    LATER_CALL,
    NOW,
    PRIMARY,
    REGISTERED,
    REISSUE_ARGS,
    TRANSACTION,
    VERIFIED_CALL,
    call_ended,
    call_started,
    callback_scheduled,
    given,
    opened,
    replaced,
    suspended,
)

ROOT = Path(__file__).resolve().parents[2]


def raised_rule_names() -> set[str]:
    """Names passed to `RuleViolation(...)` anywhere in domain/."""
    names: set[str] = set()
    for module in (ROOT / "domain").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "RuleViolation"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
    return names


def test_every_rule_name_has_a_test() -> None:
    tests = "\n".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py"))
    names = raised_rule_names()
    assert len(names) > 40, "the scan found the rules"
    untested = sorted(n for n in names if f'"{n}"' not in tests)
    assert untested == [], f"rules with no given/when/then test: {untested}"


OPEN_ARGS: dict[str, Any] = dict(
    case_id=CASE, customer=CUSTOMER, reason="fraud_alert", channel="phone", summary="flagged"
)


def test_card_already_destroyed() -> None:
    args = dict(card_id="card-p", branch="Shinjuku", certificate_id="CERT-2")
    given(opened(), suspended(), replaced(), *_destroyed()).when(do.record_card_destroyed, **args).refused(
        "card-already-destroyed"
    )


def _destroyed() -> tuple[Any, ...]:
    return tuple(
        given(opened(), suspended(), replaced())
        .when(do.record_card_destroyed, card_id="card-p", branch="Shinjuku", certificate_id="CERT-1")
        .then(ev.CardDestroyed)
    )


def test_department_needed() -> None:
    given(opened()).when(do.escalate, to_department="  ", reason="needs a decision", priority=2).refused(
        "department-needed"
    )


def test_duplicate_callback() -> None:
    args = dict(callback_id=CALLBACK, due_at=NOW + timedelta(hours=2), phone=None, reason="again", department="fraud")
    given(opened(), callback_scheduled()).when(do.schedule_callback, **args).refused("duplicate-callback")


def test_duplicate_contact() -> None:
    args = dict(contact_id=CALL, direction="inbound", channel="phone", phone=REGISTERED, department="fraud")
    given(opened(), call_started(), call_ended()).when(do.start_contact, **args).refused("duplicate-contact")
    given(opened(), call_started(), call_ended()).when(do.start_contact, **{**args, "contact_id": LATER_CALL}).then(
        ev.ContactStarted
    )


def test_duplicate_transaction() -> None:
    twice = [TRANSACTION, msgspec.structs.replace(TRANSACTION, answer="unsure")]
    given(*VERIFIED_CALL).when(do.review_transactions, contact_id=CALL, transactions=twice).refused(
        "duplicate-transaction"
    )


def test_empty_note() -> None:
    given(opened()).when(do.add_handoff_note, note_id=CASE, text=" \n\t ").refused("empty-note")


def test_invalid_card_link() -> None:
    names_a_primary = Card(card_id="card-x", last4="1111", network="visa", kind="primary", primary_card_id="card-p")
    names_itself = Card(card_id="card-y", last4="2222", network="visa", kind="family", primary_card_id="card-y")
    for cards in ([PRIMARY, names_a_primary], [PRIMARY, names_itself]):
        given().when(do.open_case, cards=cards, **OPEN_ARGS).refused("invalid-card-link")


def test_invalid_last4() -> None:
    given(*VERIFIED_CALL, suspended()).when(do.reissue_card, **{**REISSUE_ARGS, "new_last4": "12a4"}).refused(
        "invalid-last4"
    )


def test_no_transactions() -> None:
    given(*VERIFIED_CALL).when(do.review_transactions, contact_id=CALL, transactions=[]).refused("no-transactions")


def test_online_access_already_suspended() -> None:
    first = given(opened()).when(do.suspend_online_access, reason="takeover").then(ev.OnlineAccessSuspended)
    given(opened(), *first).when(do.suspend_online_access, reason="again").refused("online-access-already-suspended")

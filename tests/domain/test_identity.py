"""Identity checks: within an open contact, callback rules, three strikes lock."""

from datetime import timedelta

from casedesk.domain.decisions import check_identity, unlock_identity
from casedesk.domain.events import (
    IdentityLocked,
    IdentityUnlocked,
    IdentityVerificationFailed,
    IdentityVerified,
)

from .story import (
    CALL,
    LATER_CALL,
    NOW,
    OTHER_PHONE,
    SUPERVISOR,
    T0,
    call_ended,
    call_started,
    failed,
    given,
    locked,
    opened,
    verified,
)

KBA = dict(contact_id=CALL, method="knowledge_based", factors=["name", "date_of_birth"])
CALLBACK_CHECK = dict(
    contact_id=CALL, method="callback_to_registered_number", passed=True, factors=[]
)


def test_passed_check_verifies_identity_in_that_contact() -> None:
    when = given(opened(), call_started()).when(check_identity, passed=True, **KBA)
    [event] = when.then(IdentityVerified)
    assert event.contact_id == CALL
    assert when.after is not None and when.after.contact(CALL).verified_by == "knowledge_based"


def test_check_needs_an_open_contact() -> None:
    given(opened(), call_started(), call_ended()).when(check_identity, passed=True, **KBA).refused(
        "contact-not-open"
    )


def test_check_in_an_unknown_contact_is_refused() -> None:
    given(opened()).when(check_identity, passed=True, **KBA).refused("unknown-contact")


def test_callback_verification_needs_a_call_we_placed() -> None:
    given(opened(), call_started(direction="inbound")).when(
        check_identity, **CALLBACK_CHECK
    ).refused("callback-verification-needs-registered-number")


def test_callback_verification_needs_the_registered_number() -> None:
    given(opened(), call_started(direction="outbound", phone=OTHER_PHONE)).when(
        check_identity, **CALLBACK_CHECK
    ).refused("callback-verification-needs-registered-number")


def test_callback_to_the_registered_number_verifies() -> None:
    for direction in ("outbound", "callback"):
        given(opened(), call_started(direction=direction)).when(
            check_identity, **CALLBACK_CHECK
        ).then(IdentityVerified)


def test_id_document_is_checked_at_a_branch() -> None:
    check = dict(contact_id=CALL, method="id_document_at_branch", passed=True, factors=[])
    given(opened(), call_started()).when(check_identity, **check).refused(
        "id-document-needs-branch"
    )
    given(opened(), call_started(channel="branch", phone=None)).when(check_identity, **check).then(
        IdentityVerified
    )


def test_factors_are_names_not_values() -> None:
    check = {**KBA, "factors": ["1985-03-02"]}
    given(opened(), call_started()).when(check_identity, passed=True, **check).refused(
        "factor-not-a-name"
    )


def test_third_failed_check_in_24h_locks_identity() -> None:
    history = (opened(), call_started(), failed(T0), failed(T0 + timedelta(minutes=5)))
    failure, _ = (
        given(*history)
        .when(check_identity, passed=False, **KBA)
        .then(IdentityVerificationFailed, IdentityLocked)
    )
    assert isinstance(failure, IdentityVerificationFailed) and failure.failures_in_24h == 3


def test_failures_older_than_24h_do_not_count() -> None:
    history = (opened(), call_started(), failed(NOW - timedelta(hours=25)), failed(NOW))
    given(*history).when(check_identity, passed=False, **KBA).then(IdentityVerificationFailed)


def test_failures_count_across_contacts() -> None:
    history = (opened(), call_started(), failed(), failed(), call_ended(), call_started(LATER_CALL))
    given(*history).when(check_identity, passed=False, **{**KBA, "contact_id": LATER_CALL}).then(
        IdentityVerificationFailed, IdentityLocked
    )


def test_locked_identity_refuses_further_checks() -> None:
    given(opened(), call_started(), locked()).when(check_identity, passed=True, **KBA).refused(
        "identity-locked"
    )


def test_a_failure_withdraws_an_earlier_pass_in_the_contact() -> None:
    when = given(opened(), call_started(), verified()).when(check_identity, passed=False, **KBA)
    when.then(IdentityVerificationFailed)
    assert when.after is not None and when.after.contact(CALL).verified_by is None


def test_unlock_allows_checks_again_with_a_fresh_count() -> None:
    history = (opened(), call_started(), failed(), failed(), failed(), locked())
    when = given(*history).when(unlock_identity, actor=SUPERVISOR, reason="customer at branch")
    when.then(IdentityUnlocked)
    assert when.after is not None
    assert not when.after.identity_locked and when.after.recent_failures == ()


def test_unlock_needs_a_lock() -> None:
    given(opened()).when(unlock_identity, actor=SUPERVISOR, reason="x").refused(
        "identity-not-locked"
    )

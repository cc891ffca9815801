"""Checking our calls: the customer's check is recorded on the case, the reference never is."""

from casedesk.domain.decisions import record_call_verified, start_contact
from casedesk.domain.events import CallVerified, ContactStarted
from casedesk.domain.values import Actor, PhoneNumber

from .story import CALL, LATER_CALL, REGISTERED, T0, call_ended, call_started, given, opened, resolved

IVR = Actor(id="ivr-1", name="IVR", role="ivr", department="")


def test_a_check_of_our_call_is_recorded_with_what_became_of_the_reference() -> None:
    when = given(opened(), call_started(direction="outbound"), call_ended()).when(
        record_call_verified, actor=IVR, contact_id=CALL, channel="ivr", code="matched")
    [event] = when.then(CallVerified)
    assert (event.contact_id, event.call_at, event.channel, event.code) == (CALL, T0, "ivr", "matched")
    assert not hasattr(event, "verification_code")


def test_a_check_is_recorded_on_a_resolved_case_too() -> None:
    given(opened(), call_started(direction="callback"), call_ended(), resolved()).when(
        record_call_verified, actor=IVR, contact_id=CALL, channel="ivr", code="wrong").then(CallVerified)


def test_only_a_call_we_placed_can_be_checked() -> None:
    given(opened(), call_started(direction="inbound")).when(
        record_call_verified, actor=IVR, contact_id=CALL, channel="ivr", code="not_given").refused("unknown-call")
    given(opened()).when(
        record_call_verified, actor=IVR, contact_id=LATER_CALL, channel="ivr", code="not_given",
    ).refused("unknown-call")


def test_a_call_to_the_registered_number_written_before_e164_still_counts_as_registered() -> None:
    dialled = PhoneNumber(masked=REGISTERED.masked, key="e164-digest", former_keys=("x", REGISTERED.key))
    [event] = given(opened()).when(start_contact, contact_id=CALL, direction="outbound", channel="phone",
                                   phone=dialled, department="fraud").then(ContactStarted)
    assert isinstance(event, ContactStarted) and event.to_registered_number
    assert event.phone is not None and event.phone.former_keys == ()  # compared with, never stored

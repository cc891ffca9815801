"""Commands redact card numbers from free text and refuse them in structured fields."""

from casedesk.domain import decisions as do
from casedesk.domain import events as ev
from casedesk.domain.values import PhoneNumber

from .story import (
    CALL,
    CASE,
    CUSTOMER,
    DETAILS_ARGS,
    DISPUTE_ARGS,
    NOTE,
    PAN,
    PRIMARY,
    VERIFIED_CALL,
    given,
    opened,
)


def test_a_note_is_redacted_before_it_becomes_an_event() -> None:
    [note] = (
        given(opened())
        .when(do.add_handoff_note, note_id=NOTE, text=f"Customer read out {PAN}, cvv 123")
        .then(ev.HandoffNoteAdded)
    )
    assert isinstance(note, ev.HandoffNoteAdded)
    assert note.text == "Customer read out [card ••••1111], cvv •••"


def test_the_opening_summary_is_redacted() -> None:
    [event] = (
        given()
        .when(
            do.open_case,
            case_id=CASE,
            customer=CUSTOMER,
            cards=[PRIMARY],
            reason="fraud_alert",
            channel="phone",
            summary=f"Flagged {PAN}",
        )
        .then(ev.CaseOpened)
    )
    assert isinstance(event, ev.CaseOpened) and event.summary == "Flagged [card ••••1111]"


def test_a_contact_summary_is_redacted() -> None:
    [event] = (
        given(*VERIFIED_CALL)
        .when(do.end_contact, contact_id=CALL, outcome="connected", summary=f"card {PAN}")
        .then(ev.ContactEnded)
    )
    assert isinstance(event, ev.ContactEnded) and "1111 1111" not in event.summary


def test_a_pan_in_a_structured_field_is_refused() -> None:
    refusal = (
        given(*VERIFIED_CALL)
        .when(do.dispute_charge, **{**DISPUTE_ARGS, "merchant": PAN})
        .refused("card-data-refused")
    )
    assert getattr(refusal, "field", None) == "merchant"


def test_a_pan_typed_as_a_card_id_is_refused_not_echoed() -> None:
    refusal = (
        given(opened())
        .when(do.suspend_card, card_id=PAN, reason="x", include_linked=False)
        .refused("card-data-refused")
    )
    assert PAN not in str(refusal)


def test_a_pan_typed_as_a_daytime_phone_is_refused() -> None:
    phone = PhoneNumber(masked="•••• 1111", key="k", number=PAN)
    given(*VERIFIED_CALL).when(
        do.record_contact_details, **{**DETAILS_ARGS, "daytime_phone": phone}
    ).refused("card-data-refused")


def test_an_international_phone_number_is_a_phone() -> None:
    # 13 digits that happen to pass Luhn, written as a phone.
    phone = PhoneNumber(masked="•••• 0003", key="k", number="+81 3 1234 5678 03")
    assert sum(c.isdigit() for c in phone.number or "") >= 13
    given(*VERIFIED_CALL).when(
        do.record_contact_details, **{**DETAILS_ARGS, "daytime_phone": phone}
    ).then(ev.ContactDetailsRecorded)

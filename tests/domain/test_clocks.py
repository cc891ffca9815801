"""Deadline clocks: given a case's events at fixed times, when read as of a moment, then each clock stands so.

Every time here is fixed (the clocks are pure: time is an argument), so the
dates, weekdays and holidays named in the test names hold forever.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
import pytest

from casedesk.domain import events as ev
from casedesk.domain.business_days import nth_day_after
from casedesk.domain.clock_policies import POLICIES, ClockPolicy, policy_named
from casedesk.domain.clocks import Clock, clocks_of
from casedesk.domain.values import Card, CardProduct

from .story import AGENT, CALL, CALLBACK, CASE, CUSTOMER, DISPUTE, REGISTERED, jpy

JP, US = POLICIES["jp"], POLICIES["us"]
CREDIT = UUID(int=90)
NEW_YORK, TOKYO = ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)  # type: ignore[misc]


class Given:
    """A case's events, each at its own time, numbered as they were recorded."""

    def __init__(self, product: CardProduct = "credit", network: str = "visa", at: datetime | None = None) -> None:
        self.events: list[ev.CaseEvent] = []
        card = Card(card_id="card-p", last4="4242", network=network, kind="primary", product=product)
        self._add(ev.CaseOpened, at or ny(2026, 9, 4, 10), contact_id=None, customer=CUSTOMER, cards=(card,),
                  reason="unrecognized_charge", channel="phone", summary="unknown charge")

    def _add(self, kind: type[ev.CaseEvent], at: datetime, contact_id: UUID | None = CALL, **fields: Any) -> Given:
        self.events.append(kind(originator_id=CASE, originator_version=len(self.events) + 1, timestamp=at,
                                actor=AGENT, contact_id=contact_id, **fields))
        return self

    def call(self, at: datetime) -> Given:
        return self._add(ev.ContactStarted, at, direction="inbound", channel="phone", phone=REGISTERED,
                         department="fraud", purpose=None, to_registered_number=True)

    def dispute(self, at: datetime, transaction_date: date | None = None, **flags: bool) -> Given:
        return self._add(ev.ChargeDisputed, at, dispute_id=DISPUTE, transaction_id="tx-1", merchant="WEBTEL",
                         amount=jpy("1995"), reason_code="10.4", network="visa",
                         transaction_date=transaction_date, **flags)

    def resolve(self, at: datetime, outcome: str = "upheld") -> Given:
        return self._add(ev.DisputeResolved, at, dispute_id=DISPUTE, outcome=outcome, note="done")

    def stage(self, at: datetime, stage: str) -> Given:
        return self._add(ev.DisputeStageRecorded, at, dispute_id=DISPUTE, stage=stage, network_reference="VROL-1",
                         note="network")

    def credit(self, at: datetime, amount: str = "1995") -> Given:
        return self._add(ev.ProvisionalCreditGranted, at, credit_id=CREDIT, dispute_id=DISPUTE, amount=jpy(amount))

    def credit_reversed(self, at: datetime) -> Given:
        return self._add(ev.ProvisionalCreditReversed, at, credit_id=CREDIT, reason="dispute lost")

    def notify(self, at: datetime, subject: str = "investigation_result") -> Given:
        return self._add(ev.CustomerNotified, at, channel="letter", subject=subject, summary="result sent")

    def callback(self, at: datetime, due: datetime) -> Given:
        return self._add(ev.CallbackScheduled, at, callback_id=CALLBACK, due_at=due, phone=None,
                         to_registered_number=True, reason="confirm", department="fraud")

    def callback_made(self, at: datetime, missed: bool = False) -> Given:
        kind = ev.CallbackMissed if missed else ev.CallbackCompleted
        return self._add(kind, at, callback_id=CALLBACK, note="")

    def identity_locked(self, at: datetime) -> Given:
        return self._add(ev.IdentityLocked, at, failures_in_24h=3)

    def identity_unlocked(self, at: datetime) -> Given:
        return self._add(ev.IdentityUnlocked, at, contact_id=None, reason="verified at the branch")

    def case_resolved(self, at: datetime) -> Given:
        return self._add(ev.CaseResolved, at, contact_id=None, resolution="fraud_confirmed", summary="ok")

    def case_reopened(self, at: datetime) -> Given:
        return self._add(ev.CaseReopened, at, contact_id=None, reason="new charge")

    def clocks(self, now: datetime, policy: ClockPolicy = US) -> dict[str, Clock]:
        return {c.rule: c for c in clocks_of(self.events, policy, now)}


# --- business days --------------------------------------------------------------


def test_japanese_business_days_skip_golden_week() -> None:
    # Thursday 30 April 2026; 3-6 May are holidays (Constitution, Greenery, Children's Day, substitute).
    assert nth_day_after(date(2026, 4, 30), 1, "business_jp") == date(2026, 5, 1)
    assert nth_day_after(date(2026, 4, 30), 2, "business_jp") == date(2026, 5, 7)


def test_japanese_business_days_skip_the_bank_new_year_31_december_to_3_january() -> None:
    # Wednesday 30 December 2026: 31 Dec to 3 Jan the banks are closed; 4 Jan 2027 is a Monday.
    assert nth_day_after(date(2026, 12, 30), 1, "business_jp") == date(2027, 1, 4)


def test_us_business_days_skip_federal_holidays_and_weekends() -> None:
    # Wednesday 25 November 2026; Thursday 26 is Thanksgiving.
    assert nth_day_after(date(2026, 11, 25), 1, "business_us") == date(2026, 11, 27)
    assert nth_day_after(date(2026, 11, 25), 2, "business_us") == date(2026, 11, 30)


def test_calendar_days_count_every_day() -> None:
    assert nth_day_after(date(2026, 12, 30), 3, "calendar") == date(2027, 1, 2)


# --- Regulation E (debit, us) -----------------------------------------------------


def test_reg_e_provisional_credit_is_due_ten_business_days_after_a_notice_on_the_friday_before_labor_day() -> None:
    # Notice in a call on Friday 4 September 2026; Monday 7 September is Labor Day.
    clock = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).clocks(ny(2026, 9, 5))[
        "reg_e_provisional_credit"]
    assert clock.calendar == "business_us"
    assert clock.started_at == ny(2026, 9, 4, 16)  # the call in which the customer told us
    assert clock.due_at == ny(2026, 9, 22)  # through Monday 21 September, not Friday 18
    assert clock.state == "running"
    assert clock.source.startswith("12 CFR 1005.11")


def test_reg_e_provisional_credit_clock_is_met_by_an_investigation_finished_on_business_day_ten() -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).resolve(ny(2026, 9, 21, 17))
    clock = given.clocks(ny(2026, 10, 1))["reg_e_provisional_credit"]
    assert (clock.state, clock.met_at) == ("met", ny(2026, 9, 21, 17))


def test_reg_e_provisional_credit_clock_is_breached_on_business_day_eleven() -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).resolve(ny(2026, 9, 22, 9))
    clock = given.clocks(ny(2026, 10, 1))["reg_e_provisional_credit"]
    assert (clock.state, clock.met_at) == ("breached", ny(2026, 9, 22, 9))


def test_reg_e_provisional_credit_clock_is_met_by_a_provisional_credit_granted_on_business_day_ten() -> None:
    # Notice Friday 4 September 2026 (Labor Day the Monday after): business day ten is Monday 21 September.
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).credit(ny(2026, 9, 21, 17))
    clocks = given.clocks(ny(2026, 10, 1))
    assert (clocks["reg_e_provisional_credit"].state, clocks["reg_e_provisional_credit"].met_at) == (
        "met", ny(2026, 9, 21, 17))
    assert clocks["reg_e_investigation"].state == "running"  # a credit buys time; it finishes nothing


def test_reg_e_provisional_credit_clock_is_breached_by_a_provisional_credit_granted_on_business_day_eleven() -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).credit(ny(2026, 9, 22, 9))
    clock = given.clocks(ny(2026, 10, 1))["reg_e_provisional_credit"]
    assert (clock.state, clock.met_at) == ("breached", ny(2026, 9, 22, 9))


def test_a_reversed_provisional_credit_still_met_its_clock() -> None:
    given = (Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).credit(ny(2026, 9, 8, 10))
             .credit_reversed(ny(2026, 10, 2, 10)))
    clock = given.clocks(ny(2026, 10, 5))["reg_e_provisional_credit"]
    assert (clock.state, clock.met_at) == ("met", ny(2026, 9, 8, 10))


def test_a_running_clock_breaches_when_its_due_time_passes_without_an_event() -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5))
    assert given.clocks(ny(2026, 9, 21, 23, 59))["reg_e_provisional_credit"].state == "running"
    late = given.clocks(ny(2026, 9, 22))["reg_e_provisional_credit"]
    assert (late.state, late.met_at) == ("breached", None)


def test_reg_e_investigation_takes_45_days() -> None:
    clock = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).clocks(ny(2026, 9, 5))[
        "reg_e_investigation"]
    assert (clock.calendar, clock.due_at) == ("calendar", ny(2026, 10, 20))  # 4 Sep + 45 days, end of day


@pytest.mark.parametrize("flag", ["foreign", "point_of_sale"])
def test_reg_e_investigation_takes_90_days_for_foreign_or_point_of_sale_transactions(flag: str) -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5), **{flag: True})
    assert given.clocks(ny(2026, 9, 5))["reg_e_investigation"].due_at == ny(2026, 12, 4)


def test_reg_e_results_are_told_within_three_business_days_of_the_resolution() -> None:
    # Resolved Wednesday 23 December 2026: Christmas (Friday 25) and the weekend do not count.
    given = Given("debit").call(ny(2026, 12, 1, 10)).dispute(ny(2026, 12, 1, 10, 5)).resolve(ny(2026, 12, 23, 12))
    clock = given.clocks(ny(2026, 12, 24))["reg_e_results_told"]
    assert (clock.state, clock.started_at, clock.due_at) == ("running", ny(2026, 12, 23, 12), ny(2026, 12, 30))
    assert clock.started_by_event == 4
    told = given.notify(ny(2026, 12, 29, 15)).clocks(ny(2027, 1, 5))["reg_e_results_told"]
    assert (told.state, told.met_at) == ("met", ny(2026, 12, 29, 15))


def test_a_notice_of_another_subject_does_not_meet_the_results_clock() -> None:
    given = Given("debit").call(ny(2026, 12, 1, 10)).dispute(ny(2026, 12, 1, 10, 5)).resolve(ny(2026, 12, 23, 12))
    clock = given.notify(ny(2026, 12, 24), subject="other").clocks(ny(2027, 1, 5))["reg_e_results_told"]
    assert (clock.state, clock.met_at) == ("breached", None)


def test_a_resolved_dispute_meets_its_clock_and_stops_it() -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).resolve(ny(2026, 9, 10))
    clock = given.clocks(ny(2027, 6, 1))["reg_e_investigation"]  # long after: still met, never breached
    assert (clock.state, clock.met_at) == ("met", ny(2026, 9, 10))


def test_a_withdrawn_dispute_stops_its_running_clocks_and_starts_no_results_clock() -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).resolve(ny(2026, 9, 8), "withdrawn")
    clocks = given.clocks(ny(2027, 6, 1))
    assert {r: c.state for r, c in clocks.items()} == {
        "reg_e_provisional_credit": "stopped", "reg_e_investigation": "stopped"}


# --- Regulation Z (credit, us) ----------------------------------------------------


def test_reg_z_applies_to_credit_cards_and_reg_e_to_debit_cards() -> None:
    credit = Given("credit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).clocks(ny(2026, 9, 5))
    debit = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).clocks(ny(2026, 9, 5))
    assert set(credit) == {"reg_z_acknowledgment", "reg_z_resolution"}
    assert set(debit) == {"reg_e_provisional_credit", "reg_e_investigation"}


def test_reg_z_acknowledgment_is_met_by_any_notice_within_30_days() -> None:
    given = Given("credit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).notify(ny(2026, 9, 20), "other")
    clocks = given.clocks(ny(2026, 9, 21))
    assert clocks["reg_z_acknowledgment"].due_at == ny(2026, 10, 5)
    assert (clocks["reg_z_acknowledgment"].state, clocks["reg_z_resolution"].state) == ("met", "running")
    assert clocks["reg_z_resolution"].due_at == ny(2026, 12, 4)  # 90 days


# --- card networks and the desk's promises (both policies) -----------------------------


def test_a_visa_dispute_filed_within_120_days_of_the_transaction_meets_the_filing_limit() -> None:
    at = datetime(2026, 5, 1, 10, tzinfo=TOKYO)
    clock = Given(at=at).dispute(at, transaction_date=date(2026, 1, 2)).clocks(at, JP)["visa_fraud_filing_limit"]
    assert (clock.started_at, clock.due_at) == (datetime(2026, 1, 2, tzinfo=TOKYO), datetime(2026, 5, 3, tzinfo=TOKYO))
    assert (clock.state, clock.met_at) == ("met", at)


def test_a_visa_dispute_filed_after_120_days_breaches_the_filing_limit() -> None:
    at = datetime(2026, 5, 3, 0, 0, tzinfo=TOKYO)  # the first instant after day 120
    clock = Given(at=at).dispute(at, transaction_date=date(2026, 1, 2)).clocks(at, JP)["visa_fraud_filing_limit"]
    assert (clock.state, clock.met_at) == ("breached", at)


def test_a_representment_starts_visa_30_days_to_go_to_pre_arbitration() -> None:
    at = datetime(2026, 5, 1, 10, tzinfo=TOKYO)
    given = Given(at=at).dispute(at, transaction_date=date(2026, 4, 20)).stage(at, "filed")
    given.stage(datetime(2026, 5, 20, 10, tzinfo=TOKYO), "representment")
    clock = given.clocks(datetime(2026, 5, 21, tzinfo=TOKYO), JP)["visa_pre_arbitration_limit"]
    assert (clock.state, clock.due_at) == ("running", datetime(2026, 6, 20, tzinfo=TOKYO))
    given.stage(datetime(2026, 6, 19, 17, tzinfo=TOKYO), "pre_arbitration")
    assert given.clocks(datetime(2026, 7, 1, tzinfo=TOKYO), JP)["visa_pre_arbitration_limit"].state == "met"


def test_the_jp_policy_has_no_us_regulations() -> None:
    at = datetime(2026, 5, 1, 10, tzinfo=TOKYO)
    clocks = Given("debit", at=at).call(at).dispute(at, transaction_date=date(2026, 4, 20)).clocks(at, JP)
    assert set(clocks) == {"visa_fraud_filing_limit"}


def test_a_dispute_without_a_transaction_date_has_no_filing_clock() -> None:
    at = datetime(2026, 5, 1, 10, tzinfo=TOKYO)
    assert Given(at=at).dispute(at).clocks(at, JP) == {}


def test_a_callback_made_on_time_is_met_and_one_missed_late_is_breached() -> None:
    at = datetime(2026, 5, 1, 10, tzinfo=UTC)
    on_time = Given(at=at).callback(at, at + timedelta(hours=2)).callback_made(at + timedelta(hours=1))
    late = Given(at=at).callback(at, at + timedelta(hours=2)).callback_made(at + timedelta(hours=3), missed=True)
    assert on_time.clocks(at + timedelta(days=1), JP)["callback_promise"].state == "met"
    assert late.clocks(at + timedelta(days=1), JP)["callback_promise"].state == "breached"


# --- paused: the desk's promise waits while identity checks are locked ----------------


T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def test_a_promised_callback_pauses_while_identity_checks_are_locked_and_cannot_breach() -> None:
    given = Given(at=T0).callback(T0, hours(2)).identity_locked(hours(1))
    paused = given.clocks(hours(30), JP)["callback_promise"]  # long past the promised time
    assert (paused.state, paused.paused_at, paused.due_at) == ("paused", hours(1), hours(2))


def test_an_unlock_resumes_the_promise_due_later_by_the_time_it_was_paused() -> None:
    given = Given(at=T0).callback(T0, hours(2)).identity_locked(hours(1)).identity_unlocked(hours(4))
    clock = given.clocks(hours(4.5), JP)["callback_promise"]
    assert (clock.state, clock.due_at, clock.paused_at) == ("running", hours(5), None)
    assert given.clocks(hours(5), JP)["callback_promise"].state == "breached"


def test_a_callback_made_while_paused_meets_the_promise() -> None:
    given = Given(at=T0).callback(T0, hours(2)).identity_locked(hours(1)).callback_made(hours(3))
    clock = given.clocks(hours(30), JP)["callback_promise"]
    assert (clock.state, clock.met_at, clock.paused_at) == ("met", hours(3), None)


def test_a_promise_made_while_locked_starts_paused_and_runs_from_the_unlock() -> None:
    given = Given(at=T0).identity_locked(T0).callback(hours(1), hours(3))
    assert given.clocks(hours(10), JP)["callback_promise"].state == "paused"
    given.identity_unlocked(hours(10))
    assert given.clocks(hours(10), JP)["callback_promise"].due_at == hours(12)  # the 2 hours it had


def test_a_promise_already_past_due_when_identity_locks_stays_breached() -> None:
    given = Given(at=T0).callback(T0, hours(2)).identity_locked(hours(3)).identity_unlocked(hours(5))
    clock = given.clocks(hours(6), JP)["callback_promise"]
    assert (clock.state, clock.due_at) == ("breached", hours(2))


def test_regulatory_and_network_clocks_never_pause() -> None:
    given = (Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5), date(2026, 8, 1))
             .identity_locked(ny(2026, 9, 5, 9)))
    clocks = given.clocks(ny(2026, 9, 8))
    assert {r: c.state for r, c in clocks.items()} == {
        "visa_fraud_filing_limit": "met", "reg_e_provisional_credit": "running", "reg_e_investigation": "running"}
    assert all(not r.paused_while for p in POLICIES.values() for r in p.rules if r.starts != "promise")


def test_every_rule_that_pauses_says_why() -> None:
    for policy in POLICIES.values():
        assert all(r.pause_source.strip() for r in policy.rules if r.paused_while), policy.name


def test_a_reopened_case_keeps_its_clocks_as_they_stood() -> None:
    given = (Given("debit").call(ny(2026, 12, 1, 10)).dispute(ny(2026, 12, 1, 10, 5)).resolve(ny(2026, 12, 23, 12))
             .case_resolved(ny(2026, 12, 23, 13)).case_reopened(ny(2026, 12, 24, 9)))
    clocks = given.clocks(ny(2026, 12, 24, 10))
    assert clocks["reg_e_investigation"].state == "met"
    assert clocks["reg_e_results_told"].state == "running"  # the customer must still be told


def test_clocks_as_of_a_moment_ignore_later_events() -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5)).resolve(ny(2026, 9, 10))
    assert given.clocks(ny(2026, 9, 9))["reg_e_investigation"].state == "running"
    assert given.clocks(ny(2026, 9, 11))["reg_e_investigation"].state == "met"


# --- the policies themselves --------------------------------------------------------


def test_every_rule_names_its_source() -> None:
    for policy in POLICIES.values():
        assert all(r.source.strip() for r in policy.rules), policy.name


def test_an_unknown_policy_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="expected one of jp, us"):
        policy_named("eu")


def test_clocks_encode_and_decode_as_json() -> None:
    given = Given("debit").call(ny(2026, 9, 4, 16)).dispute(ny(2026, 9, 4, 16, 5))
    clocks = list(given.clocks(ny(2026, 9, 5)).values())
    assert msgspec.json.decode(msgspec.json.encode(clocks), type=list[Clock]) == [
        msgspec.structs.replace(c, started_at=c.started_at.astimezone(UTC), due_at=c.due_at.astimezone(UTC))
        for c in clocks]

"""The deadline rules a desk works under, as data: every number with its source beside it.

`CASEDESK_CLOCK_POLICY` names one policy: `jp` (the default: the card
networks' filing limits and the desk's own promises) or `us` (the same, plus
Regulation E for debit cards and Regulation Z for credit cards). A rule says
when its clock starts, how long it runs on which calendar, and which facts
meet it; `clocks.py` derives the clocks of a case from its events with them.

When a clock starts (`starts`):
- `transaction`: the disputed charge's transaction date (the dispute starts it);
- `notice`: the customer's notice of error: the start of the contact in which
  the charge was disputed (the dispute's own time when it names no contact);
- `resolution`: the dispute's resolution (upheld or rejected);
- `representment`: the merchant's answer to the chargeback (a dispute stage);
- `promise`: a callback, due when it was promised.

What meets it (`met_by`): `disputed` (the chargeback sent: the dispute itself),
`resolution`, `provisional_credit`, `callback` (made or attempted),
`stage:<stage>` (a dispute stage), or `notice:<subject>` / `notice:any` (a
customer notice).

What pauses it (`paused_while`, with `pause_source` saying why): a condition of
the case during which the clock neither runs nor can breach; when the
condition ends the clock runs again, due later by the time it was paused.
`identity_locked`: from the lock after too many failed identity checks until a
supervisor unlocks (nobody on the case may be discussed with a caller then).

Only the desk's own promises pause. Regulation E and Z count from the notice of
error whatever the desk or the customer does meanwhile (12 CFR 1005.11(c),
1026.13(c): no clause suspends them), and the networks' time limits run from
fixed dates (the transaction, the representment); a clock of theirs that
paused would show an ops team time the regulator and the network do not give.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .values import CardProduct

Calendar = Literal["business_jp", "business_us", "calendar"]
ClockStart = Literal["transaction", "notice", "resolution", "promise", "representment"]
# A condition of the case that pauses a clock while it holds (domain/clocks.py says when each
# begins and ends).
PauseCondition = Literal["identity_locked"]


class ClockRule(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One deadline: its clock's name, how long it runs, what starts and meets it, and its source."""

    rule: str
    clock: str
    source: str
    starts: ClockStart
    days: int = 0  # 0 for a promise: due when promised
    calendar: Calendar = "calendar"
    met_by: tuple[str, ...] = ()
    # Where the rule allows longer: point-of-sale, foreign (or new-account) transactions.
    extended_days: int | None = None
    products: tuple[CardProduct, ...] = ("credit", "debit")
    networks: tuple[str, ...] = ()  # empty: every network
    paused_while: tuple[PauseCondition, ...] = ()
    pause_source: str = ""  # why the rule pauses, where it does


class ClockPolicy(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The rules of one jurisdiction, and the zone whose days (and holidays) they count."""

    name: str
    zone: str
    rules: tuple[ClockRule, ...]

    def for_dispute(self, product: CardProduct, network: str) -> tuple[ClockRule, ...]:
        """The rules a dispute on a card of this product and network starts or will start."""
        net = network.strip().casefold()
        return tuple(
            r for r in self.rules
            if r.starts != "promise" and product in r.products and (not r.networks or net in r.networks)
        )

    def for_callback(self) -> tuple[ClockRule, ...]:
        return tuple(r for r in self.rules if r.starts == "promise")

    def met_by(self, rule: str) -> tuple[str, ...]:
        """What meets the named rule's clock (nothing, for a rule this policy does not have)."""
        return next((r.met_by for r in self.rules if r.rule == rule), ())


# --- card networks (both policies) ---------------------------------------------

_NETWORK_FILING = (
    ClockRule(
        rule="visa_fraud_filing_limit", clock="network_filing", starts="transaction", days=120,
        calendar="calendar", met_by=("disputed",), networks=("visa",),
        source="Visa Core Rules and Visa Product and Service Rules, Dispute Condition 10 (Fraud):"
               " issuer dispute time limit 120 calendar days from the transaction processing date",
    ),
    ClockRule(
        rule="mastercard_fraud_filing_limit", clock="network_filing", starts="transaction", days=120,
        calendar="calendar", met_by=("disputed",), networks=("mastercard",),
        source="Mastercard Chargeback Guide, fraud-related chargebacks (message reason code 4837):"
               " 120 calendar days from the Central Site Business Date of the transaction",
    ),
)

# After the merchant's answer, the issuer's time to take the dispute to pre-arbitration.
_NETWORK_STAGES = (
    ClockRule(
        rule="visa_pre_arbitration_limit", clock="pre_arbitration", starts="representment", days=30,
        calendar="calendar", met_by=("stage:pre_arbitration", "resolution"), networks=("visa",),
        source="Visa Core Rules and Visa Product and Service Rules, Dispute Resolution: the issuer may file"
               " pre-arbitration within 30 calendar days of the dispute response (representment)",
    ),
    ClockRule(
        rule="mastercard_pre_arbitration_limit", clock="pre_arbitration", starts="representment", days=45,
        calendar="calendar", met_by=("stage:pre_arbitration", "resolution"), networks=("mastercard",),
        source="Mastercard Chargeback Guide: the issuer may submit pre-arbitration within 45 calendar days"
               " of the second presentment",
    ),
)

# --- the desk's own promises (both policies) -----------------------------------

_DESK_PROMISES = (
    ClockRule(
        rule="callback_promise", clock="callback", starts="promise", met_by=("callback",),
        source="casedesk desk promise: a promised callback is made (or attempted) by the time promised"
               " (CONTRACT.md, callbacks)",
        paused_while=("identity_locked",),
        pause_source="casedesk desk practice: while identity checks are locked after three failed checks"
                     " (CONTRACT.md, identity checks), no caller can be verified, so the case cannot be"
                     " discussed on the promised call; the promise waits for the supervisor's unlock, and"
                     " the time it waited is added to its due time",
    ),
)

# --- United States: Regulation E (debit) and Regulation Z (credit) -------------

_REGULATION_E = (
    ClockRule(
        rule="reg_e_provisional_credit", clock="provisional_credit", starts="notice", days=10,
        calendar="business_us", met_by=("provisional_credit", "resolution"), products=("debit",),
        source="12 CFR 1005.11(c)(1) and (c)(2)(i): investigate within 10 business days of the notice"
               " of error, or provisionally credit the account within 10 business days",
    ),
    ClockRule(
        rule="reg_e_investigation", clock="investigation", starts="notice", days=45, extended_days=90,
        calendar="calendar", met_by=("resolution",), products=("debit",),
        source="12 CFR 1005.11(c)(2): complete the investigation within 45 days of the notice of error;"
               " 1005.11(c)(3)(ii): 90 days for point-of-sale debit card, foreign-initiated"
               " or new-account transactions",
    ),
    ClockRule(
        rule="reg_e_results_told", clock="results_told", starts="resolution", days=3,
        calendar="business_us", met_by=("notice:investigation_result",), products=("debit",),
        source="12 CFR 1005.11(c)(1) and (c)(2)(iv): report the investigation's results to the consumer"
               " within 3 business days after completing it",
    ),
)

_REGULATION_Z = (
    ClockRule(
        rule="reg_z_acknowledgment", clock="acknowledgment", starts="notice", days=30,
        calendar="calendar", met_by=("notice:any", "resolution"), products=("credit",),
        source="12 CFR 1026.13(c)(1): acknowledge the billing error notice in writing within 30 days"
               " of receiving it, unless resolved within that time",
    ),
    ClockRule(
        rule="reg_z_resolution", clock="resolution", starts="notice", days=90,
        calendar="calendar", met_by=("resolution",), products=("credit",),
        source="12 CFR 1026.13(c)(2): resolve within two complete billing cycles, and in no event"
               " later than 90 days after receiving the notice",
    ),
)

POLICIES: dict[str, ClockPolicy] = {
    "jp": ClockPolicy(name="jp", zone="Asia/Tokyo", rules=(*_NETWORK_FILING, *_NETWORK_STAGES, *_DESK_PROMISES)),
    "us": ClockPolicy(name="us", zone="America/New_York",
                      rules=(*_NETWORK_FILING, *_NETWORK_STAGES, *_DESK_PROMISES, *_REGULATION_E, *_REGULATION_Z)),
}
DEFAULT_POLICY = POLICIES["jp"]


def policy_named(name: str) -> ClockPolicy:
    """The policy of that name; a ValueError naming the known ones otherwise."""
    policy = POLICIES.get(name.strip().lower())
    if policy is None:
        raise ValueError(f"unknown clock policy {name!r}: expected one of {', '.join(sorted(POLICIES))}")
    return policy

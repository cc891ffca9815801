"""Phone numbers in one form: however a number is written, it is one E.164 number and one digest."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casedesk.domain.errors import CardDataRefused
from casedesk.services.personal_data import PersonalData
from casedesk.services.phone_numbers import PhoneNumberRefused, e164
from casedesk.services.settings import SettingsError, load_settings

FULL_WIDTH = str.maketrans("0123456789+-() ", "０１２３４５６７８９＋－（）　")


@pytest.mark.parametrize(("written", "region", "number"), [
    # Japan: national, international, full-width, with and without separators
    ("03-1234-5678", "JP", "+81312345678"),
    ("0312345678", "JP", "+81312345678"),
    ("(03) 1234-5678", "JP", "+81312345678"),
    ("03.1234.5678", "JP", "+81312345678"),
    ("+81 3-1234-5678", "JP", "+81312345678"),
    ("+81312345678", "JP", "+81312345678"),
    ("０３１２３４５６７８", "JP", "+81312345678"),
    ("０３－１２３４－５６７８", "JP", "+81312345678"),
    ("＋８１ ３ １２３４ ５６７８", "JP", "+81312345678"),
    ("03ー1234ー5678", "JP", "+81312345678"),   # the long-vowel mark typed for a dash
    ("（03）1234　5678", "JP", "+81312345678"),  # full-width brackets and space
    ("+81 (0)3 1234 5678", "JP", "+81312345678"),
    ("090-1234-5678", "JP", "+819012345678"),
    ("+81 90 1234 5678", "JP", "+819012345678"),
    # United States, in its own region and from Japan
    ("(212) 555-0123", "US", "+12125550123"),
    ("212.555.0123", "US", "+12125550123"),
    ("2125550123", "US", "+12125550123"),
    ("+1 212-555-0123", "US", "+12125550123"),
    ("+1 212-555-0123", "JP", "+12125550123"),
    ("２１２５５５０１２３", "US", "+12125550123"),
])
def test_every_way_of_writing_a_number_is_one_e164_number(written: str, region: str, number: str) -> None:
    assert e164(written, region) == number


@pytest.mark.parametrize("written", ["12", "call me", "+81", "+999 1234 5678", "03-12", "+1 212 555 01234567"])
def test_what_is_not_a_phone_number_is_refused_naming_the_field(written: str) -> None:
    with pytest.raises(PhoneNumberRefused) as refused:
        e164(written, "JP", "customer.registered_phone")
    assert refused.value.field == "customer.registered_phone"


def test_a_card_number_in_a_phone_field_is_refused_as_card_data() -> None:
    with pytest.raises(CardDataRefused):
        e164("4111 1111 1111 1111", "JP", "phone")


def _render(digits: str, separators: list[str]) -> str:
    return "".join(d + s for d, s in zip(digits, separators, strict=False)) + digits[len(separators):]


jp_numbers = st.one_of(
    st.text("0123456789", min_size=8, max_size=8).map(lambda rest: "3" + rest),   # Tokyo, 03-xxxx-xxxx
    st.text("0123456789", min_size=8, max_size=8).map(lambda rest: "90" + rest),  # mobile, 090-xxxx-xxxx
    st.text("0123456789", min_size=8, max_size=8).map(lambda rest: "80" + rest),
)


@settings(max_examples=300)
@given(number=jp_numbers, international=st.booleans(), full_width=st.booleans(),
       separators=st.lists(st.sampled_from(["", " ", "-", ".", " - "]), max_size=12))
def test_a_number_is_one_number_whatever_its_separators_width_and_prefix(
        number: str, international: bool, full_width: bool, separators: list[str]) -> None:
    written = _render(("+81" if international else "0") + number, separators)
    if full_width:
        written = written.translate(FULL_WIDTH)
    assert e164(written, "JP") == "+81" + number
    pii = PersonalData("k")
    assert pii.phone(written).key == pii.phone("+81" + number).key


@settings(max_examples=100)
@given(number=jp_numbers)
def test_lookup_keys_include_the_digests_written_before_e164(number: str) -> None:
    """Before E.164 the digest was of the digits as typed: both usual forms are still tried."""
    pii = PersonalData("k")
    keys = pii.phone_keys("0" + number)
    assert keys[0] == pii.phone("+81" + number).key
    assert pii.digest("phone", "0" + number) in keys   # typed nationally, 03-1234-5678
    assert pii.digest("phone", "81" + number) in keys  # typed internationally, +81 3-1234-5678
    assert set(pii.phone_keys("+81 " + number)) == set(keys)


def test_the_region_of_numbers_without_a_country_code_is_a_setting(tmp_path) -> None:
    base = {"CASEDESK_DATA_DIR": str(tmp_path)}
    assert load_settings(base).phone_region == "JP"
    assert load_settings(base | {"CASEDESK_PHONE_REGION": "us"}).phone_region == "US"
    with pytest.raises(SettingsError):
        load_settings(base | {"CASEDESK_PHONE_REGION": "Japan"})
    assert PersonalData("k", "US").phone("(212) 555-0123").key == PersonalData("k").phone("+1 212 555 0123").key

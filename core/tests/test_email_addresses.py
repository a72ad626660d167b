"""Addresses as users write them: accepted and normalised, or refused with the reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stackyard.email.addresses import InvalidAddress, Mailbox, parse_mailbox, parse_mailboxes


@pytest.mark.parametrize(
    ("value", "address", "name"),
    [
        ("ana@example.com", "ana@example.com", ""),
        ("Ana <Ana@Example.COM>", "Ana@example.com", "Ana"),
        ('"Smith, Ana" <ana@example.com>', "ana@example.com", "Smith, Ana"),
        ("josé@exemplo.com.br", "josé@exemplo.com.br", ""),
        ("ana@bücher.example", "ana@bücher.example", ""),
    ],
)
def test_valid_addresses_are_normalised(value, address, name):
    assert parse_mailbox(value) == Mailbox(address, name)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not-an-address", "must have an @-sign"),
        ("ana@", "There must be something after the @-sign"),
        ("ana@@example.com", "invalid characters"),
        ("ana@example", "not valid"),
        ("a, b@example.com", "give one address"),
        ("ana@example.com\nBcc: all@example.com", "line break"),
    ],
)
def test_invalid_addresses_are_refused_with_the_reason(value, reason):
    with pytest.raises(InvalidAddress, match="to: ") as caught:
        parse_mailbox(value, "to")
    assert reason.lower() in caught.value.reason.lower() or reason in str(caught.value)


def test_display_names_are_quoted_or_encoded_for_headers():
    assert str(parse_mailbox('"Smith, Ana" <ana@example.com>')) == '"Smith, Ana" <ana@example.com>'
    assert str(parse_mailbox("ana@example.com")) == "ana@example.com"


def test_a_repeated_recipient_is_kept_once_whatever_its_case():
    boxes = parse_mailboxes(["ana@example.com", "ANA@example.com", "bo@example.com"], "to")
    assert [b.address for b in boxes] == ["ana@example.com", "bo@example.com"]
    assert boxes[0].suppression_key == "ana@example.com"


@given(st.text(min_size=1, max_size=40))
def test_any_string_is_either_a_valid_mailbox_or_refused_with_invalid_address(value):
    try:
        mailbox = parse_mailbox(value)
    except InvalidAddress:
        return
    assert "@" in mailbox.address and "\n" not in str(mailbox)

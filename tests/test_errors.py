"""Failure: the failure kinds keep the words the database stores, and ProviderError takes no other."""

from __future__ import annotations

import pytest

from arena.errors import FAILURE_CLASSES, Failure, ProviderError

STORED = (
    "timeout",
    "rate_limited",
    "refused",
    "auth",
    "client_error",
    "server_error",
    "network",
    "bad_response",
    "invalid_image",
    "empty_output",
)


def test_the_failure_kinds_are_the_stored_words_in_report_order():
    assert FAILURE_CLASSES == STORED
    assert all(type(word) is str for word in FAILURE_CLASSES)
    assert [f.value for f in Failure] == list(STORED)


@pytest.mark.parametrize("given", [Failure.REFUSED, "refused"])
def test_provider_error_keeps_a_plain_string_whichever_it_is_given(given):
    error = ProviderError(given, "policy")
    assert type(error.failure_class) is str and error.failure_class == "refused"
    assert str(error) == "refused: policy"


def test_a_misspelt_failure_class_fails_where_it_is_raised():
    with pytest.raises(ValueError, match="refuse"):
        ProviderError("refuse", "policy")

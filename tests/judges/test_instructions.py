"""The verdict parser: the JSON object however it is wrapped, a bare 1 or 2, and nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arena.errors import ProviderError
from arena.judges.instructions import MAX_REASON_CHARS, instructions_text, parse_verdict

WINNERS = {"1": "first", "2": "second", "tie": "tie", "both_bad": "both_bad"}
# Words around the object that hold no brace (a brace would start another object).
AROUND = st.text(
    st.characters(blacklist_characters="{}`", blacklist_categories=("Cs",)), max_size=40
)


@given(
    winner=st.sampled_from(sorted(WINNERS)),
    reason=st.text(max_size=80),
    before=AROUND,
    after=AROUND,
    fenced=st.booleans(),
)
def test_the_json_answer_is_read_whatever_surrounds_it(winner, reason, before, after, fenced):
    answer = json.dumps({"winner": winner, "reason": reason})
    if fenced:
        answer = f"```json\n{answer}\n```"
    verdict, said = parse_verdict(f"{before}\n{answer}\n{after}")
    assert verdict == WINNERS[winner]
    assert said == " ".join(reason.split())[:MAX_REASON_CHARS]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("1", "first"),
        (" 2.\n", "second"),
        ('"1"', "first"),
        ("Candidate 2", "second"),
        ('{"winner": 2, "reason": "r"}', "second"),
        ('{"winner": "Candidate 1"}', "first"),
        ('{"winner": "both bad", "reason": "neither"}', "both_bad"),
        ('{"winner": "TIE"}', "tie"),
    ],
)
def test_tolerated_forms(text, verdict):
    assert parse_verdict(text)[0] == verdict


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I prefer the second image.",
        "12",
        '{"winner": "3"}',
        '{"verdict": "1"}',
        '{"winner": true}',
        "1 or 2",
        '```json\n{"winner": \n```',
    ],
)
def test_anything_else_is_a_bad_response(text):
    with pytest.raises(ProviderError) as info:
        parse_verdict(text)
    assert info.value.failure_class == "bad_response"


def test_the_instructions_say_what_to_answer_for_each_task():
    edit, t2i = instructions_text("edit", 2), instructions_text("text-to-image", 0)
    assert "source images" in edit and "keeping what the prompt does not ask" in edit
    assert "source" not in t2i
    for text in (edit, t2i):
        assert '{"winner": "1" or "2" or "tie" or "both_bad", "reason": "<one sentence>"}' in text

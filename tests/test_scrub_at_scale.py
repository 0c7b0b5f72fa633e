"""The redactor at a daemon's scale: with thousands of secrets, a log line is scrubbed by looking up only the
forms whose first characters occur in it, and the result is the same as trying every form in turn."""

from __future__ import annotations

import secrets

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.vocab import sensitive
from controller.vocab.sensitive import SENSITIVE, Redactor


def naive(r: Redactor, text: str) -> str:
    """Every form, longest first, as the redactor did before it indexed them."""
    anywhere, alone, _ = r._matchers()
    for form in anywhere:
        if form in text:
            text = text.replace(form, SENSITIVE)
    return alone.sub(SENSITIVE, text) if alone is not None else text


def test_thousands_of_secrets_scrub_exactly_the_ones_in_the_text() -> None:
    r = Redactor()
    values = [secrets.token_urlsafe(18) for _ in range(3000)]
    for v in values:
        r.add(v)
    assert len(r._matchers()[0]) > sensitive._INDEX_FROM   # the indexed path is the one taken
    text = f'PutParameter /app/{values[7]} failed: "{values[2999]}" {values[100].encode()!r} %s' % values[5][:10]
    out = r.scrub(text)
    assert values[7] not in out and values[2999] not in out and values[100] not in out
    assert values[5][:10] in out          # a fragment of a secret is no form of it: left as it is
    assert out == naive(r, text)


words = st.text(alphabet="abcdefgh/=+\"'<&\\ \n", min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(secret_list=st.lists(st.text(alphabet="abcdefgh/=+\"'<&\\", min_size=8, max_size=16), min_size=1,
                            max_size=40), glue=st.lists(words, min_size=1, max_size=6), picks=st.lists(st.integers(0, 39)))
def test_the_indexed_scrub_equals_trying_every_form(secret_list, glue, picks) -> None:
    r = Redactor()
    for v in secret_list:
        r.add(v)
    for i in range(300):              # enough unrelated secrets to take the indexed path
        r.add(f"unrelated-secret-{i:04d}-xyz")
    chosen = [secret_list[p % len(secret_list)] for p in picks]
    text = "".join(g + (chosen[i] if i < len(chosen) else "") for i, g in enumerate(glue))
    assert r.scrub(text) == naive(r, text)
    for v in chosen:
        assert v not in r.scrub(text)


def test_a_secret_that_a_replacement_completes_is_still_scrubbed() -> None:
    """A form may occur only once a longer one was replaced by the marker, its first characters being the
    marker's: trying every form in turn replaces it, so the index must find it too, or it is printed."""
    r = Redactor()
    for i in range(300):              # enough unrelated secrets to take the indexed path
        r.add(f"unrelated-secret-{i:04d}-xyz")
    first = secrets.token_urlsafe(40)
    canary = secrets.token_urlsafe(16)
    second = "value)" + canary          # a value may hold any characters, the marker's too
    r.add(first)
    r.add(second)
    text = f"echoed {first}{canary} back"
    assert naive(r, text) == f"echoed (sensitive {SENSITIVE} back"
    out = r.scrub(text)
    assert second not in out
    assert out == naive(r, text)


marker_words = st.text(alphabet="(sensitive value)xy", min_size=0, max_size=30)


@settings(max_examples=150, deadline=None)
@given(secret_list=st.lists(st.text(alphabet="(sensitive value)xy", min_size=8, max_size=24), min_size=1,
                            max_size=20), glue=st.lists(marker_words, min_size=1, max_size=6),
       picks=st.lists(st.integers(0, 19)))
def test_the_indexed_scrub_equals_trying_every_form_with_the_markers_characters(secret_list, glue, picks) -> None:
    r = Redactor()
    for v in secret_list:
        r.add(v)
    for i in range(300):
        r.add(f"unrelated-secret-{i:04d}-xyz")
    chosen = [secret_list[p % len(secret_list)] for p in picks]
    text = "".join(g + (chosen[i] if i < len(chosen) else "") for i, g in enumerate(glue))
    assert r.scrub(text) == naive(r, text)

"""Per-object backoff of the daemon: exponential with jitter, capped, reset on success; terminal waits for a change."""

from __future__ import annotations

import pytest

from controller.daemon.backoff import BASE, CAP, Backoff, fingerprint, is_terminal, wait_seconds


@pytest.mark.parametrize("failures", [1, 2, 3, 5, 8, 12, 40])
def test_wait_grows_exponentially_with_equal_jitter_and_is_capped(failures):
    ceiling = min(BASE * 2 ** (failures - 1), CAP)
    for _ in range(50):
        assert ceiling / 2 <= wait_seconds(failures) <= ceiling


def test_wait_is_jittered():
    assert len({round(wait_seconds(3), 6) for _ in range(20)}) > 1


@pytest.mark.parametrize("code, terminal", [
    ("AccessDeniedException", True), ("ValidationException", True), ("MalformedPolicyDocument", True),
    ("ThrottlingException", False), ("InternalError", False), ("SomethingNew", False), (None, False),
])
def test_terminal_errors_are_told_from_transient_ones(code, terminal):
    assert is_terminal(code) is terminal


def test_transient_failure_waits_then_allows_and_success_resets():
    b = Backoff()
    assert b.allows("Parameter/a", "fp", now=0)
    entry = b.failed("Parameter/a", "fp", terminal=False, now=100)
    assert BASE / 2 <= entry.retry_at - 100 <= BASE
    assert not b.allows("Parameter/a", "fp", now=101)
    assert b.allows("Parameter/a", "fp", now=entry.retry_at)
    assert b.next_retry() == entry.retry_at
    second = b.failed("Parameter/a", "fp", terminal=False, now=200)
    assert second.failures == 2 and BASE <= second.retry_at - 200 <= 2 * BASE
    b.reset("Parameter/a")
    assert b.allows("Parameter/a", "fp", now=0) and b.next_retry() is None


def test_terminal_failure_is_retried_only_when_the_fingerprint_changes():
    b = Backoff()
    entry = b.failed("Role/r", "v1", terminal=True, now=0)
    assert entry.retry_at is None and b.next_retry() is None
    assert not b.allows("Role/r", "v1", now=10 ** 9)
    assert b.allows("Role/r", "v2", now=1)


def test_a_changed_object_is_retried_at_once_even_while_backing_off():
    b = Backoff()
    b.failed("Parameter/a", "v1", terminal=False, now=0)
    assert b.allows("Parameter/a", "v2", now=0.1)


def test_objects_that_left_the_manifests_are_forgotten():
    b = Backoff()
    b.failed("Parameter/a", "x", terminal=False, now=0)
    b.failed("Parameter/b", "x", terminal=True, now=0)
    b.forget_except({"Parameter/b"})
    assert set(b.entries) == {"Parameter/b"}


def test_fingerprint_is_stable_and_sensitive_to_content():
    assert fingerprint({"a": 1, "b": [1, 2]}, [("x", None, 1)]) == fingerprint({"b": [1, 2], "a": 1}, [("x", None, 1)])
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})

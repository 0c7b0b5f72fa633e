"""Shared fixtures: moto's HTTP server on 127.0.0.1 and an AWS environment that points at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from awsserver import TEST_ENV, UNSET_ENV, MotoHandle, start_moto
from controller.sandbox import faithful

# Every moto in the tests, in-process mock_aws or the threaded server, answers as AWS does where it
# matters to us; see controller/sandbox/faithful.py for what that covers and where each rule comes from.
faithful.install()


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """``assert canary not in out`` that fails must not print the canary, nor the text it was found in: say
    only where it stood. (Every secret test asserts this way; pytest would otherwise show both strings.)"""
    if op == "not in" and isinstance(left, str) and isinstance(right, str):
        at = right.find(left)
        return [f"a value of {len(left)} characters was found in a text of {len(right)}, at offset {at} "
                "(neither shown: either may hold a secret)"]
    return None


@pytest.fixture(autouse=True)
def _faithful_defaults() -> Iterator[None]:
    """A test that changes how soon deployments settle changes it for itself only."""
    yield
    faithful.configure()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoHandle]:
    """One moto server for the whole session; ``aws_env`` resets it per test."""
    handle = start_moto()
    yield handle
    handle.stop()


@pytest.fixture
def aws_env(moto_server: MotoHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty moto and AWS_* variables that send every boto3 client to it; yields its URL."""
    moto_server.reset()
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    yield moto_server.url

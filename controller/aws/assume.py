"""An ``Aws`` for each Target of a fleet: the controller's own credentials assume the target's role.

The credentials are botocore's own: ``AssumeRoleCredentialFetcher`` (the fetcher behind botocore's
``AssumeRoleProvider``, i.e. a profile's ``role_arn``/``source_profile``) wrapped in
``DeferredRefreshableCredentials``, handed to a botocore session through its ``credential_provider``
component (``CredentialResolver``/``CredentialProvider``, as botocore.credentials builds its own chain).
So the first AssumeRole happens at the first call that needs it (a target that cannot be assumed fails
there, with STS's reason), and the credentials refresh themselves before they expire, mid-reconcile too —
no credential cache of ours. The source credentials are the controller's own session's (env, profile,
IRSA, ECS task role: whatever the base ``Aws`` resolved, refreshing as they do).

AWS throttles per account and Region, so each (account, Region) gets a rate limiter of its own, with the
limits the controller was given; targets that share an account and Region share it.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.session
from botocore.credentials import (AssumeRoleCredentialFetcher, CredentialProvider, CredentialResolver,
                                  DeferredRefreshableCredentials)

from controller.aws import ratelimit
from controller.aws.session import Aws
from controller.manifests.fleet import Target, session_name
from controller.vocab.problems import ControllerError


class _Assumed(CredentialProvider):
    METHOD = "assume-role"
    CANONICAL_NAME = "ecs-secrets-target"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


class Limiters:
    """One ``RateLimiter`` per (account, Region), with the base limiter's limits."""

    def __init__(self, base: ratelimit.RateLimiter) -> None:
        self.base, self._by_place, self._lock = base, {}, threading.Lock()
        self._by_place: dict[tuple[str, str], ratelimit.RateLimiter]

    def of(self, account: str, region: str) -> ratelimit.RateLimiter:
        with self._lock:
            if (account, region) not in self._by_place:
                limiter = ratelimit.RateLimiter(self.base.limits)
                limiter.on_wait = self.base.on_wait
                self._by_place[(account, region)] = limiter
            return self._by_place[(account, region)]


def credentials(base: Aws, target: Target, owner: str, duration: int | None = None) -> DeferredRefreshableCredentials:
    """The target's role credentials, fetched on first use and refreshed by botocore. ``duration``: the
    DurationSeconds of each AssumeRole (STS's default, one hour, when None). botocore assumes again once
    they are within 15 minutes of expiring (``CachedCredentialFetcher``'s expiry window, the refreshable
    credentials' advisory timeout), so a long reconcile never runs into an expired token."""
    source = base.session.get_credentials()
    if source is None:
        raise ControllerError("no AWS credentials for the controller itself: it needs them to assume the "
                              f"role of target {target.name}")
    extra: dict[str, Any] = {"RoleSessionName": session_name(owner, target.session_name)}
    if target.external_id:
        extra["ExternalId"] = target.external_id
    if duration:
        extra["DurationSeconds"] = duration

    def sts(service: str, **_: Any) -> Any:
        # the controller's own STS client: the same source credentials, endpoint, retries, rate limit and
        # call counting as every other call of the controller's account
        return base.client(service)

    fetcher = AssumeRoleCredentialFetcher(sts, source, target.role_arn, extra_args=extra)
    return DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role")


def for_target(base: Aws, target: Target, owner: str, limiters: Limiters, duration: int | None = None) -> Aws:
    """An ``Aws`` in the target's account and Region; no AWS call until its first client call."""
    core = botocore.session.Session()
    resolver = CredentialResolver([_Assumed(credentials(base, target, owner, duration))])
    core.register_component("credential_provider", resolver)
    session = boto3.session.Session(botocore_session=core, region_name=target.region)
    aws = Aws(region=target.region, endpoint_url=base.endpoint_url, session=session)
    aws.limiter = limiters.of(target.account, target.region)
    if base.guard is not None:
        aws.set_guard(base.guard)
    return aws

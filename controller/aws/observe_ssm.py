"""Parameter Store reads: what exists, what we own, and the values to compare, in as few calls as SSM allows.

Owned and in sync: one tag-filtered DescribeParameters listing per desired tag set (50 a page);
the rest by name, 50 a call; values (GetParameters with decryption, 10 a call) only of what exists,
fetched while the listings stream on. In the daemon (``aws.known``), not even those: a parameter whose
version has not moved since this process read or wrote it, and whose wanted value is the one it knew,
is not decrypted again (``known``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any, Callable, Iterable, Mapping

from controller.aws.known import KnownValues
from controller.core.desired import OWNER_TAG, RegionReads
from controller.core.state import ActualParameter
from controller.vocab.sensitive import Sensitive

READ_WORKERS = 4  # GetParameters batches in flight; the rate limiter keeps us under AWS's quota


def chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def read_parameters(aws: Any, region: str, n: RegionReads, owner: str,
                    wanted: Mapping[str, Sensitive] | None = None) -> tuple[list, list]:
    """Owned and in sync: one tag-filtered listing per desired tag set. The rest (absent, not ours, tags
    drifted): DescribeParameters by name, 50 a call. Values (GetParameters, 10 a call) only of what exists.
    ``wanted``: metadata.name → the value the manifest asks for, for ``aws.known`` to vouch for."""
    ssm = aws.client("ssm", region)
    known = getattr(aws, "known", None) if wanted is not None else None
    with _Values(ssm, n, region, known, wanted or {}) as values:   # fetched while the listings stream on
        in_sync = _owned_in_sync(ssm, n, values.want)
        rest = sorted((set(n.declared) | n.undeclared) - set(in_sync))
        existing = {p["Name"]: p for batch in chunks(rest, 50)
                    for p in describe_parameters(ssm, [{"Key": "Name", "Option": "Equals", "Values": batch}])}
        values.want(existing)
        declared_rest = sorted(name for name in existing if name in n.declared and n.declared[name].source is not None)
        owned = set(in_sync) | {p["Name"] for batch in chunks(declared_rest, 50) for p in describe_parameters(
            ssm, [tag_filter(OWNER_TAG, owner), {"Key": "Name", "Option": "Equals", "Values": batch}])}
    metas = {**existing, **in_sync}
    found = [actual_parameter(m, region, name in owned, values.get(name), tags_in_sync=name in in_sync or name not in owned)
             for name, m in metas.items()]
    missing = {("ssm", region, name): f"SSM parameter {name} does not exist in {region}; create it or "
               "declare it as a Parameter with a value" for name in sorted(set(n.undeclared) | _unvalued(n))
               if name not in metas}
    return found, missing


def _owned_in_sync(ssm: Any, n: RegionReads, seen: Callable[[Mapping[str, dict]], None]) -> dict[str, dict]:
    """Declared parameters that carry our owner tag and every desired tag, streamed and kept by name."""
    groups: dict[tuple, set[str]] = {}
    for name, p in n.declared.items():
        if p.source is None:
            continue  # managed elsewhere: it only has to exist
        pairs = tuple(sorted(p.tags.items()))
        groups.setdefault(pairs, set()).add(name)
    found = {}
    for pairs, names in sorted(groups.items()):
        tags = [tag_filter(k, v) for k, v in pairs]
        # a subset (an event's objects) asks for its names, 50 a call: listing everything we own would cost
        # an event for one parameter the pages of all of them (200 at 10,000 parameters)
        pages = chain.from_iterable(_pages(ssm, [*tags, {"Key": "Name", "Option": "Equals", "Values": batch}])
                                    for batch in chunks(sorted(names), 50)) if n.by_name else _pages(ssm, tags)
        for page in pages:
            mine = {p["Name"]: p for p in page if p["Name"] in names}
            found.update(mine)
            seen(mine)
    return found


def _unvalued(n: RegionReads) -> set[str]:
    return {name for name, p in n.declared.items() if p.source is None}


def tag_filter(key: str, value: str) -> dict:
    return {"Key": f"tag:{key}", "Values": [value]}


def describe_parameters(ssm: Any, filters: list[dict]) -> Iterable[dict]:
    for page in _pages(ssm, filters):
        yield from page


def _pages(ssm: Any, filters: list[dict]) -> Iterable[list[dict]]:
    for page in ssm.get_paginator("describe_parameters").paginate(ParameterFilters=filters,
                                                                   PaginationConfig={"PageSize": 50}):
        yield page["Parameters"]


class _Values:
    """GetParameters (with decryption, 10 names a call) of the names ``want``ed, sent as batches fill;
    with ``known``, only of those it cannot vouch for."""

    def __init__(self, ssm: Any, n: RegionReads, region: str = "", known: KnownValues | None = None,
                 wanted: Mapping[str, Sensitive] | None = None) -> None:
        self.ssm, self.n, self.region, self.known, self.wanted = ssm, n, region, known, wanted or {}
        self._pool = ThreadPoolExecutor(READ_WORKERS)
        self._batch: list[str] = []
        self._futures: list = []
        self._asked: set[str] = set()
        self.found: dict[str, Sensitive] = {}

    def want(self, metas: Mapping[str, dict]) -> None:
        for name, meta in metas.items():
            p = self.n.declared.get(name)
            if p is None or not p.compares_value or name in self._asked:
                continue
            self._asked.add(name)
            value = self.wanted.get(p.obj.name)
            if self.known is not None and value is not None and self.known.holds(self.region, meta, value):
                self.found[name] = self._held(name, meta["Type"], value.reveal())
                continue
            self._batch.append(name)
            if len(self._batch) == 10:
                self._send()

    def _send(self) -> None:
        if self._batch:
            self._futures.append(self._pool.submit(self._get, self._batch))
            self._batch = []

    def _get(self, names: list[str]) -> dict[str, Sensitive]:
        found = self.ssm.get_parameters(Names=names, WithDecryption=True)["Parameters"]
        if self.known is not None:   # by this reply's own Version: a write since the listing is no matter
            for p in found:
                self.known.read(self.region, p, self.wanted.get(self.n.declared[p["Name"]].obj.name))
        return {p["Name"]: self._held(p["Name"], p.get("Type"), p["Value"]) for p in found}

    def _held(self, name: str, type_: str | None, value: str) -> Sensitive:
        # a value is shown only when it is a String now and the manifest says it is a literal String;
        # one that is a SecureString (decrypted here) is a secret whatever the manifest says
        return Sensitive(value, secret=type_ == "SecureString" or not self.n.declared[name].literal)

    def get(self, name: str) -> Sensitive | None:
        return self.found.get(name)

    def __enter__(self) -> _Values:
        return self

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        try:
            if exc_type is None:   # after a failed listing, its error is the one to report
                self._send()
                for future in self._futures:
                    self.found.update(future.result())
        finally:
            self._pool.shutdown(cancel_futures=True)


def actual_parameter(meta: dict, region: str, owned: bool, value: Sensitive | None,
               tags_in_sync: bool = True) -> ActualParameter:
    return ActualParameter(name=meta["Name"], region=region, type=meta["Type"],
                           key_id=meta.get("KeyId") if meta["Type"] == "SecureString" else None,
                           tier=meta.get("Tier", "Standard"), description=meta.get("Description"),
                           version=meta.get("Version", 0), owned=owned, value=value, tags_in_sync=tags_in_sync)



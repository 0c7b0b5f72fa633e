"""The daemon's version memory (``aws.known``) in a fleet: one per target, never one account's for another's.

``KnownValues`` vouches for a value by (Region, name), version and LastModifiedDate (the SSM API reference,
PutParameter's ``Version``; "Working with parameter versions"): the same name and version in two accounts are
two parameters, so a memory shared across accounts could call one account's parameter in sync because of the
other's. Each target's ``Aws`` has its own, kept across reloads of unchanged manifests, so a fleet's no-op pass
spares the decrypting reads as the single-account daemon does.
"""

from __future__ import annotations

import secrets

from controller import reconcile
from controller.aws.session import Aws
from controller.daemon.fleetloop import FleetDaemon
from controller.daemon.metrics import Metrics
from tests.test_fleet import A, B, EU, US, doc, make_role, target


def _daemon(path: str) -> FleetDaemon:
    d = FleetDaemon(Aws(region="us-east-1"), path, reconcile.Settings(isolate=True), 60.0, Metrics())
    d.load()
    return d


def test_each_target_has_its_own_version_memory_kept_across_reloads(aws_env, moto_server, monkeypatch, tmp_path,
                                                                    caplog, capsys):
    canary = f"canary-{secrets.token_urlsafe(12)}"
    monkeypatch.setenv("K_SECRET", canary)
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")
    moto_server.reset()
    make_role(aws_env, A)
    make_role(aws_env, B)
    params = [doc("Parameter", f"p{i}", {"name": f"/k/p{i}", "value": {"fromEnv": "K_SECRET"}}, ["a-eu", "a-us", "b-eu"])
              for i in range(3)]
    path = tmp_path / "fleet.yaml"
    path.write_text("\n---\n".join([target("a-eu", A, EU), target("a-us", A, US), target("b-eu", B, EU), *params]))
    d = _daemon(str(path))
    assert d.connections is not None
    memories = [d.connections[n].known for n in ("a-eu", "a-us", "b-eu")]
    assert all(m is not None for m in memories)
    assert len({id(m) for m in memories} | {id(d.aws.known)}) == 4   # none shared, nor the controller's own

    assert d.reconcile() == "success"            # creates them all (SecureString)
    assert d.reconcile() == "success"            # reads them back once
    for name in ("a-eu", "a-us", "b-eu"):
        d.connections[name].calls.clear()
    assert d.reconcile() == "success"            # a no-op pass: every version is known, nothing is decrypted
    for name in ("a-eu", "a-us", "b-eu"):
        reads = {k: v for k, v in d.connections[name].calls.items() if k[1] == "GetParameters"}
        assert reads == {}, (name, reads)

    before = {n: d.connections[n].known for n in ("a-eu", "b-eu")}
    d.reload()                                   # unchanged Targets keep what they know
    assert {n: d.connections[n].known for n in ("a-eu", "b-eu")} == before
    out, err = capsys.readouterr()
    assert canary not in out + err + caplog.text
    moto_server.reset()

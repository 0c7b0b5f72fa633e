"""`ecs-secrets run` for a fleet: the same daemon, each pass over every target (``controller.fleet``).

Where the daemon isolates an object, it isolates a target the same way: a target whose role cannot be
assumed (or whose observe fails) puts each of its objects in ``state="error"`` with the reason, and the
other targets converge; the next pass tries it again. The table, backoff, metrics and logs are the
daemon's own, keyed by ``Kind/name@target``; ``/status`` also lists each target and its state.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from controller import fleet as run
from controller.aws.apply import Report
from controller.aws.known import KnownValues
from controller.core import fleet as fleet_
from controller.core.desired import Desired
from controller.daemon.loop import Daemon, _ctx
from controller.daemon.status import Pass, owner_of
from controller.vocab.problems import ManifestError

log = logging.getLogger("ecs_secrets.daemon")


def factory(targets: list[str] | tuple[str, ...] = ()) -> Callable[..., Daemon]:
    """A maker of ``FleetDaemon`` limited to ``targets`` (--target; empty: all), with loop.run's arguments."""
    def make(*args: Any, **kwargs: Any) -> Daemon:
        daemon = FleetDaemon(*args, **kwargs)
        daemon.only = tuple(targets)
        return daemon
    return make


class FleetDaemon(Daemon):
    only: tuple[str, ...] = ()
    fleet: fleet_.Fleet | None = None
    connections: run.Connections | None = None
    target_state: dict[str, dict[str, Any]]

    def _read(self) -> fleet_.Fleet:
        fleet = fleet_.load(self.path, self.aws.region, self.owner)
        return fleet_.only(fleet, self.only) if self.only else fleet

    def load(self) -> None:
        self.target_state = {}
        self._use(self._read())

    def reload(self) -> None:
        self.changed = False
        try:
            fleet = self._read()
        except ManifestError as exc:
            self.manifest_error = str(exc)
            self.metrics.manifests_valid.set(0)
            log.error("the changed manifests do not validate; still reconciling the last valid ones: %s", exc,
                      extra=_ctx("load", self.path))
            return
        log.info("loaded %d objects in %d targets", len(fleet.objects), len(fleet.groups),
                 extra=_ctx("load", self.path))
        self._use(fleet)

    def _use(self, fleet: fleet_.Fleet) -> None:
        self.fleet, self.connections = fleet, run.connect(self.aws, fleet)
        # the version memory, one per Target (never one account's for another's: the same name and version
        # in two accounts are two parameters), kept across reloads while the Target stays the same
        known: dict[Any, KnownValues] = getattr(self, "_known", {})
        self._known = {t: known.get(t) or KnownValues() for t in fleet.targets.values()} \
            if self.aws.known is not None else {}
        for name, aws in self.connections.by_target.items():
            if name is not None and self._known:
                aws.known = self._known[fleet.targets[name]]
        for aws in self.connections.all():
            if aws is not self.aws:
                self.metrics.watch(aws)
        self._adopt(_bookkeeping(fleet, self.aws.region, self.owner))
        if self.inbox is not None:   # an event concerns its own account's and Region's objects
            self.inbox.index = fleet_.EventIndex(fleet)

    def reconcile(self, refs: set[str] | None = None) -> str:
        """Every target's pass; ``refs`` (a backoff's retry of some objects) runs the whole fleet's pass too."""
        assert self.fleet is not None and self.connections is not None
        result = run.make(self.fleet, self.connections, self.settings)
        owners = _rollout_owners(result)   # before the gate turns some changes into blockers
        self.rollout_owners.update(owners)
        gated: set[str] = set()
        fingerprints: dict[str, str] = {}
        for target in result.results.values():
            held, prints = self.gate(target)
            gated |= held
            fingerprints.update(prints)
        self._targets(result)
        leading = self.leading()
        for change in result.plan.changes:   # which fields, never their values
            paths = ", ".join(f.path for f in change.fields)
            log.info("%s %s: %s", change.ref, "drifted" if change.action == "update" else f"to {change.action}",
                     paths, extra=_ctx("plan", change.ref))
        report = None
        if leading:
            run.execute(result, self.connections, self.may_write, self._on_outcome,
                        rollout_timeout=self.settings.rollout_timeout)
            report = Report(result.outcomes)
        p = Pass(run.blocked_for_daemon(self.fleet, result), report, gated, fingerprints, owners)
        return self.table.record(p, self.backoff, time.monotonic(), time.time())

    def _targets(self, result: run.FleetResult) -> None:
        assert self.fleet is not None
        for name in self.fleet.groups:
            key = name or "(own account)"
            why = result.failed.get(name)
            before = self.target_state.get(key, {}).get("state")
            state = "error" if why else "ok"
            if before != state:
                log.log(logging.WARNING if why else logging.INFO, "target %s is %s%s", key, state,
                        f": {why}" if why else "", extra=_ctx("target", f"Target/{key}"))
            t = self.fleet.targets.get(name) if name else None
            self.target_state[key] = {"account": t.account if t else None, "region": t.region if t else self.aws.region,
                                      "state": state, "error": why}

    def status(self) -> dict[str, Any]:
        out = super().status()
        out["targets"] = dict(getattr(self, "target_state", {}))
        return out


def _rollout_owners(result: run.FleetResult) -> dict[str, str]:
    """A service's ref (labelled as its target's plan names it) → the TaskDefinition whose rollout it is."""
    owners = {}
    for name, target in result.results.items():
        owners.update({c.ref: owner_of(c) for c in target.plan.changes if c.kind == "Service"})
        rollouts = target.actual.rollouts if target.actual is not None else {}
        owners.update({fleet_.label(s.ref, name): td for td, r in rollouts.items() for s in r.services})
    return owners


def _bookkeeping(fleet: fleet_.Fleet, region: str, owner: str) -> Desired:
    """One Desired over every target's objects, for the daemon's table, backoff and file watch only (refs are
    unique across targets: ``Kind/name@target``); each target is planned from its own."""
    objects = tuple(o for d in fleet.groups.values() for o in d.objects)
    parameters = {(name or "",) + key: p for name, d in fleet.groups.items() for key, p in d.parameters.items()}
    return Desired(region, owner, objects, parameters, frozenset(), {})

"""``verify --service``: can the ECS agent reach the AWS endpoints it calls at task start? Pure.

Since Fargate platform version 1.4.0 every byte a task's start needs (image pull, secrets, logs) goes
through the task's own network interface, in the subnets and security groups of the service's
``awsvpcConfiguration`` (ECS Developer Guide, "Migrating to Linux platform version 1.4.0"). A task that
cannot reach them stops with ``ResourceInitializationError``, whatever IAM allows. For each subnet and
each endpoint the task needs, decided here from what ``observe_network`` read:

- the path: an interface VPC endpoint of the service in the VPC, available, with private DNS (and the
  VPC's ``enableDnsSupport`` and ``enableDnsHostnames``: CreateVpcEndpoint, PrivateDnsEnabled) — then the
  agent's call resolves to it; for S3, the gateway endpoint on the subnet's route table (ECR layers
  cannot use an S3 interface endpoint: ECR User Guide, "Amazon ECR interface VPC endpoints"); otherwise
  the subnet's route table (its explicit association, else the VPC's main table) must send 0.0.0.0/0 to
  an available public NAT gateway whose own subnet routes to an internet gateway, or to an internet
  gateway with ``assignPublicIp: ENABLED``. VPC endpoints serve their own Region only, so a secret of
  another Region needs the internet path;
- egress: one of the task's security groups allows TCP 443 to where that path leads (0.0.0.0/0 for the
  internet; the endpoint's security group or a CIDR covering its subnets; the gateway's prefix list);
- ingress: one of the interface endpoint's security groups allows TCP 443 from a task security group or
  from a CIDR covering the task's whole subnet (ECS Developer Guide, "Amazon ECS interface VPC endpoints":
  the endpoint's group must allow 443 from the private subnet). Groups referenced by other groups, network
  ACLs and firewall appliances are not followed;
- the endpoint policy, for exactly what the agent asks through it, evaluated by ``iam_eval`` with the
  statements that reach the execution role (by ARN, ``*`` or the account). Unreadable: unknown.

KMS needs no endpoint: SSM and Secrets Manager call it for the agent, inside AWS (``kms:ViaService``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from controller.verify.facts import (
    _WORST_FIRST,
    ALLOWED,
    DENIED,
    MISSING,
    UNKNOWN,
    VERDICTS,
    Need,
    Row,
    Unread,
    summary,
)
from controller.verify.iam_eval import Decision, NamedPolicy, evaluate, statements
from controller.verify.keypolicy import split_policy
from controller.vocab.arns import parse_arn

INTERNET = "0.0.0.0/0"
HTTPS = 443
# the endpoints the agent may call, in the order rows are shown
REGISTRY = "registry"  # an image registry outside AWS
SERVICES = ("ssm", "secretsmanager", "ecr.api", "ecr.dkr", "s3", "logs", REGISTRY)
_REFERENCE = "/aws/reference/secretsmanager/"  # read through SSM, which asks Secrets Manager itself
_BY_PREFIX = {"ssm": "ssm", "secretsmanager": "secretsmanager", "s3": "s3", "logs": "logs"}
_ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)")


# --- what was observed ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One IpPermission of a security group."""

    protocol: str  # "-1" (all), "tcp" or "6", …
    from_port: int | None = None
    to_port: int | None = None
    cidrs: tuple[str, ...] = ()
    prefix_lists: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def carries_https(self) -> bool:
        if self.protocol == "-1":
            return True
        if self.protocol not in ("tcp", "6"):
            return False
        low, high = self.from_port, self.to_port
        return low is None or high is None or low <= HTTPS <= high


@dataclass(frozen=True)
class Group:
    id: str
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Route:
    destination: str  # a CIDR or a prefix-list id
    target: str  # igw-…, nat-…, vpce-…, local, tgw-…, pcx-…, eni-…
    state: str = "active"  # or blackhole


@dataclass(frozen=True)
class RouteTable:
    id: str
    routes: tuple[Route, ...] = ()
    subnets: tuple[str, ...] = ()  # explicitly associated subnets
    main: bool = False


@dataclass(frozen=True)
class Endpoint:
    id: str
    service: str  # com.amazonaws.REGION.ssm
    type: str  # Interface or Gateway (CreateVpcEndpoint's default when none is given)
    state: str
    private_dns: bool = False
    route_tables: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    policy: Any = None  # dict, None (the default full-access policy) or Unread


@dataclass(frozen=True)
class Subnet:
    id: str
    vpc: str
    zone: str
    cidr: str


@dataclass(frozen=True)
class Nat:
    id: str
    state: str
    subnet: str
    public: bool = True  # ConnectivityType public; a private NAT gateway cannot reach the internet


@dataclass
class Network:
    """Each store maps to the fact, None when it does not exist, or Unread."""

    region: str
    subnets: dict[str, Any] = field(default_factory=dict)  # subnet id → Subnet
    route_tables: dict[str, Any] = field(default_factory=dict)  # VPC id → tuple[RouteTable, ...]
    endpoints: dict[str, Any] = field(default_factory=dict)  # VPC id → tuple[Endpoint, ...]
    groups: dict[str, Any] = field(default_factory=dict)  # security group id → Group
    nats: dict[str, Any] = field(default_factory=dict)  # NAT gateway id → Nat
    dns: dict[str, Any] = field(default_factory=dict)  # VPC id → (enableDnsSupport, enableDnsHostnames)
    # VPC id → the DNS servers its DHCP options give tasks (domain-name-servers); None: no option set
    resolvers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """Where a service's tasks run, from DescribeServices."""

    service: str  # CLUSTER/NAME
    task_definition: str  # family:revision
    role_arn: str | None  # the execution role
    network_mode: str  # of the task definition
    fargate: bool | None  # None: a capacity provider strategy verify cannot resolve
    subnets: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    public_ip: bool = False


# --- what the agent asks, of which endpoint ---------------------------------------------------


@dataclass(frozen=True)
class Call:
    """An endpoint the agent calls (SERVICE in REGION), and the requests it sends there. ``registry``: an
    image registry outside AWS (``host``), which only the internet path reaches."""

    service: str
    region: str
    needs: tuple[Need, ...]
    host: str = ""


def _resource_region(need: Need, default: str) -> str:
    arn = parse_arn(need.resource)
    return arn.region if arn is not None and arn.region else default


def calls(body: Mapping[str, Any], rows: Sequence[Row], region: str, account: str, partition: str) -> list[Call]:
    """The endpoints a task of ``body`` needs: SSM and Secrets Manager for the secrets it reads, S3 for
    its environment files, Logs for awslogs, ECR (api, dkr, and S3 for the layers) for an ECR image."""
    found: dict[tuple[str, str], list[Need]] = {}

    def add(service: str, where: str, need: Need) -> None:
        held = found.setdefault((service, where), [])
        if need not in held:
            held.append(need)

    registries: set[str] = set()
    for row in rows:
        for need in row.needs:
            service = _BY_PREFIX.get(need.action.split(":", 1)[0])
            if service == "secretsmanager" and _REFERENCE in row.target.source:
                continue  # the agent calls SSM only
            if service:  # kms:Decrypt is called by SSM / Secrets Manager, not by the agent
                where = region if service == "s3" else _resource_region(need, region)
                add(service, where, need)
    for container in body.get("containerDefinitions") or ():
        image = _ECR_IMAGE.match(str(container.get("image") or ""))
        host = _registry(str(container.get("image") or ""))
        if not image and host:
            registries.add(host)
        if image:
            owner, where, repository = image.groups()
            repo = f"arn:{partition}:ecr:{where}:{owner}:repository/{repository}"
            add("ecr.api", where, Need("ecr:GetAuthorizationToken", "*", {"aws:RequestedRegion": where}))
            for action in ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"):
                add("ecr.dkr", where, Need(action, repo, {"aws:RequestedRegion": where}))
            # the layers: ECR User Guide, "Minimum Amazon S3 bucket permissions for Amazon ECR"
            add("s3", where, Need("s3:GetObject", f"arn:{partition}:s3:::prod-{where}-starport-layer-bucket/layer",
                                  {}))
        logging = container.get("logConfiguration") or {}
        if logging.get("logDriver") == "awslogs":
            options = logging.get("options") or {}
            group, where = options.get("awslogs-group"), options.get("awslogs-region") or region
            if group:
                stream = "/".join(p for p in (options.get("awslogs-stream-prefix"), container.get("name"), "TASK_ID")
                                  if p)
                arn = f"arn:{partition}:logs:{where}:{account}:log-group:{group}:log-stream:{stream}"
                for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
                    add("logs", where, Need(action, arn, {"aws:RequestedRegion": where}))
    order = {s: i for i, s in enumerate(SERVICES)}
    out = [Call(s, r, tuple(n)) for (s, r), n in sorted(found.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]
    return out + [Call(REGISTRY, region, (), host) for host in sorted(registries)]


def _registry(image: str) -> str | None:
    """The registry host of an image reference, as Docker reads it: the first part when it has a dot or a
    port or is localhost, else Docker Hub. None for an empty image."""
    if not image:
        return None
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "registry-1.docker.io"


# --- rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetRow:
    service: str  # CLUSTER/NAME
    subnet: str
    endpoint: str  # "ssm", "ecr.dkr", … ("ssm (eu-west-1)" for another Region); "-" for the whole service
    check: str  # route, egress 443, endpoint ingress 443, endpoint policy, network
    verdict: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"service": self.service, "subnet": self.subnet, "endpoint": self.endpoint, "check": self.check,
                "verdict": self.verdict, "reason": self.reason}


def net_summary(rows: Sequence[NetRow]) -> dict[str, int]:
    return {v: sum(r.verdict == v for r in rows) for v in VERDICTS}


def exit_code(rows: Sequence[Row], net: Sequence[NetRow]) -> int:
    counts, more = summary(rows), net_summary(net)
    if any(counts[v] + more[v] for v in (DENIED, MISSING)):
        return 1
    return 3 if counts[UNKNOWN] + more[UNKNOWN] else 0


# --- the decisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """How traffic for one endpoint leaves a subnet: its verdict, and where egress must be allowed."""

    verdict: str
    reason: str
    kind: str = ""  # "internet", "interface", "gateway"
    endpoint: Endpoint | None = None
    prefix_list: str | None = None  # the gateway endpoint's route destination


def _route_table(subnet: Subnet, tables: Sequence[RouteTable]) -> RouteTable | None:
    explicit = next((t for t in tables if subnet.id in t.subnets), None)
    return explicit or next((t for t in tables if t.main), None)


def _default_route(table: RouteTable) -> Route | None:
    return next((r for r in table.routes if r.destination == INTERNET), None)


def _internet(subnet: Subnet, table: RouteTable, tables: Sequence[RouteTable], place: Placement, net: Network,
              why_not_endpoint: str, endpoint_fix: bool = True) -> Path:
    route = _default_route(table)
    if route is None:
        fix = "route 0.0.0.0/0 to a NAT gateway" + (" or add the VPC endpoint" if endpoint_fix else "")
        return Path(MISSING, f"no route to 0.0.0.0/0 in {table.id} and {why_not_endpoint}: the agent cannot reach "
                    f"it; {fix}")
    if route.state != "active":
        return Path(DENIED, f"the route to 0.0.0.0/0 in {table.id} is {route.state}")
    if route.target.startswith("nat-"):
        return _through_nat(route.target, table, tables, net)
    if route.target.startswith("igw-"):
        if place.public_ip:
            return Path(ALLOWED, f"internet gateway {route.target} ({table.id}), with a public IP", "internet")
        return Path(DENIED, f"{table.id} routes 0.0.0.0/0 to internet gateway {route.target}, but assignPublicIp is "
                    "DISABLED: without a public IP the task cannot use it; enable it, or route through a NAT "
                    "gateway" + (", or add VPC endpoints" if endpoint_fix else ""))
    return Path(UNKNOWN, f"{table.id} routes 0.0.0.0/0 to {route.target}: verify does not follow transit gateways, "
                "peering or appliances")


def _through_nat(nat_id: str, table: RouteTable, tables: Sequence[RouteTable], net: Network) -> Path:
    nat = net.nats.get(nat_id)
    if isinstance(nat, Unread):
        return Path(UNKNOWN, f"cannot read NAT gateway {nat_id}: {nat.reason}")
    if nat is None:
        return Path(DENIED, f"{table.id} routes 0.0.0.0/0 to NAT gateway {nat_id}, which does not exist")
    if nat.state != "available":
        return Path(DENIED, f"NAT gateway {nat_id} ({table.id}) is {nat.state}, not available")
    if not nat.public:
        return Path(DENIED, f"NAT gateway {nat_id} ({table.id}) is private: it cannot reach AWS's public endpoints")
    home = net.subnets.get(nat.subnet)
    if not isinstance(home, Subnet):
        return Path(UNKNOWN, f"cannot read subnet {nat.subnet} of NAT gateway {nat_id}, nor so its route onward")
    outer = _route_table(home, tables)
    onward = _default_route(outer) if outer is not None else None
    if onward is None or not onward.target.startswith("igw-") or onward.state != "active":
        where = outer.id if outer is not None else f"the route table of {nat.subnet}"
        return Path(DENIED, f"NAT gateway {nat_id} sits in {nat.subnet}, whose {where} has no active route from "
                    "0.0.0.0/0 to an internet gateway")
    return Path(ALLOWED, f"NAT gateway {nat_id} ({table.id})", "internet")


def _endpoint_name(call: Call) -> str:
    return f"com.amazonaws.{call.region}.{call.service}"


def path(subnet: Subnet, call: Call, place: Placement, net: Network) -> Path:
    tables = net.route_tables.get(subnet.vpc)
    if isinstance(tables, Unread):
        return Path(UNKNOWN, f"cannot read the route tables of {subnet.vpc}: {tables.reason}")
    table = _route_table(subnet, tables or ())
    if table is None:
        return Path(UNKNOWN, f"{subnet.vpc} has no route table for {subnet.id}")
    if call.service == REGISTRY:
        return _internet(subnet, table, tables, place, net, f"{call.host} is outside AWS: no VPC endpoint reaches it",
                         endpoint_fix=False)
    if call.region != net.region:
        why = f"VPC endpoints do not serve another Region ({call.region})"
        return _internet(subnet, table, tables, place, net, why)
    endpoints = net.endpoints.get(subnet.vpc)
    if isinstance(endpoints, Unread):
        return Path(UNKNOWN, f"cannot read the VPC endpoints of {subnet.vpc}: {endpoints.reason}")
    name = _endpoint_name(call)
    mine = [e for e in endpoints or () if e.service == name and e.state.lower() == "available"]
    if call.service == "s3":
        gateway = next((e for e in mine if e.type == "Gateway" and table.id in e.route_tables), None)
        if gateway is not None:
            listed = next((r.destination for r in table.routes if r.target == gateway.id), None)
            return Path(ALLOWED, f"S3 gateway endpoint {gateway.id} ({table.id})", "gateway", gateway, listed)
        why = f"no S3 gateway endpoint on {table.id}"
        return _internet(subnet, table, tables, place, net, why)
    interface = [e for e in mine if e.type == "Interface"]
    dns = net.dns.get(subnet.vpc)
    usable = next((e for e in interface if e.private_dns), None)
    if usable is not None:
        if isinstance(dns, Unread):
            return Path(UNKNOWN, f"cannot read the DNS attributes of {subnet.vpc}: {dns.reason}")
        if dns is not None and all(dns):
            custom = _custom_resolvers(net.resolvers.get(subnet.vpc), subnet.vpc)
            if custom:
                return Path(UNKNOWN, custom)
            return Path(ALLOWED, f"interface endpoint {usable.id}", "interface", usable)
        why = (f"interface endpoint {usable.id} has private DNS, but {subnet.vpc} has enableDnsSupport or "
               "enableDnsHostnames off, so the service's name does not resolve to it")
    elif interface:
        why = (f"interface endpoint {interface[0].id} has private DNS off: the agent calls the service's public "
               "name, which does not resolve to it")
    else:
        pending = [e for e in endpoints or () if e.service == name]
        why = (f"endpoint {pending[0].id} for {name} is {pending[0].state}" if pending
               else f"no VPC endpoint for {name}")
    return _internet(subnet, table, tables, place, net, why)


AMAZON_DNS = "AmazonProvidedDNS"


def _custom_resolvers(servers: Any, vpc: str) -> str | None:
    """Why private DNS may not reach the task: its DHCP options name DNS servers other than the Route 53
    Resolver, and only that resolver answers an endpoint's private name (VPC User Guide, "DHCP option sets":
    AmazonProvidedDNS; PrivateLink Guide, "Manage DNS names": custom servers must forward to it)."""
    if isinstance(servers, Unread):
        return f"cannot read the DHCP options of {vpc}: {servers.reason}"
    if servers is None or AMAZON_DNS in servers:
        return None
    named = ", ".join(servers) or "no DNS server"
    return (f"the DHCP options of {vpc} give tasks {named}, not {AMAZON_DNS}: the endpoint's private name "
            "resolves only if those servers forward to the Route 53 Resolver, which verify cannot see")


def _group(net: Network, group_id: str) -> Group | Unread | None:
    return net.groups.get(group_id)


def _contains(outer: str, inner: str) -> bool | None:
    """Whether CIDR ``outer`` covers all of ``inner``; None when it covers part of it."""
    try:
        a, b = ipaddress.ip_network(outer, strict=False), ipaddress.ip_network(inner, strict=False)
    except ValueError:
        return False
    if a.version != b.version:
        return False
    if b.subnet_of(a):
        return True
    return None if a.overlaps(b) else False


def _public(cidrs: Iterable[str]) -> list[str]:
    out = []
    for cidr in cidrs:
        try:
            if not ipaddress.ip_network(cidr, strict=False).is_private:
                out.append(cidr)
        except ValueError:
            continue
    return out


def _groups(ids: Iterable[str], net: Network, whose: str) -> tuple[list[Group], list[str]]:
    """The readable groups, and the problems with the rest (unknown or missing)."""
    found, problems = [], []
    for gid in ids:
        group = _group(net, gid)
        if isinstance(group, Unread):
            problems.append(f"cannot read {whose} security group {gid}: {group.reason}")
        elif group is None:
            problems.append(f"{whose} security group {gid} does not exist")
        else:
            found.append(group)
    return found, problems


def egress(route: Path, subnet: Subnet, place: Placement, net: Network) -> tuple[str, str]:
    groups, problems = _groups(place.groups, net, "the task's")
    if not place.groups:
        return UNKNOWN, "the service names no security group (ECS then uses the VPC's default group, not read)"
    targets: list[str] = []
    if route.kind == "interface" and route.endpoint is not None:
        found = [net.subnets.get(i) for i in route.endpoint.subnets]
        targets = [s.cidr for s in found if isinstance(s, Subnet)]
        if len(targets) < len(found):
            problems.append(f"cannot read every subnet of endpoint {route.endpoint.id}")
    for group in groups:
        for rule in group.egress:
            if not rule.carries_https():
                continue
            if INTERNET in rule.cidrs:
                return ALLOWED, f"{group.id} allows TCP 443 to 0.0.0.0/0"
            if route.kind == "interface" and route.endpoint is not None:
                shared = set(rule.groups) & set(route.endpoint.groups)
                if shared:
                    return ALLOWED, f"{group.id} allows TCP 443 to the endpoint's group {min(shared)}"
                if targets and all(any(_contains(c, t) for c in rule.cidrs) for t in targets):
                    return ALLOWED, f"{group.id} allows TCP 443 to {', '.join(rule.cidrs)}, the endpoint's subnets"
            if route.kind == "gateway" and route.prefix_list and route.prefix_list in rule.prefix_lists:
                return ALLOWED, f"{group.id} allows TCP 443 to prefix list {route.prefix_list}"
            if route.kind in ("internet", "gateway") and (rule.prefix_lists or _public(rule.cidrs)):
                # an AWS-managed prefix list or a public range may cover the service's addresses, or not: a
                # gateway endpoint's traffic goes to S3's public addresses too, its prefix list is only their list
                problems.append(f"{group.id} allows TCP 443 only to {', '.join(rule.prefix_lists + rule.cidrs)}: "
                                "verify cannot tell whether that covers the service's public addresses")
    if problems:
        return UNKNOWN, "; ".join(problems)
    where = {"interface": f"endpoint {route.endpoint.id if route.endpoint else ''} (its security group or a CIDR "
                          "covering its subnets)",
             "gateway": f"the S3 prefix list {route.prefix_list or ''} or 0.0.0.0/0",
             "internet": "0.0.0.0/0 (AWS's public endpoints have no fixed addresses)"}[route.kind]
    return DENIED, f"no egress rule of {', '.join(place.groups)} allows TCP 443 to {where}"


def ingress(endpoint: Endpoint, subnet: Subnet, place: Placement, net: Network) -> tuple[str, str]:
    if not endpoint.groups:
        return UNKNOWN, (f"endpoint {endpoint.id} lists no security group (AWS attaches the VPC's default group; "
                         "not read)")
    groups, problems = _groups(endpoint.groups, net, "the endpoint's")
    partial = None
    for group in groups:
        for rule in group.ingress:
            if not rule.carries_https():
                continue
            shared = set(rule.groups) & set(place.groups)
            if shared:
                return ALLOWED, f"{group.id} allows TCP 443 from the task's group {min(shared)}"
            for cidr in rule.cidrs:
                covers = _contains(cidr, subnet.cidr)
                if covers:
                    return ALLOWED, f"{group.id} allows TCP 443 from {cidr}, which covers {subnet.id} ({subnet.cidr})"
                if covers is None:
                    partial = f"{group.id} allows TCP 443 from {cidr}, only part of {subnet.id} ({subnet.cidr})"
    if problems:
        return UNKNOWN, "; ".join(problems)
    if partial:
        return UNKNOWN, partial + ": depends on the address the task gets"
    return DENIED, (f"no ingress rule of {', '.join(endpoint.groups)} (endpoint {endpoint.id}) allows TCP 443 from "
                    f"the task's groups or {subnet.cidr}")


def endpoint_policy(endpoint: Endpoint, call: Call, place: Placement, account: str, partition: str,
                    vpc: str) -> tuple[str, str]:
    """Only what the endpoint's policy says: it never grants, it can only stop (VPC User Guide,
    "Control access to VPC endpoints using endpoint policies"); no policy is the default full access."""
    if isinstance(endpoint.policy, Unread):
        return UNKNOWN, f"cannot read the policy of {endpoint.id}: {endpoint.policy.reason}"
    if endpoint.policy is None:
        return ALLOWED, f"{endpoint.id} has the default full-access policy"
    role = place.role_arn or ""
    name = f"endpoint policy of {endpoint.id}"
    bare = [i for i, s in enumerate(statements(endpoint.policy), start=1)
            if not isinstance(s, dict) or ("Principal" not in s and "NotPrincipal" not in s)]
    if bare:
        return UNKNOWN, f"statement #{bare[0]} of the {name} names no Principal (an endpoint policy must)"
    split = split_policy(endpoint.policy, name, role, account, partition)
    # A gateway endpoint's policy names principals only by "*" (and aws:PrincipalArn): there an account
    # principal means its root user alone, not its roles (VPC User Guide, "Principals for gateway endpoints").
    parts = split if endpoint.type != "Gateway" else split[:2]
    reaching = [s for part in parts for s in statements(part.document)]
    policy = NamedPolicy(name, {"Version": endpoint.policy.get("Version") if isinstance(endpoint.policy, dict)
                                else None, "Statement": list({id(s): s for s in reaching}.values())})
    found: list[tuple[str, str]] = []
    for need in call.needs:
        request = need.request(role, account)
        request = replace(request, context={**request.context, "aws:SourceVpce": endpoint.id, "aws:SourceVpc": vpc})
        verdict = evaluate([policy], request)
        if verdict.decision == Decision.EXPLICIT_DENY:
            found.append((DENIED, f"{need.action} on {need.resource}: {verdict.reason}"))
        elif verdict.decision == Decision.IMPLICIT_DENY:
            found.append((DENIED, f"the {name} does not allow {need.action} on {need.resource}"))
        elif verdict.decision == Decision.UNKNOWN:
            found.append((UNKNOWN, f"{need.action} on {need.resource}: {verdict.reason}"))
    for worst in _WORST_FIRST:
        reasons = [r for v, r in found if v == worst]
        if reasons:
            return worst, "; ".join(reasons)
    return ALLOWED, f"the {name} allows {', '.join(sorted({n.action for n in call.needs}))}"


def _label(call: Call, region: str) -> str:
    if call.service == REGISTRY:
        return f"registry {call.host}"
    return call.service if call.region == region else f"{call.service} ({call.region})"


def decide(place: Placement, call_list: Sequence[Call], net: Network, account: str, partition: str) -> list[NetRow]:
    """One row per subnet, endpoint and check; the whole service in one row when its path is not the
    task's (no awsvpc, or tasks on EC2 container instances)."""
    def whole(verdict: str, reason: str) -> list[NetRow]:
        return [NetRow(place.service, "-", "-", "network", verdict, reason)]

    if place.network_mode != "awsvpc":
        return whole(UNKNOWN, f"network mode {place.network_mode}: the agent uses the container instance's network, "
                     "which verify does not read")
    if place.fargate is False:
        return whole(UNKNOWN, "tasks on EC2 container instances: the agent pulls images and secrets over the "
                     "instance's network, not the task's subnets; verify does not read it")
    if place.fargate is None:
        return whole(UNKNOWN, "a capacity provider strategy verify cannot resolve to Fargate or EC2")
    if not place.subnets:
        return whole(MISSING, "the service has no awsvpcConfiguration subnets")
    if not call_list:
        return whole(ALLOWED, "the task reads nothing at start that needs an AWS endpoint")
    out: list[NetRow] = []
    for subnet_id in place.subnets:
        subnet = net.subnets.get(subnet_id)
        if not isinstance(subnet, Subnet):
            reason = (f"cannot read subnet {subnet_id}: {subnet.reason}" if isinstance(subnet, Unread)
                      else f"subnet {subnet_id} does not exist")
            out.append(NetRow(place.service, subnet_id, "-", "subnet", UNKNOWN if subnet else MISSING, reason))
            continue
        dns = net.dns.get(subnet.vpc)
        if isinstance(dns, tuple) and not dns[0]:
            out.append(NetRow(place.service, subnet_id, "-", "dns", DENIED, f"{subnet.vpc} has enableDnsSupport "
                              "off: the task cannot resolve any AWS endpoint"))
            continue
        for call in call_list:
            label = _label(call, net.region)
            route = path(subnet, call, place, net)
            out.append(NetRow(place.service, subnet_id, label, "route", route.verdict, route.reason))
            if route.verdict != ALLOWED:
                continue
            verdict, reason = egress(route, subnet, place, net)
            out.append(NetRow(place.service, subnet_id, label, "egress 443", verdict, reason))
            if route.kind == "interface" and route.endpoint is not None:
                verdict, reason = ingress(route.endpoint, subnet, place, net)
                out.append(NetRow(place.service, subnet_id, label, "endpoint ingress 443", verdict, reason))
            if route.endpoint is not None:
                verdict, reason = endpoint_policy(route.endpoint, call, place, account, partition, subnet.vpc)
                out.append(NetRow(place.service, subnet_id, label, "endpoint policy", verdict, reason))
    return out

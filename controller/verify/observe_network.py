"""The reads behind ``verify --service``: the service, its task definition, and the VPC its tasks run in.

Read-only: ecs:DescribeServices, ecs:DescribeTaskDefinition, and the EC2 Describe calls (subnets, route
tables, NAT gateways, VPC endpoints with their policies, security groups, two VPC attributes, the VPC's
DHCP option set). Each VPC is
read once however many subnets or services use it. What cannot be read becomes ``Unread``: unknown rows.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from controller.aws.session import Aws, error_code
from controller.verify.facts import Row, Unread
from controller.verify.network import (
    Endpoint,
    Group,
    Nat,
    NetRow,
    Network,
    Placement,
    Route,
    RouteTable,
    Rule,
    Subnet,
    calls,
    decide,
)
from controller.vocab.problems import ControllerError

FARGATE_PROVIDERS = frozenset({"FARGATE", "FARGATE_SPOT"})


def service(aws: Aws, ref: str) -> tuple[Placement, dict]:
    """The service ``CLUSTER/NAME`` and the task definition it runs now (its primary deployment's)."""
    cluster, _, name = ref.partition("/")
    if not cluster or not name or "/" in name:
        raise ControllerError(f"--service {ref!r}: write CLUSTER/SERVICE")
    ecs = aws.client("ecs")
    try:
        answer = ecs.describe_services(cluster=cluster, services=[name])
    except ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            raise ControllerError(f"service {ref}: cluster {cluster} not found in {aws.region}") from None
        raise
    found = [s for s in answer.get("services") or () if s.get("status") != "INACTIVE"]
    if not found:
        raise ControllerError(f"service {ref} not found in {aws.region}")
    svc = found[0]
    primary = next((d for d in svc.get("deployments") or () if d.get("status") == "PRIMARY"), {})
    body = ecs.describe_task_definition(taskDefinition=primary.get("taskDefinition") or svc["taskDefinition"])
    body = body["taskDefinition"]
    net = (primary.get("networkConfiguration") or svc.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    place = Placement(
        service=ref, task_definition=f"{body['family']}:{body['revision']}", role_arn=body.get("executionRoleArn"),
        network_mode=body.get("networkMode") or "bridge", fargate=_fargate(primary or svc),
        subnets=tuple(net.get("subnets") or ()), groups=tuple(net.get("securityGroups") or ()),
        public_ip=net.get("assignPublicIp") == "ENABLED")
    return place, body


def _fargate(holder: dict) -> bool | None:
    """FARGATE launch type or a Fargate-only capacity provider strategy; EC2/EXTERNAL or ASG providers: False."""
    launch = holder.get("launchType")
    if launch:
        return launch == "FARGATE"
    providers = {p.get("capacityProvider") for p in holder.get("capacityProviderStrategy") or ()}
    if providers and providers <= FARGATE_PROVIDERS:
        return True
    if providers and not providers & FARGATE_PROVIDERS:
        return False
    return None


def rows(aws: Aws, place: Placement, body: dict, secret_rows: list[Row], account: str, partition: str,
         cache: Network | None = None) -> list[NetRow]:
    call_list = calls(body, secret_rows, aws.region, account, partition)
    net = cache if cache is not None else Network(aws.region)
    if place.network_mode == "awsvpc" and place.fargate and call_list:
        Reader(aws, net).read(place)
    return decide(place, call_list, net, account, partition)


def _unread(operation: str, exc: Exception) -> Unread:
    return Unread(f"{operation} failed with {error_code(exc)}")


def _rule(perm: dict) -> Rule:
    return Rule(str(perm.get("IpProtocol", "-1")), perm.get("FromPort"), perm.get("ToPort"),
                tuple(r["CidrIp"] for r in perm.get("IpRanges") or () if r.get("CidrIp")),
                tuple(p["PrefixListId"] for p in perm.get("PrefixListIds") or () if p.get("PrefixListId")),
                tuple(g["GroupId"] for g in perm.get("UserIdGroupPairs") or () if g.get("GroupId")))


def _policy(raw: Any) -> Any:
    if not raw:
        return None  # CreateVpcEndpoint: "If this parameter is not specified, we attach a default policy"
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return Unread("ec2:DescribeVpcEndpoints returned a policy that is not JSON")


class Reader:
    """Fills ``net`` with what a placement needs; skips a VPC or group already read."""

    def __init__(self, aws: Aws, net: Network) -> None:
        self.ec2, self.net = aws.client("ec2"), net

    def read(self, place: Placement) -> None:
        self._subnets([s for s in place.subnets if s not in self.net.subnets])
        for vpc in sorted({s.vpc for s in (self.net.subnets.get(i) for i in place.subnets) if isinstance(s, Subnet)}):
            if vpc not in self.net.route_tables:
                self._vpc(vpc)
        endpoint_groups = {g for vpc in self.net.endpoints.values() if isinstance(vpc, tuple) for e in vpc
                           for g in e.groups}
        self._groups(sorted((set(place.groups) | endpoint_groups) - set(self.net.groups)))

    def _each(self, ids: list[str], fetch: Callable[[list[str]], Iterable[Any]], operation: str,
              store: dict, missing: str) -> None:
        """Read ``ids`` in one call; when AWS says one does not exist, ask one by one to tell which."""
        if not ids:
            return
        try:
            for key, fact in fetch(ids):
                store[key] = fact
            return
        except ClientError as exc:
            if not error_code(exc).startswith(missing) or len(ids) == 1:
                gone = error_code(exc).startswith(missing)
                store.update({i: None if gone else _unread(operation, exc) for i in ids})
                return
        except BotoCoreError as exc:
            store.update({i: _unread(operation, exc) for i in ids})
            return
        for one in ids:
            self._each([one], fetch, operation, store, missing)

    def _subnets(self, ids: list[str]) -> None:
        def fetch(batch: list[str]) -> Iterable[tuple[str, Subnet]]:
            for page in self.ec2.get_paginator("describe_subnets").paginate(SubnetIds=batch):
                for s in page["Subnets"]:
                    yield s["SubnetId"], Subnet(s["SubnetId"], s["VpcId"], s.get("AvailabilityZone", ""),
                                                s.get("CidrBlock", ""))
        self._each(ids, fetch, "ec2:DescribeSubnets", self.net.subnets, "InvalidSubnetID")
        for i in ids:
            self.net.subnets.setdefault(i, None)

    def _groups(self, ids: list[str]) -> None:
        def fetch(batch: list[str]) -> Iterable[tuple[str, Group]]:
            for page in self.ec2.get_paginator("describe_security_groups").paginate(GroupIds=batch):
                for g in page["SecurityGroups"]:
                    yield g["GroupId"], Group(g["GroupId"], tuple(_rule(p) for p in g.get("IpPermissions") or ()),
                                              tuple(_rule(p) for p in g.get("IpPermissionsEgress") or ()))
        self._each(ids, fetch, "ec2:DescribeSecurityGroups", self.net.groups, "InvalidGroup")
        for i in ids:
            self.net.groups.setdefault(i, None)

    def _listing(self, operation: str, method: str, key: str, vpc: str, parse: Callable[[dict], Any]) -> Any:
        try:
            pages = self.ec2.get_paginator(method).paginate(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
            return tuple(parse(item) for page in pages for item in page[key])
        except (ClientError, BotoCoreError) as exc:
            return _unread(operation, exc)

    def _vpc(self, vpc: str) -> None:
        net = self.net
        net.route_tables[vpc] = self._listing("ec2:DescribeRouteTables", "describe_route_tables", "RouteTables", vpc,
                                              _table)
        net.endpoints[vpc] = self._listing("ec2:DescribeVpcEndpoints", "describe_vpc_endpoints", "VpcEndpoints", vpc,
                                           _endpoint)
        nats = self._listing("ec2:DescribeNatGateways", "describe_nat_gateways", "NatGateways", vpc, _nat)
        if isinstance(nats, Unread):
            for table in net.route_tables[vpc] if isinstance(net.route_tables[vpc], tuple) else ():
                net.nats.update({r.target: nats for r in table.routes if r.target.startswith("nat-")})
        else:
            net.nats.update({n.id: n for n in nats})
        subnets = self._listing("ec2:DescribeSubnets", "describe_subnets", "Subnets", vpc,
                                lambda s: Subnet(s["SubnetId"], s["VpcId"], s.get("AvailabilityZone", ""),
                                                 s.get("CidrBlock", "")))
        if isinstance(subnets, tuple):  # the NAT gateways' and the endpoints' subnets
            for s in subnets:
                net.subnets.setdefault(s.id, s)
        net.dns[vpc] = self._dns(vpc)
        net.resolvers[vpc] = self._resolvers(vpc)

    def _resolvers(self, vpc: str) -> Any:
        """The domain-name-servers of the VPC's DHCP option set; None when it has none ("default")."""
        try:
            found = self.ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]
            option_set = found[0].get("DhcpOptionsId") if found else None
            if not option_set or option_set == "default":
                return None
            sets = self.ec2.describe_dhcp_options(DhcpOptionsIds=[option_set])["DhcpOptions"]
        except (ClientError, BotoCoreError) as exc:
            return _unread("ec2:DescribeVpcs/DescribeDhcpOptions", exc)
        return tuple(v.get("Value", "") for s in sets for c in s.get("DhcpConfigurations") or ()
                     if c.get("Key") == "domain-name-servers" for v in c.get("Values") or ())

    def _dns(self, vpc: str) -> Any:
        try:
            values = []
            for attribute, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
                answer = self.ec2.describe_vpc_attribute(VpcId=vpc, Attribute=attribute)
                values.append(bool((answer.get(key) or {}).get("Value")))
            return tuple(values)
        except (ClientError, BotoCoreError) as exc:
            return _unread("ec2:DescribeVpcAttribute", exc)


def _table(t: dict) -> RouteTable:
    routes = []
    for r in t.get("Routes") or ():
        destination = r.get("DestinationCidrBlock") or r.get("DestinationPrefixListId") or r.get(
            "DestinationIpv6CidrBlock") or ""
        target = (r.get("NatGatewayId") or r.get("GatewayId") or r.get("TransitGatewayId")
                  or r.get("VpcPeeringConnectionId") or r.get("NetworkInterfaceId") or r.get("InstanceId") or "")
        routes.append(Route(destination, target, r.get("State", "active")))
    associations = t.get("Associations") or ()
    return RouteTable(t["RouteTableId"], tuple(routes), tuple(a["SubnetId"] for a in associations if a.get("SubnetId")),
                      any(a.get("Main") for a in associations))


def _endpoint(e: dict) -> Endpoint:
    return Endpoint(e["VpcEndpointId"], e.get("ServiceName", ""), e.get("VpcEndpointType") or "Gateway",
                    str(e.get("State", "")), bool(e.get("PrivateDnsEnabled")), tuple(e.get("RouteTableIds") or ()),
                    tuple(e.get("SubnetIds") or ()), tuple(g["GroupId"] for g in e.get("Groups") or ()),
                    _policy(e.get("PolicyDocument")))


def _nat(n: dict) -> Nat:
    return Nat(n["NatGatewayId"], n.get("State", ""), n.get("SubnetId", ""), n.get("ConnectivityType", "public") != "private")

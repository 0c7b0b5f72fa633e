"""verify --service: the network path from a service's subnets to the endpoints the ECS agent calls.

What AWS does, and where it is written (moto models the EC2 objects, not the traffic, so the rules are ours):
- Fargate platform 1.4.0 sends everything a task's start needs through the task's own ENI; private subnets
  need the ecr.dkr and ecr.api interface endpoints and the S3 gateway endpoint for ECR images, and the
  Secrets Manager / Systems Manager endpoints for secrets; the task's security groups must allow the
  traffic (ECS Developer Guide, "Migrating to Linux platform version 1.4.0").
- Only the endpoints of the services the secrets are in are needed (ECS Developer Guide, "Amazon ECS
  interface VPC endpoints", "Create the Secrets Manager and Systems Manager endpoints"); the endpoint's
  security group must allow TCP 443 in from the task's subnet (same page, "Considerations").
- ECR layers come from S3 (``prod-REGION-starport-layer-bucket``) and cannot use an S3 interface endpoint:
  only the gateway endpoint or the internet (ECR User Guide, "Amazon ECR interface VPC endpoints").
- A task on Fargate reaches the internet through a public IP in a public subnet, or a NAT gateway in a
  private one (ECS Developer Guide, "Amazon ECS task networking options for Fargate").
- Private DNS makes the service's default name resolve to the endpoint, and needs the VPC attributes
  enableDnsSupport and enableDnsHostnames (EC2 API reference, CreateVpcEndpoint, PrivateDnsEnabled); no
  PolicyDocument means the default full-access policy (same page, PolicyDocument).
- A subnet without an explicit route-table association uses the VPC's main route table (VPC User Guide,
  "Configure route tables", "Main route table").
- The usual symptom is "ResourceInitializationError: unable to pull secrets or registry auth ... dial tcp
  ...:443: i/o timeout" (AWS re:Post Knowledge Center, "ecs-unable-to-pull-secrets").

What moto stores, checked here: routes with their NAT/IGW/endpoint targets, main-table associations,
endpoint policies (its default full-access one when none is given), PrivateDnsEnabled (True when not
given, as AWS defaults it), security-group rules. Where moto differs, the tests set what AWS would hold:
it leaves VpcEndpointType empty for a gateway endpoint (AWS: "Gateway", the default), it lets private DNS
be enabled with the VPC's DNS attributes off (AWS refuses), and an interface endpoint created without
groups lists none (AWS attaches the VPC's default group; verify then says unknown).
"""

from __future__ import annotations

import io
import itertools
import json
import secrets
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import boto3
import jsonschema
import pytest
from moto import mock_aws

from awsserver import TEST_ENV, UNSET_ENV
from controller import cli
from controller.aws.session import Aws
from controller.core import permissions
from controller.core.desired import desire
from controller.manifests.loader import load
from controller.verify import network as n
from controller.verify.command import command
from controller.verify.facts import Need, Row, Target, Unread

REGION, ACC = "us-east-1", "123456789012"  # moto's account
ROLE = f"arn:aws:iam::{ACC}:role/exec"
PARAM = f"arn:aws:ssm:{REGION}:{ACC}:parameter/app/db"
IMAGE = f"{ACC}.dkr.ecr.{REGION}.amazonaws.com/web:1"
INTERFACES = ("ssm", "ecr.api", "ecr.dkr", "logs")


# --- the pure decisions ---------------------------------------------------------------------------


def place(**changes: Any) -> n.Placement:
    base = dict(service="prod/web", task_definition="web:1", role_arn=ROLE, network_mode="awsvpc", fargate=True,
                subnets=("subnet-a",), groups=("sg-task",), public_ip=False)
    return n.Placement(**{**base, **changes})


OPEN = n.Group("sg-task", egress=(n.Rule("-1", cidrs=(n.INTERNET,)),))
HTTPS_FROM_TASK = n.Group("sg-vpce", ingress=(n.Rule("tcp", 443, 443, groups=("sg-task",)),))


def world(routes: tuple[n.Route, ...] = (), endpoints: tuple[n.Endpoint, ...] = (), explicit: bool = True,
          **stores: Any) -> n.Network:
    tables = (n.RouteTable("rtb-main", (n.Route("10.0.0.0/16", "local"),), main=True),
              n.RouteTable("rtb-a", (n.Route("10.0.0.0/16", "local"),) + routes, ("subnet-a",) if explicit else ()))
    if not explicit:
        tables = (n.RouteTable("rtb-main", (n.Route("10.0.0.0/16", "local"),) + routes, main=True),)
    net = n.Network(REGION, subnets={"subnet-a": n.Subnet("subnet-a", "vpc-1", "us-east-1a", "10.0.1.0/24"),
                                     "subnet-pub": n.Subnet("subnet-pub", "vpc-1", "us-east-1a", "10.0.0.0/24")},
                    route_tables={"vpc-1": tables + (n.RouteTable("rtb-pub", (n.Route(n.INTERNET, "igw-1"),),
                                                                  ("subnet-pub",)),)},
                    endpoints={"vpc-1": endpoints}, groups={"sg-task": OPEN, "sg-vpce": HTTPS_FROM_TASK},
                    nats={"nat-1": n.Nat("nat-1", "available", "subnet-pub")}, dns={"vpc-1": (True, True)})
    for name, value in stores.items():
        getattr(net, name).update(value)
    return net


SSM = n.Call("ssm", REGION, (Need("ssm:GetParameters", PARAM, {"aws:RequestedRegion": REGION}),))


def interface(service: str = "ssm", **changes: Any) -> n.Endpoint:
    base = dict(id=f"vpce-{service}", service=f"com.amazonaws.{REGION}.{service}", type="Interface",
                state="available", private_dns=True, subnets=("subnet-a",), groups=("sg-vpce",))
    return n.Endpoint(**{**base, **changes})


def checks(rows: list[n.NetRow]) -> dict[str, tuple[str, str]]:
    return {r.check: (r.verdict, r.reason) for r in rows}


def decide(net: n.Network, where: n.Placement | None = None, call: n.Call = SSM) -> dict[str, tuple[str, str]]:
    return checks(n.decide(where or place(), [call], net, ACC, "aws"))


def test_a_private_subnet_without_nat_or_endpoints_is_missing_its_path() -> None:
    found = decide(world())
    assert found["route"][0] == n.MISSING
    assert "no route to 0.0.0.0/0 in rtb-a" in found["route"][1]
    assert f"no VPC endpoint for com.amazonaws.{REGION}.ssm" in found["route"][1]
    assert "egress 443" not in found  # nothing to check past a missing route


def test_the_main_route_table_decides_for_a_subnet_without_its_own() -> None:
    found = decide(world((n.Route(n.INTERNET, "nat-1"),), explicit=False))
    assert found["route"] == (n.ALLOWED, "NAT gateway nat-1 (rtb-main)")


def test_an_internet_gateway_needs_a_public_ip() -> None:
    net = world((n.Route(n.INTERNET, "igw-1"),))
    verdict, reason = decide(net)["route"]
    assert verdict == n.DENIED and "assignPublicIp is DISABLED" in reason
    assert decide(net, place(public_ip=True))["route"][0] == n.ALLOWED


@pytest.mark.parametrize(("nat", "why"), [
    (n.Nat("nat-1", "pending", "subnet-pub"), "is pending, not available"),
    (n.Nat("nat-1", "available", "subnet-pub", public=False), "is private"),
    (n.Nat("nat-1", "available", "subnet-a"), "no active route from 0.0.0.0/0 to an internet gateway"),
])
def test_a_nat_gateway_must_be_available_public_and_routed_to_the_internet(nat: n.Nat, why: str) -> None:
    verdict, reason = decide(world((n.Route(n.INTERNET, "nat-1"),), nats={"nat-1": nat}))["route"]
    assert verdict == n.DENIED and why in reason


def test_a_blackhole_route_or_an_unfollowable_target_is_not_a_path() -> None:
    assert decide(world((n.Route(n.INTERNET, "nat-1", "blackhole"),)))["route"][0] == n.DENIED
    verdict, reason = decide(world((n.Route(n.INTERNET, "tgw-1"),)))["route"]
    assert verdict == n.UNKNOWN and "tgw-1" in reason


def test_an_interface_endpoint_with_private_dns_is_the_path_and_its_groups_decide() -> None:
    found = decide(world(endpoints=(interface(),)))
    assert found["route"] == (n.ALLOWED, "interface endpoint vpce-ssm")
    assert found["egress 443"][0] == n.ALLOWED
    assert found["endpoint ingress 443"] == (n.ALLOWED, "sg-vpce allows TCP 443 from the task's group sg-task")
    assert found["endpoint policy"][0] == n.ALLOWED  # no policy: the default full access


@pytest.mark.parametrize(("endpoint", "dns", "why"), [
    (interface(private_dns=False), (True, True), "private DNS off"),
    (interface(), (True, False), "enableDnsSupport or enableDnsHostnames off"),
    (interface(state="pendingAcceptance"), (True, True), "is pendingAcceptance"),
])
def test_an_endpoint_the_agent_cannot_resolve_falls_back_to_the_route(endpoint: n.Endpoint, dns: tuple,
                                                                      why: str) -> None:
    verdict, reason = decide(world(endpoints=(endpoint,), dns={"vpc-1": dns}))["route"]
    assert verdict == n.MISSING and why in reason
    assert decide(world((n.Route(n.INTERNET, "nat-1"),), endpoints=(endpoint,), dns={"vpc-1": dns}))["route"][0] \
        == n.ALLOWED


@pytest.mark.parametrize(("servers", "verdict"), [
    (None, n.ALLOWED),                                  # no DHCP option set named
    (("AmazonProvidedDNS",), n.ALLOWED),
    (("10.0.0.2", "AmazonProvidedDNS"), n.ALLOWED),
    (("10.9.0.10", "10.9.0.11"), n.UNKNOWN),            # a directory's DNS servers: may not forward to Route 53
    (Unread("ec2:DescribeVpcs failed with UnauthorizedOperation"), n.UNKNOWN),
])
def test_private_dns_reaches_the_task_only_through_the_amazon_resolver(servers: Any, verdict: str) -> None:
    """An endpoint's private DNS name is answered by the Route 53 Resolver (AmazonProvidedDNS) only: with
    DHCP options that give tasks other DNS servers, they resolve the service's public name unless they
    forward to it (Amazon VPC User Guide, "DHCP option sets"; AWS PrivateLink Guide, "Manage DNS names for
    VPC endpoint services" / private DNS). Without a path to the internet that is not a pass."""
    verdict_found, reason = decide(world(endpoints=(interface(),), resolvers={"vpc-1": servers}))["route"]
    assert verdict_found == verdict, reason
    if verdict == n.UNKNOWN:
        assert "DHCP options of vpc-1" in reason


def test_dns_resolution_off_fails_every_path_of_the_subnet() -> None:
    found = decide(world((n.Route(n.INTERNET, "nat-1"),), dns={"vpc-1": (False, False)}))
    assert found["dns"][0] == n.DENIED and "enableDnsSupport off" in found["dns"][1]


@pytest.mark.parametrize(("rule", "verdict"), [
    (n.Rule("tcp", 443, 443, cidrs=(n.INTERNET,)), n.ALLOWED),
    (n.Rule("tcp", 0, 65535, cidrs=(n.INTERNET,)), n.ALLOWED),
    (n.Rule("tcp", 80, 80, cidrs=(n.INTERNET,)), n.DENIED),
    (n.Rule("udp", 443, 443, cidrs=(n.INTERNET,)), n.DENIED),
    (n.Rule("tcp", 443, 443, cidrs=("10.0.0.0/8",)), n.DENIED),  # a NAT path goes to public addresses
    (n.Rule("tcp", 443, 443, cidrs=("52.94.0.0/16",)), n.UNKNOWN),  # public, but which service is there?
    (n.Rule("tcp", 443, 443, prefix_lists=("pl-63a5400a",)), n.UNKNOWN),
])
def test_egress_through_nat_needs_443_to_the_internet(rule: n.Rule, verdict: str) -> None:
    net = world((n.Route(n.INTERNET, "nat-1"),), groups={"sg-task": n.Group("sg-task", egress=(rule,))})
    assert decide(net)["egress 443"][0] == verdict


@pytest.mark.parametrize(("rule", "verdict"), [
    (n.Rule("tcp", 443, 443, groups=("sg-vpce",)), n.ALLOWED),
    (n.Rule("tcp", 443, 443, cidrs=("10.0.0.0/16",)), n.ALLOWED),  # covers the endpoint's subnets
    (n.Rule("tcp", 443, 443, cidrs=("10.0.2.0/24",)), n.DENIED),
    (n.Rule("tcp", 22, 22, groups=("sg-vpce",)), n.DENIED),
])
def test_egress_to_an_interface_endpoint(rule: n.Rule, verdict: str) -> None:
    net = world(endpoints=(interface(),), groups={"sg-task": n.Group("sg-task", egress=(rule,))})
    assert decide(net)["egress 443"][0] == verdict


@pytest.mark.parametrize(("rule", "verdict"), [
    (n.Rule("tcp", 443, 443, cidrs=("10.0.0.0/16",)), n.ALLOWED),
    (n.Rule("tcp", 443, 443, cidrs=("10.0.1.0/25",)), n.UNKNOWN),  # part of the subnet: depends on the task's IP
    (n.Rule("tcp", 443, 443, cidrs=("10.9.0.0/16",)), n.DENIED),
    (n.Rule("tcp", 443, 443, groups=("sg-other",)), n.DENIED),
])
def test_the_endpoint_group_must_let_the_task_in_on_443(rule: n.Rule, verdict: str) -> None:
    net = world(endpoints=(interface(),), groups={"sg-vpce": n.Group("sg-vpce", ingress=(rule,))})
    assert decide(net)["endpoint ingress 443"][0] == verdict


def test_an_endpoint_without_groups_or_an_unreadable_group_is_unknown() -> None:
    assert decide(world(endpoints=(interface(groups=()),)))["endpoint ingress 443"][0] == n.UNKNOWN
    net = world(endpoints=(interface(),), groups={"sg-vpce": Unread("ec2:DescribeSecurityGroups failed with X")})
    assert decide(net)["endpoint ingress 443"][0] == n.UNKNOWN


def test_an_endpoint_policy_is_evaluated_for_what_the_agent_asks() -> None:
    deny = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {"Sid": "NoDb", "Effect": "Deny", "Principal": "*", "Action": "ssm:GetParameters", "Resource": PARAM}]}
    verdict, reason = decide(world(endpoints=(interface(policy=deny),)))["endpoint policy"]
    assert verdict == n.DENIED and "statement NoDb" in reason
    other = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ssm:GetParameters",
                            "Resource": f"arn:aws:ssm:{REGION}:{ACC}:parameter/other/*"}]}
    verdict, reason = decide(world(endpoints=(interface(policy=other),)))["endpoint policy"]
    assert verdict == n.DENIED and f"does not allow ssm:GetParameters on {PARAM}" in reason
    # a statement for another principal does not reach the execution role
    theirs = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                             "Action": "*", "Resource": "*"}]}
    assert decide(world(endpoints=(interface(policy=theirs),)))["endpoint policy"][0] == n.DENIED
    vpce = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
                           "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-ssm"}}}]}
    assert decide(world(endpoints=(interface(policy=vpce),)))["endpoint policy"][0] == n.ALLOWED


def test_who_an_endpoint_policy_speaks_to_depends_on_the_endpoint_type() -> None:
    """VPC User Guide, "Control access to VPC endpoints using endpoint policies": a policy must contain a
    Principal; for a gateway endpoint an account principal means the account's root user only."""
    account = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACC}:root"}, "Action": "*",
                              "Resource": "*"}]}
    assert decide(world(endpoints=(interface(policy=account),)))["endpoint policy"][0] == n.ALLOWED
    s3 = n.Call("s3", REGION, (Need("s3:GetObject", "arn:aws:s3:::env/app.env", {}),))
    gateway = n.Endpoint("vpce-s3", f"com.amazonaws.{REGION}.s3", "Gateway", "available", route_tables=("rtb-a",),
                         policy=account)
    assert decide(world((n.Route("pl-s3", "vpce-s3"),), endpoints=(gateway,)), call=s3)["endpoint policy"][0] \
        == n.DENIED
    bare = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    verdict, reason = decide(world(endpoints=(interface(policy=bare),)))["endpoint policy"]
    assert verdict == n.UNKNOWN and "names no Principal" in reason


@pytest.mark.parametrize("store", ["route_tables", "endpoints", "dns"])
def test_what_cannot_be_read_is_unknown_never_a_path(store: str) -> None:
    net = world((n.Route(n.INTERNET, "nat-1"),), endpoints=(interface(),))
    getattr(net, store)["vpc-1"] = Unread("ec2:Describe failed with UnauthorizedOperation")
    verdict, reason = decide(net)["route"]
    assert verdict == n.UNKNOWN and "UnauthorizedOperation" in reason
    assert n.exit_code([], n.decide(place(), [SSM], net, ACC, "aws")) == 3


def test_a_subnet_that_does_not_exist_is_missing() -> None:
    rows = n.decide(place(subnets=("subnet-gone",)), [SSM], world(), ACC, "aws")
    assert [(r.subnet, r.check, r.verdict) for r in rows] == [("subnet-gone", "subnet", n.MISSING)]


def test_an_unreadable_endpoint_policy_is_unknown_never_allowed() -> None:
    net = world(endpoints=(interface(policy=Unread("not JSON")),))
    assert decide(net)["endpoint policy"][0] == n.UNKNOWN
    assert n.exit_code([], n.decide(place(), [SSM], net, ACC, "aws")) == 3


def test_s3_takes_the_gateway_endpoint_on_the_subnet_route_table() -> None:
    s3 = n.Call("s3", REGION, (Need("s3:GetObject", "arn:aws:s3:::env/app.env", {}),))
    gateway = n.Endpoint("vpce-s3", f"com.amazonaws.{REGION}.s3", "Gateway", "available", route_tables=("rtb-a",))
    net = world((n.Route("pl-s3", "vpce-s3"),), endpoints=(gateway,))
    found = decide(net, call=s3)
    assert found["route"] == (n.ALLOWED, "S3 gateway endpoint vpce-s3 (rtb-a)")
    assert found["egress 443"][0] == n.ALLOWED  # sg-task is open to 0.0.0.0/0
    only_s3 = n.Group("sg-task", egress=(n.Rule("tcp", 443, 443, prefix_lists=("pl-s3",)),))
    assert decide(world((n.Route("pl-s3", "vpce-s3"),), endpoints=(gateway,), groups={"sg-task": only_s3}),
                  call=s3)["egress 443"][0] == n.ALLOWED
    # through a gateway endpoint the task still sends to S3's public addresses (the prefix list is their list,
    # VPC User Guide, "Gateway endpoints": "allow outbound traffic ... to the prefix list" or the ranges):
    # a rule to a public range may cover them, which verify cannot tell; a private range cannot
    for rule, verdict in ((n.Rule("tcp", 443, 443, cidrs=("52.216.0.0/15",)), n.UNKNOWN),
                          (n.Rule("tcp", 443, 443, prefix_lists=("pl-mine",)), n.UNKNOWN),
                          (n.Rule("tcp", 443, 443, cidrs=("10.0.0.0/8",)), n.DENIED)):
        net = world((n.Route("pl-s3", "vpce-s3"),), endpoints=(gateway,),
                    groups={"sg-task": n.Group("sg-task", egress=(rule,))})
        assert decide(net, call=s3)["egress 443"][0] == verdict, rule
    # an S3 interface endpoint is no path for ECR's layers: the route decides
    assert decide(world(endpoints=(interface("s3"),)), call=s3)["route"][0] == n.MISSING


def test_another_regions_secret_needs_the_internet_path() -> None:
    there = "eu-west-1"
    call = n.Call("ssm", there, (Need("ssm:GetParameters", PARAM.replace(REGION, there), {}),))
    found = checks(n.decide(place(), [call], world(endpoints=(interface(),)), ACC, "aws"))
    assert found["route"][0] == n.MISSING and "do not serve another Region (eu-west-1)" in found["route"][1]
    rows = n.decide(place(), [call], world((n.Route(n.INTERNET, "nat-1"),)), ACC, "aws")
    assert rows[0].endpoint == "ssm (eu-west-1)" and rows[0].verdict == n.ALLOWED


@pytest.mark.parametrize(("where", "why"), [
    (place(network_mode="bridge"), "network mode bridge"),
    (place(fargate=False), "EC2 container instances"),
    (place(fargate=None), "capacity provider strategy"),
])
def test_a_path_that_is_not_the_tasks_own_is_unknown(where: n.Placement, why: str) -> None:
    """On EC2 the agent runs on the container instance in the host's network (amazon-ecs-agent: ecs-init
    starts it with host networking) and fetches images and secrets from there; only Fargate, since platform
    1.4.0, fetches through the task's ENI (ECS Developer Guide, "Migrating to Linux platform version 1.4.0")."""
    rows = n.decide(where, [SSM], world(), ACC, "aws")
    assert [(r.check, r.verdict) for r in rows] == [("network", n.UNKNOWN)] and why in rows[0].reason


def _row(action: str, resource: str) -> Row:
    return Row(Target("web:1", "app", "X", "x", ROLE), n.ALLOWED, "", (Need(action, resource, {}),))


def test_only_the_endpoints_of_what_the_task_reads_are_needed() -> None:
    body: dict = {"containerDefinitions": [{"name": "app"}]}  # an image alone: below
    ssm_only = n.calls(body, [_row("ssm:GetParameters", PARAM), _row("kms:Decrypt", "arn:aws:kms:x")], REGION, ACC,
                       "aws")
    assert [c.service for c in ssm_only] == ["ssm"]  # KMS is called by SSM itself, not by the agent
    sm = n.calls(body, [_row("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACC}:secret:x")],
                 REGION, ACC, "aws")
    assert [c.service for c in sm] == ["secretsmanager"]
    full = {"containerDefinitions": [{"name": "app", "image": IMAGE, "logConfiguration": {
        "logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web", "awslogs-region": REGION}}}]}
    found = {c.service: c for c in n.calls(full, [_row("s3:GetObject", "arn:aws:s3:::env/app.env")], REGION, ACC,
                                           "aws")}
    assert list(found) == ["ecr.api", "ecr.dkr", "s3", "logs"]
    assert {need.resource for need in found["s3"].needs} == {
        "arn:aws:s3:::env/app.env", f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/layer"}
    assert {need.action for need in found["logs"].needs} == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert n.decide(place(), [], world(), ACC, "aws")[0].verdict == n.ALLOWED  # nothing to reach


def test_a_secret_read_through_ssm_needs_only_the_ssm_endpoint() -> None:
    """ECS Developer Guide, "Pass Secrets Manager secrets through Systems Manager Parameter Store
    parameters": the agent asks SSM for /aws/reference/secretsmanager/NAME; SSM reads the secret."""
    body: dict = {"containerDefinitions": [{"name": "app", "image": IMAGE}]}
    source = "/aws/reference/secretsmanager/db"
    row = Row(Target("web:1", "app", "DB", source, ROLE), n.ALLOWED, "", (
        Need("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACC}:parameter{source}", {}),
        Need("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACC}:secret:db", {})))
    assert "secretsmanager" not in [c.service for c in n.calls(body, [row], REGION, ACC, "aws")]


@pytest.mark.parametrize(("image", "host"), [
    ("nginx:1.27", "registry-1.docker.io"), ("bitnami/redis", "registry-1.docker.io"),
    ("public.ecr.aws/nginx/nginx:1", "public.ecr.aws"), ("ghcr.io/org/app@sha256:ab", "ghcr.io"),
    (IMAGE, None),
])
def test_an_image_from_outside_aws_needs_the_internet(image: str, host: str | None) -> None:
    """Docker's reference grammar: the first path part names the registry when it has a dot or a port."""
    found = [c for c in n.calls({"containerDefinitions": [{"name": "app", "image": image}]}, [], REGION, ACC, "aws")
             if c.service == n.REGISTRY]
    assert [c.host for c in found] == ([host] if host else [])
    if host:
        rows = n.decide(place(), found, world(endpoints=(interface(),)), ACC, "aws")
        assert (rows[0].endpoint, rows[0].verdict) == (f"registry {host}", n.MISSING)
        assert "outside AWS" in rows[0].reason and "add the VPC endpoint" not in rows[0].reason
        assert checks(n.decide(place(), found, world((n.Route(n.INTERNET, "nat-1"),)), ACC, "aws")) == {
            "route": (n.ALLOWED, "NAT gateway nat-1 (rtb-a)"), "egress 443": (n.ALLOWED, "sg-task allows TCP 443 "
                                                                                     "to 0.0.0.0/0")}


# --- against moto ---------------------------------------------------------------------------------


class Cloud:
    """One mock account for the module; each test builds its own VPC and service in it."""

    def __init__(self) -> None:
        self.ec2, self.ecs = boto3.client("ec2", REGION), boto3.client("ecs", REGION)
        iam, ssm = boto3.client("iam"), boto3.client("ssm", REGION)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}
        iam.create_role(RoleName="exec", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="exec", PolicyName="reads", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": PARAM},
                {"Effect": "Allow", "Action": ["ecr:*", "logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": "*"}]}))
        self.canary = secrets.token_urlsafe(24)
        ssm.put_parameter(Name="/app/db", Value=self.canary, Type="String")
        self.ecs.create_cluster(clusterName="prod")
        self.task_definition = self.ecs.register_task_definition(
            family="web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            executionRoleArn=ROLE, containerDefinitions=[{
                "name": "app", "image": IMAGE, "secrets": [{"name": "DB", "valueFrom": "/app/db"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": "/ecs/web", "awslogs-region": REGION, "awslogs-stream-prefix": "web"}}}],
        )["taskDefinition"]["taskDefinitionArn"]
        self.aws = Aws()
        self.number = itertools.count(1)

    def build(self, *, nat: bool = False, igw: bool = False, public_ip: bool = False, endpoints: bool = False,
              egress: bool = True, policy: dict | None = None, dns_servers: list[str] | None = None) -> str:
        """A VPC with one task subnet, and the service prod/web-N in it; returns ``prod/web-N``."""
        i, ec2 = next(self.number), self.ec2
        vpc = ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")["Vpc"]["VpcId"]
        for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):  # AWS wants both for private DNS
            ec2.modify_vpc_attribute(VpcId=vpc, **{attribute: {"Value": True}})
        if dns_servers:
            options = ec2.create_dhcp_options(DhcpConfigurations=[
                {"Key": "domain-name-servers", "Values": dns_servers}])["DhcpOptions"]["DhcpOptionsId"]
            ec2.associate_dhcp_options(DhcpOptionsId=options, VpcId=vpc)
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{i}.1.0/24")["Subnet"]["SubnetId"]
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        task = ec2.create_security_group(GroupName=f"task-{i}", Description="task", VpcId=vpc)["GroupId"]
        ec2.revoke_security_group_egress(GroupId=task, IpPermissions=[
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        if egress:
            ec2.authorize_security_group_egress(GroupId=task, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        if igw or nat:
            gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
            ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
            outer = table
            if nat:
                public = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{i}.0.0/24")["Subnet"]["SubnetId"]
                outer = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
                ec2.associate_route_table(RouteTableId=outer, SubnetId=public)
                ip = ec2.allocate_address(Domain="vpc")["AllocationId"]
                nat_id = ec2.create_nat_gateway(SubnetId=public, AllocationId=ip)["NatGateway"]["NatGatewayId"]
                ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)
            ec2.create_route(RouteTableId=outer, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
        if endpoints:
            group = ec2.create_security_group(GroupName=f"vpce-{i}", Description="endpoints", VpcId=vpc)["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": task}]}])
            for service in INTERFACES:
                extra = {"PolicyDocument": json.dumps(policy)} if policy and service == "ssm" else {}
                ec2.create_vpc_endpoint(VpcId=vpc, VpcEndpointType="Interface", PrivateDnsEnabled=True,
                                        ServiceName=f"com.amazonaws.{REGION}.{service}", SubnetIds=[subnet],
                                        SecurityGroupIds=[group], **extra)
            ec2.create_vpc_endpoint(VpcId=vpc, VpcEndpointType="Gateway", ServiceName=f"com.amazonaws.{REGION}.s3",
                                    RouteTableIds=[table])
        name = f"web-{i}"
        self.ecs.create_service(cluster="prod", serviceName=name, taskDefinition=self.task_definition, desiredCount=1,
                                launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {
                                    "subnets": [subnet], "securityGroups": [task],
                                    "assignPublicIp": "ENABLED" if public_ip else "DISABLED"}})
        return f"prod/{name}"

    def verify(self, ref: str) -> tuple[int, dict, str]:
        out, text = io.StringIO(), io.StringIO()
        code = command(self.aws, services=[ref], output="json", out=out)
        assert command(self.aws, services=[ref], out=text) == code
        report = json.loads(out.getvalue())
        assert self.canary not in out.getvalue() + text.getvalue()
        return code, report, text.getvalue()


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    with pytest.MonkeyPatch.context() as env:
        for name in UNSET_ENV + ("AWS_ENDPOINT_URL",):
            env.delenv(name, raising=False)
        for name, value in {**TEST_ENV, "ECS_SECRETS_RATE_LIMITS": "off"}.items():
            env.setenv(name, value)
        with mock_aws(config={"iam": {"load_aws_managed_policies": False}}):
            yield Cloud()


def verdicts(report: dict) -> dict[tuple[str, str], tuple[str, str]]:
    return {(r["endpoint"], r["check"]): (r["verdict"], r["reason"]) for r in report["network"]}


def schema() -> dict:
    return json.loads(resources.files("controller.verify").joinpath("verify.schema.json").read_text())


def test_moto_private_subnet_without_nat_or_endpoints_fails(cloud: Cloud) -> None:
    code, report, text = cloud.verify(cloud.build())
    assert code == 1
    jsonschema.validate(report, schema())
    assert [r["verdict"] for r in report["rows"]] == ["allowed"]  # IAM alone would pass
    found = verdicts(report)
    assert set(found) == {(s, "route") for s in ("ssm", "ecr.api", "ecr.dkr", "s3", "logs")}
    assert all(v == "missing" and "no route to 0.0.0.0/0" in why for v, why in found.values())
    assert "secretsmanager" not in text  # the task reads no Secrets Manager secret
    assert "Checked 5 network paths: 0 allowed, 0 denied, 5 missing, 0 unknown." in text


def test_moto_private_subnet_with_the_endpoints_and_egress_passes(cloud: Cloud) -> None:
    ref, before = cloud.build(endpoints=True), Counter(cloud.aws.calls)
    code, report, text = cloud.verify(ref)
    assert code == 0, text
    made = {f"{service}:{operation}" for service, operation, _ in cloud.aws.calls - before
            if service in ("ec2", "ecs")}
    assert made and made <= granted(ref)  # `controller-policy --verify-service` covers every read
    found = verdicts(report)
    assert found[("ssm", "route")][0] == "allowed" and found[("ssm", "route")][1].startswith("interface endpoint vpce-")
    assert found[("s3", "route")][1].startswith("S3 gateway endpoint vpce-")
    assert {check for _, check in found} == {"route", "egress 443", "endpoint ingress 443", "endpoint policy"}
    assert all(v == "allowed" for v, _ in found.values())


def test_moto_endpoints_behind_a_directorys_dns_servers_are_not_a_pass(cloud: Cloud) -> None:
    ref, before = cloud.build(endpoints=True, dns_servers=["10.9.0.10", "10.9.0.11"]), Counter(cloud.aws.calls)
    code, report, text = cloud.verify(ref)
    assert code == 3, text   # unknown, never allowed: verify cannot see whether those servers forward
    verdict, reason = verdicts(report)[("ssm", "route")]
    assert verdict == "unknown" and "10.9.0.10, 10.9.0.11, not AmazonProvidedDNS" in reason
    assert verdicts(report)[("s3", "route")][0] == "allowed"   # a gateway endpoint is a route, not a name
    made = {f"{service}:{operation}" for service, operation, _ in cloud.aws.calls - before if service == "ec2"}
    assert {"ec2:DescribeVpcs", "ec2:DescribeDhcpOptions"} <= made <= granted(ref)


def test_moto_endpoints_without_egress_443_fail_on_the_security_group(cloud: Cloud) -> None:
    code, report, _ = cloud.verify(cloud.build(endpoints=True, egress=False))
    assert code == 1
    verdict, reason = verdicts(report)[("ssm", "egress 443")]
    assert verdict == "denied" and "no egress rule" in reason


def test_moto_public_subnet_with_igw_but_no_public_ip_fails(cloud: Cloud) -> None:
    code, report, _ = cloud.verify(cloud.build(igw=True))
    assert code == 1
    verdict, reason = verdicts(report)[("ssm", "route")]
    assert verdict == "denied" and "assignPublicIp is DISABLED" in reason
    code, report, _ = cloud.verify(cloud.build(igw=True, public_ip=True))
    assert code == 0 and all(v == "allowed" for v, _ in verdicts(report).values())


def test_moto_a_subnet_or_group_that_is_gone_is_missing_and_the_rest_still_checked(cloud: Cloud) -> None:
    """DescribeSubnets / DescribeSecurityGroups refuse a whole batch for one unknown id
    (InvalidSubnetID.NotFound, InvalidGroup.NotFound: EC2 API reference, "Error codes"): read one by one."""
    ref = cloud.build(nat=True)
    service = cloud.ecs.describe_services(cluster="prod", services=[ref.split("/")[1]])["services"][0]
    net = service["networkConfiguration"]["awsvpcConfiguration"]
    vpc = cloud.ec2.describe_subnets(SubnetIds=net["subnets"])["Subnets"][0]["VpcId"]
    cidr = cloud.ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"].replace(".0.0/16", ".9.0/24")
    extra = cloud.ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    group = cloud.ec2.create_security_group(GroupName=f"gone-{extra}", Description="x", VpcId=vpc)["GroupId"]
    cloud.ecs.create_service(cluster="prod", serviceName=ref.split("/")[1] + "-b", taskDefinition=cloud.task_definition,
                             desiredCount=0, launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {
                                 "subnets": net["subnets"] + [extra], "securityGroups": net["securityGroups"] + [group]}})
    cloud.ec2.delete_subnet(SubnetId=extra)  # deleted after the service was created (it runs no task)
    cloud.ec2.delete_security_group(GroupId=group)
    code, report, _ = cloud.verify(ref + "-b")
    assert code == 1
    found = {(r["subnet"], r["endpoint"], r["check"]): r["verdict"] for r in report["network"]}
    assert found[(extra, "-", "subnet")] == "missing"
    assert found[(net["subnets"][0], "ssm", "route")] == "allowed"
    assert found[(net["subnets"][0], "ssm", "egress 443")] == "allowed"  # the group that exists allows it


def test_moto_private_subnet_through_a_nat_gateway_passes(cloud: Cloud) -> None:
    code, report, _ = cloud.verify(cloud.build(nat=True))
    assert code == 0
    assert verdicts(report)[("ssm", "route")][1].startswith("NAT gateway nat-")


def test_moto_an_endpoint_policy_that_denies_the_parameter_fails(cloud: Cloud) -> None:
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {"Sid": "NoAppSecrets", "Effect": "Deny", "Principal": "*", "Action": "ssm:GetParameters",
         "Resource": f"arn:aws:ssm:{REGION}:{ACC}:parameter/app/*"}]}
    code, report, _ = cloud.verify(cloud.build(endpoints=True, policy=policy))
    assert code == 1
    verdict, reason = verdicts(report)[("ssm", "endpoint policy")]
    assert verdict == "denied" and "NoAppSecrets" in reason and PARAM in reason
    assert verdicts(report)[("logs", "endpoint policy")][0] == "allowed"


def test_verify_takes_service_refs_on_the_command_line() -> None:
    args = cli.parser().parse_args(["verify", "--service", "prod/web", "--service", "prod/api"])
    assert args.service == ["prod/web", "prod/api"] and args._check(args) is None
    args = cli.parser().parse_args(["verify"])
    assert "--service CLUSTER/NAME" in args._check(args)


@pytest.mark.slow  # a second boto3 session loads the EC2 and ECS models again: seconds
def test_moto_verify_service_from_the_command_line(cloud: Cloud, capsys: pytest.CaptureFixture) -> None:
    ref = cloud.build(nat=True)
    assert cli.main(["verify", "--service", ref, "--output", "json"]) == 0
    printed = capsys.readouterr().out
    assert cloud.canary not in printed
    report = json.loads(printed)
    jsonschema.validate(report, schema())
    assert report["network_summary"]["allowed"] == len(report["network"]) > 0
    assert cli.main(["verify", "--service", "prod/no-such-service"]) == 1
    assert "service prod/no-such-service not found" in capsys.readouterr().err


def _policy(*services: str) -> dict:
    desired = desire(load(str(Path(__file__).resolve().parent.parent / "manifests"), REGION))
    return permissions.policy_for(desired, permissions.Target(account=ACC, region=REGION, verify_services=services))


def granted(ref: str) -> set[str]:
    """The actions the controller policy with ``--verify-service ref`` allows on the service or on "*"."""
    cluster, _, name = ref.partition("/")
    arn = f"arn:aws:ecs:{REGION}:{ACC}:service/{cluster}/{name}"
    return {a for s in _policy(ref)["Statement"] if s["Resource"] == "*" or arn in s["Resource"] for a in s["Action"]}


def test_controller_policy_grants_what_verify_service_reads() -> None:
    by_sid = {s["Sid"]: s for s in _policy("prod/web")["Statement"]}
    assert by_sid["VerifyReadsTheNamedServices"]["Action"] == ["ecs:DescribeServices"]
    assert by_sid["VerifyReadsTheNamedServices"]["Resource"] == [
        f"arn:aws:ecs:{REGION}:{ACC}:service/prod/web", f"arn:aws:ecs:{REGION}:{ACC}:service/web"]
    ec2 = by_sid["VerifyNetworkEc2DescribeSupportsOnlyAllResources"]
    assert ec2["Resource"] == "*" and set(ec2["Action"]) == {
        "ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeNatGateways", "ec2:DescribeVpcEndpoints",
        "ec2:DescribeSecurityGroups", "ec2:DescribeVpcAttribute", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions"}
    plain = _policy()
    assert not [s for s in plain["Statement"] if s["Sid"].startswith("Verify")]  # only when asked

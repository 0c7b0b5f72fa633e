"""The fewest AWS calls each phase of the workload needs, as the APIs allow: the yardstick of the benchmark.

No-op check, with ownership and drift detection (issue 5)::

    1 sts:GetCallerIdentity
  + ceil(N/10)   ssm:GetParameters, with decryption (10 names a call): the values to compare
  + pages(N)     ssm:DescribeParameters, filtered by our tags (50 a page): metadata and what we own
  + IAM          min(R x (GetRole + GetRolePolicy + ListAttachedRolePolicies),
                     pages of iam:GetAccountAuthorizationDetails(Filter=[Role]), 1,000 roles a page,
                     each with its trust policy, tags, inline and attached policies)
  + R            ecs:DescribeTaskDefinition (no batch form)
  + pages(A)     ecs:ListTaskDefinitions(status=ACTIVE), 100 ARNs a page: every ACTIVE revision A of the
                 Region, because ECS cannot list by role and each one running as a declared role keeps its
                 grants (README, "A shared execution role")
  + O            ecs:DescribeTaskDefinition of the ACTIVE revisions that are not the latest of a declared
                 family (older revisions, other families, CI's); the latest ones were just read. A one-shot
                 pays O every run; the daemon remembers a described revision and pays only for new ones
  + 0            kms:DescribeKey / secretsmanager:DescribeSecret: the workload has no custom key or secret

Cold create: the same reads find nothing. A tag-filtered listing returns one empty page; absence of the
N names is proven by name-filtered DescribeParameters (50 names a call) rather than GetParameters
(10): there is no value to compare yet; one iam:GetPolicy proves that the managed policy the roles attach
(the default, AmazonECSTaskExecutionRolePolicy) exists before anything is written. Then the writes: N PutParameter (tags go with the create),
3 per role (CreateRole with tags, PutRolePolicy, AttachRolePolicy), R RegisterTaskDefinition.

Update (one new value, one new image): the no-op reads, then 1 PutParameter and 1 RegisterTaskDefinition.
The no-op check after it ("noop2", a one-shot) describes the revision the update left ACTIVE: O = 1.

Daemon no-op (``run``, a pass after one that read or wrote every value): the no-op's reads without a
single GetParameters. The daemon remembers the version it read or wrote (``controller/aws/known.py``), and
DescribeParameters, which it reads anyway, says the version has not moved.

``Pages`` says how a server pages: AWS gives DescribeParameters 50 a page (MaxResults) and
GetAccountAuthorizationDetails up to 1,000 (MaxItems). moto pages DescribeParameters by 10 whatever
MaxResults says, and ends every listing of k >= 0 items with a page of k mod 10 (so floor(k/10) + 1
calls, an empty last page when k is a multiple of 10); it returns all roles in one
GetAccountAuthorizationDetails page. ``MOTO`` is what the benchmark compares against.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from bench.workload import roles_for

Calls = Counter  # (service, operation) -> count
PHASES = ("cold", "noop", "update", "noop2")
GET_PARAMETERS_BATCH = 10
NAME_FILTER_BATCH = 50


@dataclass(frozen=True)
class Pages:
    describe_parameters: int = 50
    moto_describe: bool = False            # floor(k/10) + 1 calls for k items
    gaad: int = 1000                       # roles a GetAccountAuthorizationDetails page; 0: one page
    task_definitions: int = 100            # ARNs a ListTaskDefinitions page; 0: one page (moto)

    def describe(self, items: int) -> int:
        if self.moto_describe:
            return items // 10 + 1
        return max(1, math.ceil(items / self.describe_parameters))

    def gaad_pages(self, roles: int) -> int:
        return 1 if self.gaad == 0 else max(1, math.ceil(roles / self.gaad))

    def task_definition_pages(self, active: int) -> int:
        return 1 if self.task_definitions == 0 else max(1, math.ceil(active / self.task_definitions))


AWS = Pages()
MOTO = Pages(describe_parameters=10, moto_describe=True, gaad=0, task_definitions=0)


def revision_scan(r: int, pages: Pages, active: int, older: int) -> Calls:
    """With a declared role: every ACTIVE revision listed; those not read already described."""
    return Calls({("ecs", "ListTaskDefinitions"): pages.task_definition_pages(active),
                  ("ecs", "DescribeTaskDefinition"): older}) if r else Calls()


def iam_reads(r: int, pages: Pages, account_roles: int | None = None) -> Calls:
    """The cheaper of three reads per role and the account-wide listing (every role of the account)."""
    listing = pages.gaad_pages(r if account_roles is None else account_roles)
    if r and 3 * r <= listing:
        return Calls({("iam", "GetRole"): r, ("iam", "GetRolePolicy"): r, ("iam", "ListAttachedRolePolicies"): r})
    return Calls({("iam", "GetAccountAuthorizationDetails"): listing}) if r else Calls()


def noop(n: int, pages: Pages = AWS, account_roles: int | None = None, older: int = 0) -> Calls:
    """``older``: ACTIVE revisions besides the latest of each declared family (O above)."""
    r = roles_for(n)
    calls = Calls({("sts", "GetCallerIdentity"): 1, ("ssm", "GetParameters"): math.ceil(n / GET_PARAMETERS_BATCH),
                   ("ssm", "DescribeParameters"): pages.describe(n), ("ecs", "DescribeTaskDefinition"): r})
    return calls + iam_reads(r, pages, account_roles) + revision_scan(r, pages, r + older, older)


def daemon_noop(n: int, pages: Pages = AWS, account_roles: int | None = None) -> Calls:
    calls = noop(n, pages, account_roles)
    del calls[("ssm", "GetParameters")]
    return calls


def cold(n: int, pages: Pages = AWS, account_roles: int | None = None) -> Calls:
    r = roles_for(n)
    describes = pages.describe(0) + math.ceil(n / NAME_FILTER_BATCH) * pages.describe(0)
    reads = Calls({("sts", "GetCallerIdentity"): 1, ("ssm", "DescribeParameters"): describes,
                   ("ecs", "DescribeTaskDefinition"): r, ("iam", "GetPolicy"): 1 if r else 0}) \
        + iam_reads(r, pages, account_roles or 0) + revision_scan(r, pages, 0, 0)
    writes = Calls({("ssm", "PutParameter"): n, ("iam", "CreateRole"): r, ("iam", "PutRolePolicy"): r,
                    ("iam", "AttachRolePolicy"): r, ("ecs", "RegisterTaskDefinition"): r})
    return reads + writes


def update(n: int, pages: Pages = AWS, account_roles: int | None = None) -> Calls:
    return noop(n, pages, account_roles) + Calls({("ssm", "PutParameter"): 1, ("ecs", "RegisterTaskDefinition"): 1})


def phase(name: str, n: int, pages: Pages = AWS, account_roles: int | None = None) -> Calls:
    """The model of one benchmark phase ("noop2" is the no-op check after the update)."""
    if name == "noop2":
        return noop(n, pages, account_roles, older=1)   # the revision the update replaced is still ACTIVE
    fn = {"cold": cold, "noop": noop, "update": update}[name]
    return fn(n, pages, account_roles)


def total(calls: Calls) -> int:
    return sum(calls.values())

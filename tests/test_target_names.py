"""A Target's sessionName and externalId in STS's alphabet, checked when the manifests are read.

STS AssumeRole API reference: RoleSessionName is 2-64 characters of ``[\\w+=,.@-]*`` and ExternalId 2-1224 of
``[\\w+=,.@:/-]*``, where ``\\w`` is the ASCII word class: the reference describes it as Latin letters of
either case, digits and the underscore, no spaces. A name STS refuses must not validate, only to fail the
target at its first AssumeRole.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from controller.manifests.models import TargetSpec

BASE = {"account": "111111111111", "region": "eu-west-1", "roleArn": "arn:aws:iam::111111111111:role/r"}


@pytest.mark.parametrize("field", ["sessionName", "externalId"])
def test_a_non_ascii_letter_is_not_in_sts_alphabet(field):
    with pytest.raises(ValidationError):
        TargetSpec(**BASE, **{field: "caf\u00e9-ops"})


def test_sts_alphabet_is_accepted():
    spec = TargetSpec(**BASE, sessionName="ecs-secrets_A1+=,.@-", externalId="ext_ID-1+=,.@:/")
    assert spec.sessionName and spec.externalId

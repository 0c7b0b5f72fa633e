"""Every problem of the manifests in one run: each document, the objects across documents, the derived
policies' size and, for ``validate``, the values that can be read now. Pure but for the files named
by the user and the value sources handed in."""

from __future__ import annotations

import os
from typing import Mapping

from controller.core import values
from controller.core.desired import DEFAULT_OWNER, Desired, build, policy_problems
from controller.manifests import loader
from controller.manifests.documents import Manifest
from controller.manifests.fleet import OWN, split, uses_targets
from controller.vocab.problems import ManifestError


def load(path: str | os.PathLike[str], region: str, owner: str = DEFAULT_OWNER,
         environ: Mapping[str, str] | None = None, read: values.ReadFile | None = None) -> Desired:
    """The manifests as ``Desired``, or every problem found raised together as ``ManifestError``.

    The later stages build on the objects that loaded without a problem, so a broken document
    hides nothing that they can see. ``environ``/``read``: also size the values they can give now.
    """
    manifest, problems = loader.collect(path, region)
    if uses_targets(manifest.objects):   # a fleet: the callers that know targets load it with ``fleet.load``
        manifest = split(manifest).get(OWN) or Manifest((), region)
    desired = build(manifest, owner)
    problems += policy_problems(desired)
    if environ is not None and read is not None:
        problems += values.check_readable(desired, environ, read)
    if problems:
        raise ManifestError(problems)
    return desired

"""The pure core: ``Desired`` built once from the manifests, normalisation, diff, plan, prune, rendering.

Pure functions of data: no boto3, botocore, clock or environment. May import ``controller.manifests``
and ``controller.vocab``.
"""

# syntax=docker/dockerfile:1
# The image ECS runs: the controller image with the manifests baked in (see deploy/README.md for
# why baked rather than fetched from S3 or EFS). Build from the repository root, after deploy/Dockerfile:
#   docker build -f deploy/ecs/manifests.Dockerfile --build-arg BASE=ecs-secrets:0.1.0 \
#     -t 123456789012.dkr.ecr.us-east-1.amazonaws.com/ecs-secrets-manifests:0.1.0 .
# Manifests hold no secret values (those come from the task's `secrets`), so baking them is safe.
ARG BASE=ecs-secrets:0.1.0
FROM ${BASE}
# root-owned and read-only to the controller (uid 10001)
COPY manifests/ /etc/ecs-secrets/manifests/
USER 10001:10001

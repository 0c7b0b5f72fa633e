"""`ecs-secrets verify`: what the ECS agent will ask for, decided as IAM and KMS would (evaluator, key policies).

``facts``, ``decide``, ``iam_eval``, ``conditions``, ``keypolicy`` and ``report`` are pure; ``observe`` reads
AWS. May import ``controller.aws``, ``controller.core``, ``controller.manifests`` and ``controller.vocab``.
"""

"""ecs-secrets: keep SSM parameters, task execution roles and ECS task definitions converged."""

__version__ = "0.1.0"

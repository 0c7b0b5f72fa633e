"""`ecs-secrets run`: the loop around one reconcile, the DynamoDB lease, the manifest watcher, HTTP, metrics, status.

May import ``controller.reconcile`` and every layer below it; never the command line or the sandbox.
"""

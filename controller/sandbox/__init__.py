"""`--sandbox`: an embedded AWS (moto, in process) seeded with what the manifests expect, and invented values.

Only the command line imports it; it supplies values through the same ``reconcile.Settings.environ`` and
``read_file`` as the real environment and files. May import ``controller.aws``, ``controller.core`` and below.
"""

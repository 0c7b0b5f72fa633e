"""`--sandbox`: an embedded AWS (moto, in process) seeded with what the manifests expect, and invented values.

Used by the command line only; supplies values through the same ``Sources`` as the environment. May import
``controller.aws``, ``controller.core`` and below; nothing imports it but ``controller.cli``.
"""

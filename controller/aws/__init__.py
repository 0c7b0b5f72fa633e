"""The AWS edge: the session, rate limits, retries, observe (batched reads) and apply (ordered writes).

All AWS I/O of a reconcile lives here. May import ``controller.core``, ``controller.manifests`` and
``controller.vocab``; never the daemon, verify, the sandbox or the command line.
"""

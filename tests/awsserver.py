"""Run moto's HTTP server on 127.0.0.1 for tests that talk to AWS the way a real client does.

The pytest fixtures that use it (``moto_server``, ``aws_env``) live in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

from controller.sandbox import faithful

TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # No shared config or credentials file of the host can add a profile, endpoint or retry mode.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    # An HTTP(S)_PROXY of the host must not capture calls to 127.0.0.1.
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
# Anything that could point a client at a real account or another endpoint.
UNSET_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@dataclass
class MotoHandle:
    """A running moto server; ``url`` is ``http://127.0.0.1:PORT``."""

    server: ThreadedMotoServer
    url: str

    def reset(self) -> None:
        """Forget every resource in every backend (``POST /moto-api/reset``)."""
        reset_moto(self.url)

    def stop(self) -> None:
        self.server.stop()


def start_moto(port: int = 0) -> MotoHandle:
    """Start moto's threaded server on 127.0.0.1 (a free port unless ``port`` is given), answering as AWS does
    where it matters to us (``controller.sandbox.faithful``)."""
    faithful.install()
    # AmazonECSTaskExecutionRolePolicy must exist to be attached, as in a real account
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return MotoHandle(server=server, url=f"http://{host}:{bound}")


def reset_moto(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with _direct_opener().open(request, timeout=30) as reply:
        reply.read()


def _direct_opener() -> urllib.request.OpenerDirector:
    # An HTTP(S)_PROXY in the environment must not capture a request to 127.0.0.1.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))

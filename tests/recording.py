"""An ``Aws`` whose clients record every API call once, with its parameters (never a secret value)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from controller.aws.session import Aws


@dataclass
class Call:
    service: str
    operation: str
    params: dict                        # the API parameters; a PutParameter's Value is left out
    result_arn: str | None = None       # RegisterTaskDefinition: the revision it made

    def key(self) -> tuple[str, str, str]:
        """Hashable identity: the same read twice has the same key."""
        return self.service, self.operation, json.dumps(self.params, sort_keys=True, default=str)


class RecordingAws(Aws):
    """Records at ``before-call`` (once per API call, whatever the SDK's retries)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[Call] = []
        self._hooked: set[int] = set()
        self._record_lock = threading.Lock()

    def client(self, *args: Any, **kwargs: Any) -> Any:
        client = super().client(*args, **kwargs)
        if id(client) not in self._hooked:
            self._hooked.add(id(client))
            client.meta.events.register("before-parameter-build", self._params)
            client.meta.events.register("before-call", self._before_call)
            client.meta.events.register("after-call", self._record_result)
        return client

    def _params(self, params: dict, model: Any, context: dict, **_: Any) -> None:
        kept = {k: v for k, v in params.items() if k != "Value"}
        context["recorded"] = Call(model.service_model.service_name, model.name, kept)

    def _before_call(self, context: dict, **_: Any) -> None:
        with self._record_lock:
            self.recorded.append(context["recorded"])

    def _record_result(self, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        if model.name == "RegisterTaskDefinition" and "taskDefinition" in parsed:
            context["recorded"].result_arn = parsed["taskDefinition"]["taskDefinitionArn"]

"""The control API under ``/_emulator/`` (not part of ConnectyCube; never counted or faulted).

Shapes are documented in the package docstring (:mod:`django_connectycube.emulator`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import NOT_FOUND, EmulatorBase
from .dates import iso
from .transport import Request, Response
from .wire import ApiError

__all__ = ["ControlHandlers"]


class ControlHandlers(EmulatorBase):
    """Handlers of the control routes; they call the Python-side helpers of ``Emulator``."""

    if TYPE_CHECKING:
        # The helpers ``Emulator`` defines, which these handlers call.
        def reset(self) -> None: ...
        def state(self) -> dict[str, Any]: ...
        @property
        def config(self) -> dict[str, Any]: ...
        def configure(self, **changes: Any) -> dict[str, Any]: ...
        def request_counts(self) -> dict[str, int]: ...
        def reset_counters(self) -> None: ...

    def control_health(self, request: Request) -> Response:
        return Response(200, {"ok": True, "now": iso(self.store.now())})

    def control_reset(self, request: Request) -> Response:
        self.reset()
        return Response(200, {"ok": True})

    def control_state(self, request: Request) -> Response:
        return Response(200, self.state())

    def control_get_clock(self, request: Request) -> Response:
        return Response(
            200,
            {"now": iso(self.store.now()), "offset": self.store.clock_offset.total_seconds()},
        )

    def control_clock(self, request: Request) -> Response:
        advance = request.params.get("advance", 0)
        if isinstance(advance, bool) or not isinstance(advance, (int, float, str)):
            raise ApiError.field("advance", "must be a number of seconds")
        try:
            seconds = float(advance)
        except ValueError as exc:
            raise ApiError.field("advance", "must be a number of seconds") from exc
        self.store.advance_clock(seconds)
        return self.control_get_clock(request)

    def control_get_config(self, request: Request) -> Response:
        return Response(200, {"config": self.config})

    def control_config(self, request: Request) -> Response:
        return Response(200, {"config": self.configure(**request.params)})

    def control_get_faults(self, request: Request) -> Response:
        return Response(200, {"faults": [r.to_json() for r in self.faults.rules()]})

    def control_add_fault(self, request: Request) -> Response:
        rule = self.faults.add(request.params)
        return Response(201, {"fault": rule.to_json()})

    def control_clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response(200, {"faults": []})

    def control_remove_fault(self, request: Request, id: str) -> Response:
        if not self.faults.remove(int(id)):
            raise ApiError(404, NOT_FOUND)
        return Response(200, {"faults": [r.to_json() for r in self.faults.rules()]})

    def control_requests(self, request: Request) -> Response:
        counts = self.request_counts()
        return Response(200, {"total": sum(counts.values()), "routes": counts})

    def control_reset_requests(self, request: Request) -> Response:
        self.reset_counters()
        return Response(200, {"total": 0, "routes": {}})

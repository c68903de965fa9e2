"""What every handler module of the emulator shares: the answers they reuse and a base class.

The handlers are grouped by resource in mixin classes (:mod:`.auth_api`, :mod:`.users_api`,
:mod:`.blobs_api`, :mod:`.admin_api`, :mod:`.control_api`) that
:class:`~django_connectycube.emulator.Emulator` combines; :class:`EmulatorBase` declares the
state they read, so each module can be read on its own.
"""

from __future__ import annotations

from typing import Any

from .faults import FaultSet
from .identity import FirebaseVerifier
from .models import User
from .store import Store
from .transport import Request
from .wire import BLANK, ApiError, coerce_str

__all__ = [
    "COULD_NOT_FIND_USER",
    "NEED_USER",
    "NOT_FOUND",
    "NO_SESSION",
    "TOKEN_REQUIRED",
    "USER_NOT_FOUND",
    "EmulatorBase",
]

#: An application token on a route that needs a user [O web-samples#108].
NEED_USER = ApiError(403, {"base": ["Forbidden. Need user."]})
#: An unknown or expired token; the only text that fires the JS SDK's ``sessionExpired`` [S].
NO_SESSION = {"base": ["Required session does not exist"]}
#: No token at all on a route that needs one [O reactnative-samples#131].
TOKEN_REQUIRED = ["Token is required"]
NOT_FOUND = ["Not found"]
#: A user look-up that misses [O flutter-samples#284].
USER_NOT_FOUND = ["User not found"]
#: An update of a user that is not the session's [O js-sdk-releases#8].
COULD_NOT_FIND_USER = ["Couldn't find user."]


class EmulatorBase:
    """The state and helpers the handler mixins rely on (set up by ``Emulator.__init__``)."""

    store: Store
    faults: FaultSet
    application_id: int
    auth_key: str
    auth_secret: str
    require_signature: bool
    cidp_url: str | None
    cidp_response_mapping: dict[str, Any] | None
    cidp_failure_style: str
    deny_auto_create: bool
    firebase_key: str
    firebase_verifier: FirebaseVerifier

    def _current_user(self, request: Request) -> User:
        session = request.session
        if session is None or session.user_id is None:
            raise NEED_USER
        user = self.store.users.get(session.user_id)
        if user is None:
            raise ApiError(401, NO_SESSION)
        return user

    def _by_external_user_id(self, segment: str) -> User | None:
        """The user a ``/users/external/{id}`` path names: its integer ``external_user_id``."""
        if not segment.isdigit():
            return None
        return self.store.user_by_external_user_id(int(segment))

    def _required_param(self, request: Request, name: str) -> str:
        value = request.params.get(name)
        if value in (None, ""):
            raise ApiError.field(name, BLANK)
        return coerce_str(value, name)

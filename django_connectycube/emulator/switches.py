"""The application's dashboard switches, at a new ConnectyCube application's defaults.

A real application is configured in its dashboard (admin.connectycube.com, *Overview →
Permissions* and the users settings); code that works against the emulator must also work on an
application nobody has touched. So the emulator starts with the switches as a new application
has them, and each can be changed through the constructor, ``configure()``, the control API
(``POST /_emulator/config``) or a CLI flag:

=============================  =======  ==================================  =====================
config key                     default  CLI flag                            dashboard option
=============================  =======  ==================================  =====================
``v1_users_api``               False    ``--enable-v1-users-api``           DISABLE LIST USERS
                                                                            API V1 (unchecked)
``allow_users_list``           True     ``--deny-users-list``               Allow to retrieve a
                                                                            list of users via API
``allow_other_user_info``      True     ``--deny-other-user-info``          Allow to retrieve
                                                                            other user's info
``require_email_confirmation`` False    ``--require-email-confirmation``    Require email
                                                                            confirmation
``online_users_api``           False    ``--enable-online-users-api``       Enable Online Users
                                                                            API
``admin_api_key``              None     ``--admin-api-key KEY``             Administration API
                                                                            key (Admin API)
=============================  =======  ==================================  =====================

Where the docs give no status or text for a refusal, the choice is marked *inferred* in
``docs/fidelity.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import EmulatorBase
from .models import User
from .transport import Request
from .wire import ApiError, coerce_bool

__all__ = [
    "SWITCH_DEFAULTS",
    "SwitchGuards",
    "coerce_switch",
    "users_forbidden",
]

#: A new application's dashboard, as the docs describe it.
SWITCH_DEFAULTS: dict[str, Any] = {
    # users.md "Retrieve Users V1 (Deprecated)": the option is checked on new applications.
    "v1_users_api": False,
    "allow_users_list": True,
    "allow_other_user_info": True,
    "require_email_confirmation": False,
    # chat-widget guide: "you also need to enable Online Users API ... in your app's permissions".
    "online_users_api": False,
    # The Admin API needs a key generated in the dashboard (Advanced plan and up).
    "admin_api_key": None,
}

#: users.md, the answer when "Allow to retrieve a list of users via API" is un-ticked.
USERS_FORBIDDEN_TEXT = (
    "Users retrieving forbidden in admin panel, application settings. "
    "Setup it here https://admin.connectycube.com/apps/{application_id}/service/users/settings"
)
ONLINE_USERS_DISABLED_TEXT = (
    "Online Users API is disabled. Enable it here "
    "https://admin.connectycube.com/apps/{application_id}/overview/permissions"
)


def coerce_switch(key: str, value: Any) -> Any:
    """A switch value from Python, JSON or a form; 422 naming the key when it is not one."""
    if key == "admin_api_key":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ApiError.field(key, "must be a string or null")
        return value
    return coerce_bool(value, key)


def users_forbidden(application_id: int) -> ApiError:
    """The documented refusal of a user read that the dashboard forbids (status inferred)."""
    return ApiError(403, {"base": [USERS_FORBIDDEN_TEXT.format(application_id=application_id)]})


class SwitchGuards(EmulatorBase):
    """The checks the user routes make against the dashboard switches."""

    v1_users_api: bool
    allow_users_list: bool
    allow_other_user_info: bool
    require_email_confirmation: bool
    online_users_api: bool
    admin_api_key: str | None

    def _require_v1(self) -> None:
        """Every v1 look-up is refused while "DISABLE LIST USERS API V1" is checked."""
        if not self.v1_users_api:
            raise users_forbidden(self.application_id)

    def _require_users_list(self) -> None:
        if not self.allow_users_list:
            raise users_forbidden(self.application_id)

    def _require_online_users_api(self) -> None:
        if not self.online_users_api:
            raise ApiError(
                403,
                {"base": [ONLINE_USERS_DISABLED_TEXT.format(application_id=self.application_id)]},
            )

    def _check_other_user_info(self, request: Request, users: Iterable[User]) -> None:
        """Refuse an answer that would show another user while other users' info is denied.

        An application session stands for no user, so every user is "other" to it.
        """
        if self.allow_other_user_info:
            return
        session = request.session
        me = session.user_id if session is not None else None
        if any(user.id != me for user in users):
            raise users_forbidden(self.application_id)

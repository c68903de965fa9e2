"""The emulator's route tables: ConnectyCube's REST routes and the control API's.

Each row names the handler method of :class:`~django_connectycube.emulator.Emulator` that serves
it, so the whole surface of the emulator reads in one screen.
"""

from __future__ import annotations

from .transport import Route, index_routes

__all__ = [
    "CONTROL_PREFIX",
    "CONTROL_ROUTES",
    "CONTROL_TABLE",
    "ROUTES",
    "ROUTE_TABLE",
    "UPLOAD_PATH",
]

UPLOAD_PATH = "/_storage"
CONTROL_PREFIX = "/_emulator/"

# (method, path template, handler method, auth) — auth is one of:
#   none: no token needed; session: any valid token; user: a user session;
#   signup: a token or the CB-AuthKey header; optional: a token is used if given.
# Order matters where templates overlap: fixed segments come before placeholders.
ROUTE_TABLE: list[tuple[str, str, str, str]] = [
    ("POST", "/session", "handle_create_session", "none"),
    ("GET", "/session", "handle_get_session", "session"),
    ("DELETE", "/session", "handle_delete_session", "session"),
    ("POST", "/login", "handle_login", "session"),
    ("DELETE", "/login", "handle_logout", "session"),
    ("POST", "/users", "handle_create_user", "signup"),
    ("GET", "/users", "handle_list_users", "session"),
    ("GET", "/users/v2", "handle_list_users_v2", "session"),
    ("GET", "/users/by_login", "handle_user_by_login", "session"),
    ("GET", "/users/by_email", "handle_user_by_email", "session"),
    ("GET", "/users/phone", "handle_user_by_phone", "session"),
    ("GET", "/users/by_phone", "handle_user_by_phone", "session"),
    ("GET", "/users/by_facebook_id", "handle_user_by_facebook_id", "session"),
    ("GET", "/users/by_twitter_id", "handle_user_by_twitter_id", "session"),
    ("GET", "/users/by_full_name", "handle_users_by_full_name", "session"),
    ("GET", "/users/by_tags", "handle_users_by_tags", "session"),
    ("GET", "/users/password/reset", "handle_reset_password", "session"),
    ("POST", "/users/password/reset", "handle_reset_password", "session"),
    ("GET", "/users/online", "handle_online_users", "session"),
    ("GET", "/users/external/{external_id}", "handle_user_by_external_id", "session"),
    ("DELETE", "/users/external/{external_id}", "handle_delete_user_by_external_id", "user"),
    # No id: what the JS SDK sends when it knows no current user [S]; an application token gets
    # "Forbidden. Need user." [O], a user token means that user.
    ("PUT", "/users", "handle_update_current_user", "user"),
    ("DELETE", "/users", "handle_delete_current_user", "user"),
    # Any segment, not only digits: the server authorizes before it resolves the id, so the JS
    # SDK's "PUT /users/undefined" after a logout answers 403 (need user), not 404.
    ("GET", "/users/{id}", "handle_get_user", "session"),
    ("PUT", "/users/{id}", "handle_update_user", "user"),
    ("DELETE", "/users/{id}", "handle_delete_user", "user"),
    # The Admin API authenticates with its own header, checked by the handler.
    ("DELETE", "/admin/user/{id}", "handle_admin_delete_user", "none"),
    # The link of the confirmation email (on admin.connectycube.com for the real service).
    ("GET", "/user_email/confirm_email", "handle_confirm_email", "none"),
    ("POST", "/blobs", "handle_create_blob", "user"),
    ("GET", "/blobs", "handle_list_blobs", "user"),
    ("POST", UPLOAD_PATH, "handle_upload", "none"),
    ("PUT", "/blobs/{id}/complete", "handle_complete_blob", "user"),
    ("POST", "/blobs/{id}/complete", "handle_complete_blob", "user"),
    ("GET", "/blobs/{uid}/object", "handle_blob_object", "session"),
    ("GET", "/blobs/{uid}/download", "handle_blob_download", "optional"),
    ("GET", "/blobs/{id}", "handle_get_blob", "optional"),
    ("PUT", "/blobs/{id}", "handle_update_blob", "user"),
    ("DELETE", "/blobs/{id}", "handle_delete_blob", "user"),
]

CONTROL_TABLE: list[tuple[str, str, str]] = [
    ("GET", "/_emulator/health", "control_health"),
    ("POST", "/_emulator/reset", "control_reset"),
    ("GET", "/_emulator/state", "control_state"),
    ("GET", "/_emulator/clock", "control_get_clock"),
    ("POST", "/_emulator/clock", "control_clock"),
    ("GET", "/_emulator/config", "control_get_config"),
    ("POST", "/_emulator/config", "control_config"),
    ("GET", "/_emulator/faults", "control_get_faults"),
    ("POST", "/_emulator/faults", "control_add_fault"),
    ("DELETE", "/_emulator/faults", "control_clear_faults"),
    ("DELETE", "/_emulator/faults/{id:int}", "control_remove_fault"),
    ("GET", "/_emulator/requests", "control_requests"),
    ("DELETE", "/_emulator/requests", "control_reset_requests"),
]

ROUTES = index_routes(Route(m, t, h, a) for m, t, h, a in ROUTE_TABLE)
CONTROL_ROUTES = index_routes(Route(m, t, h, "none") for m, t, h in CONTROL_TABLE)

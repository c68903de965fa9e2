"""The avatar a link owns on ConnectyCube: the blob a new avatar replaced is deleted, and an
avatar the user pointed elsewhere is put back.

Every upload creates a new blob; without the clean-up the old ones would stay in the
application's storage forever, each still readable at its URL. The clean-up is best effort: the
new avatar is already linked when it runs, so a failure is logged and the push still succeeds
(the orphan costs storage, not correctness).

A user can set their own ``avatar`` and ``custom_data.avatar_uid`` to anything with their own
token (a URL of their choosing included); the site's look-ups never show that, and a push that
finds it puts back the blob the link recorded, as it re-asserts the login and external id.
"""

from __future__ import annotations

import logging

from django_connectycube.client import ConnectyCubeError, NotFound, User, UserClient

__all__ = ["avatar_differs", "delete_replaced_avatar", "restore_avatar"]

logger = logging.getLogger("django_connectycube.sync.push")


def delete_replaced_avatar(uc: UserClient, old_uid: str, new_uid: str = "") -> bool:
    """Delete the blob ``old_uid`` (a user's previous avatar); ``True`` when it is gone.

    The blob's id comes from ``GET /blobs/{uid}/object``, since ``DELETE /blobs/{id}`` takes an
    id and the link keeps only the uid. A blob already gone counts as deleted.
    """
    if not old_uid or old_uid == new_uid:
        return False
    try:
        blob = uc.get_blob_by_uid(old_uid)
        uc.delete_blob(blob.id)
    except NotFound:
        return True
    except ConnectyCubeError as exc:
        logger.warning(
            "The replaced avatar blob %s of ConnectyCube user %s was not deleted (%s); the new "
            "avatar is linked, the old blob stays in storage.",
            old_uid,
            uc.user_id,
            exc,
        )
        return False
    return True


def avatar_differs(remote: User, uid: str) -> bool:
    """Whether the remote user's ``avatar`` or ``custom_data.avatar_uid`` is not ``uid``, the
    blob the link recorded (``""``: none)."""
    custom = remote.custom_data_json.get("avatar_uid") or ""
    return (remote.avatar or "") != uid or custom != uid


def restore_avatar(uc: UserClient, remote: User, uid: str) -> User:
    """Set the remote user's avatar back to ``uid`` (or none), keeping their other
    ``custom_data`` keys."""
    custom = remote.custom_data_json
    custom.pop("avatar_uid", None)
    if uid:
        custom["avatar_uid"] = uid
    return uc.update_user(remote.id, avatar=uid, custom_data=custom)

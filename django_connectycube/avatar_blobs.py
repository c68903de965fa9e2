"""Cleaning up after an avatar change: the blob a new avatar replaced is deleted on ConnectyCube.

Every upload creates a new blob; without this the old ones would stay in the application's
storage forever, each still readable at its URL. The clean-up is best effort: the new avatar is
already linked when it runs, so a failure is logged and the push still succeeds (the orphan
costs storage, not correctness).
"""

from __future__ import annotations

import logging

from .client import ConnectyCubeError, NotFound, UserClient

__all__ = ["delete_replaced_avatar"]

logger = logging.getLogger("django_connectycube.sync")


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

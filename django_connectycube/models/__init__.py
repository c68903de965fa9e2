"""The link between a local user and their ConnectyCube user, and its sync state.

A ``CubeUser`` row is the durable record of work owed to ConnectyCube (:mod:`.owed`): the save that
changes a user bumps ``dirty_version`` in the same transaction, and a push records
``synced_version`` only for the version it actually sent. ``dirty_version > synced_version``
therefore means "still owed to ConnectyCube", whatever happened to the broker or the worker in
between. The row outlives the local user (``SET_NULL``) as a tombstone until the remote user is
deleted; a new local user never takes a tombstone over, even one with the same primary key: every
link mints its own ``external_id`` (see :mod:`.identity`).
"""

from __future__ import annotations

from typing import TypeAlias

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_connectycube.models.fields import EncryptedTextField
from django_connectycube.models.identity import mint_external_id
from django_connectycube.models.state import CubeUserQuerySet, State

__all__ = ["CubeSession", "CubeUser", "CubeUserQuerySet", "DriftScan", "LinkScan"]


class CubeUser(models.Model):
    """One local user's ConnectyCube identity and where its mirroring stands.

    The code calls a row a *link* (``link: CubeUser``, ``link_id``): it links a local user to a
    remote one, and outlives the local user as a tombstone.
    """

    State: TypeAlias = State  # the states and their transitions live in .state

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="connectycube",
    )
    cube_id = models.PositiveBigIntegerField(
        _("ConnectyCube id"), unique=True, null=True, blank=True
    )
    external_id = models.CharField(
        _("external id"),
        max_length=255,
        unique=True,
        default=mint_external_id,
        help_text=_(
            "Minted for this link (<prefix>-<random>) and sent as the remote user's external_id; "
            "links made before minting keep the local primary key."
        ),
    )
    login = models.CharField(_("ConnectyCube login"), max_length=70, blank=True)
    withheld = models.JSONField(
        _("withheld fields"),
        default=dict,
        blank=True,
        help_text=_(
            "Mapped values ConnectyCube would not take because an account that is not this "
            "user's holds them ({field: wanted value}); the login is then a fallback login."
        ),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING
    )
    dirty_version = models.PositiveIntegerField(_("local version"), default=0)
    synced_version = models.PositiveIntegerField(_("synced version"), default=0)
    pushed_digest = models.CharField(
        _("digest of the last pushed fields"), max_length=64, blank=True, editable=False
    )
    password_version = models.PositiveSmallIntegerField(_("password version"), default=0)
    avatar_uid = models.CharField(_("avatar blob uid"), max_length=64, blank=True)
    avatar_digest = models.CharField(_("avatar content hash"), max_length=64, blank=True)
    attempts = models.PositiveIntegerField(_("failed attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    failing_since = models.DateTimeField(
        _("failing since"),
        null=True,
        blank=True,
        help_text=_("First failure of the current run; RETRY_HORIZON after it the row gives up."),
    )
    next_attempt_at = models.DateTimeField(
        _("next attempt at"),
        null=True,
        blank=True,
        help_text=_("When a failed push is due again; the sweep hands it to a worker then."),
    )
    enqueued_at = models.DateTimeField(_("enqueued at"), null=True, blank=True)
    lease_until = models.DateTimeField(_("worker lease until"), null=True, blank=True)
    last_synced_at = models.DateTimeField(_("last synced at"), null=True, blank=True)
    drift_found_at = models.DateTimeField(
        _("drift found at"),
        null=True,
        blank=True,
        db_index=True,  # the health page and the doctor count the drifted rows
        help_text=_(
            "When the verification last found the remote user missing or not this link's; "
            "repaired once the link is pushed after it (last synced at)."
        ),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = CubeUserQuerySet.as_manager()

    class Meta:
        verbose_name = _("ConnectyCube user")
        verbose_name_plural = _("ConnectyCube users")
        indexes = [
            # The sweep: owed rows whose last enqueue is old enough to be presumed lost.
            models.Index(fields=["state", "enqueued_at"], name="cubeuser_sweep_idx"),
            # The admin's search by the start of a login (PostgreSQL's pattern operators serve
            # LIKE 'x%'; the unique external_id gets such an index from Django already).
            models.Index(
                fields=["login"],
                name="cubeuser_login_prefix_idx",
                opclasses=["varchar_pattern_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.login or self.external_id} → {self.cube_id or '?'} ({self.state})"

    @property
    def is_dirty(self) -> bool:
        return self.dirty_version > self.synced_version


class CubeSession(models.Model):
    """A user's ConnectyCube session token, encrypted at rest, reused until it expires.

    One row per user doubles as the lock that makes two simultaneous logins share one remote
    session. ``expires_at`` comes from the server's ``CB-Token-ExpirationDate`` and slides with use.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="connectycube_session",
    )
    cube_user_id = models.PositiveBigIntegerField(_("ConnectyCube user id"), null=True, blank=True)
    token = EncryptedTextField(_("token"), blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True, db_index=True)
    renewing_until = models.DateTimeField(
        _("renewal claimed until"), null=True, blank=True, editable=False
    )

    class Meta:
        verbose_name = _("ConnectyCube session")
        verbose_name_plural = _("ConnectyCube sessions")

    def __str__(self) -> str:
        return (
            f"session of user {self.user_id} (expires {self.expires_at:%Y-%m-%d %H:%M})"
            if (self.expires_at)
            else f"session of user {self.user_id}"
        )

    def __repr__(self) -> str:  # never show the token
        return f"<CubeSession user={self.user_id} expires_at={self.expires_at}>"


class LinkScan(models.Model):
    """How far the search for users without a link has got (see :mod:`.unlinked`); one row.

    Keys are stored as text, whatever the type of the user model's primary key; empty is none.
    """

    newest = models.CharField(
        _("high-water mark"),
        max_length=255,
        blank=True,
        help_text=_("The last user looked at among the newest (auto-increment keys only)."),
    )
    rolling = models.CharField(
        _("rolling window starts after"),
        max_length=255,
        blank=True,
        help_text=_("Empty: the next rolling window starts at the beginning of the user table."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("search for users without a link")
        verbose_name_plural = _("searches for users without a link")

    def __str__(self) -> str:
        return f"newest up to {self.newest or '-'}, rolling from {self.rolling or 'the start'}"


class DriftScan(models.Model):
    """Where the background verification stands (see :mod:`.verification`); one row.

    ``after`` is the last link pk verified in the current pass (0: the pass starts at the
    beginning), so a run verifies the next window of links whatever process runs it.
    """

    after = models.PositiveBigIntegerField(_("next window starts after link"), default=0)
    last_run_at = models.DateTimeField(_("last verification"), null=True, blank=True)
    last_pass_at = models.DateTimeField(_("last full pass ended"), null=True, blank=True)

    class Meta:
        verbose_name = _("verification of links against ConnectyCube")
        verbose_name_plural = _("verifications of links against ConnectyCube")

    def __str__(self) -> str:
        return f"verified up to link {self.after or '-'}, last run {self.last_run_at or 'never'}"

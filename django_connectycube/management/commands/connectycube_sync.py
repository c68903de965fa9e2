"""Push users to ConnectyCube now (backfill, retry, single users), check for drift, or repair it.

``--repair`` (and ``--all``, before it pushes) first verifies every link against ConnectyCube
as the background verification does a window at a time (:mod:`...verification`): a link whose
remote user is missing or not ours is made owed, so the push that follows creates it again.

The default ``--dirty`` also links the users saved without a link since it (or the sweep) last
looked, such as those saved while ``SYNC_ENABLED`` was off (see :mod:`...unlinked`).
Every push runs under the same failure policy as the tasks (:mod:`...policy`): a transient
failure leaves the user owed with a due time the sweep honours, a permanent one marks it failed.

``--all --distribute`` hands the backfill to the Celery workers instead: one process is bound by
its interpreter lock long before the network is, so each worker runs the same engine
(:mod:`...backfill_pool`) over its shard of users, all under one shared ``RATE_LIMIT``. With
``--wait`` the command then follows the links until the workers are done.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DataError
from django.utils import timezone
from tqdm import tqdm

from django_connectycube.client import ConnectyCubeError
from django_connectycube.conf import app_settings
from django_connectycube.models import CubeUser
from django_connectycube.sync import (
    backfill_pool,
    drift,
    enqueue,
    owed,
    policy,
    unlinked,
    verification,
)
from django_connectycube.sync.connection import shared_client

CHUNK = 500
#: Users per shard of ``--all --distribute`` unless ``--shards`` says otherwise: small enough
#: that a shard redone after a worker died repeats little, large enough to batch well.
SHARD_USERS = 1000
#: ``--wait``: seconds between two looks at the links, and without progress before giving up.
WAIT_POLL_SECONDS = 2.0
STALL_SECONDS = 300.0
_sleep = time.sleep


class Command(BaseCommand):
    help = (
        "Push local users to ConnectyCube in this process (no worker needed): all of them, "
        "the ones still owed, or the given ones. --verify compares instead, writing nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="every local user (backfill)")
        which.add_argument(
            "--dirty", action="store_true", help="users with changes not yet pushed (default)"
        )
        which.add_argument(
            "--user", nargs="+", metavar="PK", default=[], help="these users (local pks)"
        )
        which.add_argument(
            "--failed",
            action="store_true",
            help="users whose sync failed (given up), made owed again and pushed",
        )
        which.add_argument(
            "--repair",
            action="store_true",
            help="verify every link against ConnectyCube; those whose remote user is missing "
            "or not ours are made owed and pushed (created again), with the owed ones",
        )
        parser.add_argument("--dry-run", action="store_true", help="say what would be pushed")
        parser.add_argument(
            "--verify", action="store_true", help="report drift between local and remote"
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=4,
            help="parallel pushes (default 4; with --distribute: per shard, in each worker)",
        )
        parser.add_argument(
            "--distribute",
            action="store_true",
            help="with --all: hand the backfill to the Celery workers, in shards of users",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="with --distribute: wait until the workers have pushed every user, then "
            "report as a push in this process does",
        )
        parser.add_argument(
            "--shards",
            type=int,
            default=None,
            help=f"with --distribute: how many shards (default: one per {SHARD_USERS} users)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options["concurrency"]
        if concurrency < 1 or concurrency > 64:
            raise CommandError("--concurrency must be between 1 and 64.")
        self.check_distribute(options)
        self.stdout_is_tty = bool(getattr(self.stdout, "isatty", lambda: False)())
        self.bar: tqdm | None = None
        if options["verify"]:
            if options["repair"]:
                raise CommandError("--verify writes nothing; --repair repairs: use one of them.")
            self.verify(options)
            return
        if not app_settings.SYNC_ENABLED and not options["dry_run"]:
            raise CommandError(
                'CONNECTYCUBE["SYNC_ENABLED"] is False: nothing is pushed. Switch it on, then '
                "run this command (it also links the users saved meanwhile)."
            )
        if (options["all"] or options["repair"]) and not options["dry_run"]:
            self.repair()
        if options["all"]:
            scope = "all"
        elif options["user"]:
            scope = "user"
        elif options["failed"]:
            scope = "failed"
        else:
            scope = "dirty"
        pks, total = self.select(scope, options["user"], dry_run=options["dry_run"])
        if options["distribute"]:
            self.distribute(pks, total, options["shards"], concurrency, options["dry_run"])
            if options["wait"] and not options["dry_run"]:
                self.wait_for_workers(total)
            return
        if options["dry_run"]:
            shown = list(islice(pks, 20))
            self.stdout.write(f"Would push {total} user(s) ({scope}).")
            for pk in shown:
                self.stdout.write(f"  user {pk}")
            if total > len(shown):
                self.stdout.write(f"  … and {total - len(shown)} more")
            return
        self.push(pks, total, concurrency)

    def repair(self) -> None:
        """Make every link whose remote user is missing or not ours owed (see
        :mod:`...verification`); the push that follows creates them again."""
        try:
            counts = verification.verify_all(client=shared_client())
        except ConnectyCubeError as exc:
            raise CommandError(
                f"Could not verify the users against ConnectyCube ({exc}); nothing was pushed. "
                "Run this command again once ConnectyCube answers."
            ) from exc
        self.stdout.write(
            f"Verified {counts['checked']} user(s) against ConnectyCube: "
            f"{counts[verification.MISSING]} missing on ConnectyCube, "
            f"{counts[verification.FOREIGN]} not ours (both owed a push)."
        )

    # ---- selection ------------------------------------------------------------------------

    def select(
        self, scope: str, user_pks: list[str], *, dry_run: bool
    ) -> tuple[Iterator[Any], int]:
        User = get_user_model()
        users = User._default_manager.all()
        if scope == "user":
            pk_field = User._meta.pk
            try:
                user_pks = [pk_field.to_python(pk) for pk in user_pks]
                for pk in user_pks:
                    pk_field.run_validators(pk)  # the database's integer range, for one
            except ValidationError as exc:
                raise CommandError(f"--user: {' '.join(exc.messages)}") from exc
            try:
                found = list(users.filter(pk__in=user_pks).values_list("pk", flat=True))
            except (OverflowError, DataError) as exc:  # beyond what the database can hold
                raise CommandError(f"--user: {exc}") from exc
            missing = set(map(str, user_pks)) - set(map(str, found))
            if missing:
                raise CommandError(f"No local user with pk {', '.join(sorted(missing))}.")
            if not dry_run:
                self.make_owed(CubeUser.objects.filter(user_id__in=found), found)
            return iter(found), len(found)
        if scope == "all":
            if not dry_run:
                unlinked.link_all()
                self.make_owed(CubeUser.objects.filter(user__isnull=False), None)
            qs = users.order_by("pk").values_list("pk", flat=True)
            return qs.iterator(chunk_size=CHUNK), qs.count()
        if scope == "failed":
            failed = CubeUser.objects.filter(state=CubeUser.State.FAILED)
            if dry_run:
                qs = failed.filter(user__isnull=False).order_by("pk")
                return qs.values_list("user_id", flat=True).iterator(), qs.count()
            pks = list(failed.filter(user__isnull=False).values_list("user_id", flat=True))
            # Tombstones go back to owing their delete, which the workers (or the sweep) do.
            failed.resync(timezone.now())
            return iter(pks), len(pks)
        if not dry_run:
            unlinked.catch_up()  # the users saved since it last looked, not the whole table
        pending = (
            CubeUser.objects.filter(state=CubeUser.State.PENDING, user__isnull=False)
            .order_by("pk")
            .values_list("user_id", flat=True)
        )
        return pending.iterator(chunk_size=CHUNK), pending.count()

    def make_owed(self, links: Any, user_pks: list[Any] | None) -> None:
        if user_pks is not None:
            linked = set(links.values_list("user_id", flat=True))
            for user in get_user_model()._default_manager.filter(pk__in=user_pks):
                if user.pk not in linked:
                    owed.mark_dirty(user, created=True)
        # Enqueued now: keeps the sweep away while this command pushes them.
        links.exclude(state=CubeUser.State.DELETED).mark_owed(timezone.now())

    # ---- distributing ---------------------------------------------------------------------

    @staticmethod
    def check_distribute(options: dict[str, Any]) -> None:
        shards = options["shards"]
        if options["distribute"]:
            if not options["all"]:
                raise CommandError("--distribute works with --all (a backfill) only.")
            if options["verify"]:
                raise CommandError("--distribute pushes; it cannot be combined with --verify.")
        elif shards is not None:
            raise CommandError("--shards goes with --distribute.")
        elif options.get("wait"):
            raise CommandError("--wait goes with --distribute.")
        if shards is not None and shards < 1:
            raise CommandError("--shards must be at least 1.")

    def distribute(
        self, pks: Iterator[Any], total: int, shards: int | None, concurrency: int, dry_run: bool
    ) -> None:
        """Hand the backfill to the workers: one ``backfill_shard`` task per pk range, each
        pushing the owed users of its range with the engine this command runs in-process."""
        shards = shards or max(1, math.ceil(total / SHARD_USERS))
        ranges = backfill_pool.shard_ranges(pks, total, shards)
        if dry_run:
            self.stdout.write(
                f"Would enqueue {len(ranges)} shard(s) for {total} user(s), "
                f"concurrency {concurrency} each."
            )
            return
        try:
            sent = enqueue.enqueue_backfill(ranges, concurrency=concurrency)
        except Exception as exc:  # the broker is down or misconfigured
            raise CommandError(
                f"Could not hand the backfill to Celery ({exc}). Every user stays owed: run "
                "this command again once the broker answers, or without --distribute."
            ) from exc
        self.stdout.write(
            f"Enqueued {sent} shard(s) for {total} user(s), concurrency {concurrency} each; "
            "the workers push them (progress: the admin's Sync health, or "
            "connectycube_sync --dirty --dry-run)."
        )

    def wait_for_workers(self, total: int) -> None:
        """Poll the links until no user of the backfill is due any more (pushed, failed, or
        waiting for a retry); give up when none was pushed for :data:`STALL_SECONDS`."""
        started = last_change = time.monotonic()
        left = None
        while True:
            owed = CubeUser.objects.filter(state=CubeUser.State.PENDING, user__isnull=False)
            count = owed.retry_due(timezone.now()).count()
            if count != left:
                left, last_change = count, time.monotonic()
                self.progress(max(total - count, 0), total)
            if not count:
                break
            if time.monotonic() - last_change > STALL_SECONDS:
                raise CommandError(
                    f"No user was pushed for {STALL_SECONDS:.0f}s; {count} still owed. Is a "
                    "Celery worker consuming the sync queue? The users stay owed: the workers "
                    "(or the sweep, or this command without --distribute) push them."
                )
            _sleep(WAIT_POLL_SECONDS)
        self.end_progress()
        links = CubeUser.objects.filter(user__isnull=False)
        failed = links.filter(state=CubeUser.State.FAILED).count()
        waiting = links.filter(state=CubeUser.State.PENDING).count()
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"The workers pushed the backfill in {elapsed:.1f}s: {failed} failed, "
            f"{waiting} waiting for a retry."
        )
        self.fail_if_unfinished(failed, waiting)

    # ---- pushing --------------------------------------------------------------------------

    def push(self, pks: Iterator[Any], total: int, concurrency: int) -> None:
        started = time.monotonic()
        counts = backfill_pool.push_many(
            pks,
            client=shared_client(),
            concurrency=concurrency,
            on_progress=lambda done: self.progress(done, total),
        )
        done = sum(counts.values())
        self.end_progress()
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing to do"
        self.stdout.write(f"Pushed {done} user(s) in {elapsed:.1f}s: {summary}.")
        self.fail_if_unfinished(counts[policy.FAILED], counts[policy.RETRYING])

    @staticmethod
    def fail_if_unfinished(failed: int, waiting: int) -> None:
        """End with an error when a push failed or must wait for a retry."""
        if failed or waiting:
            raise CommandError(
                f"{failed} user(s) failed, {waiting} could not be pushed now and stay owed (the "
                "sweep retries them when due); their errors are in the admin (ConnectyCube "
                "users, filtered by state)."
            )

    def progress(self, done: int, total: int) -> None:
        """Move the bar to ``done`` of ``total`` (a terminal only: logs and pipes get the
        summary line alone); tqdm works out the rate and the time left."""
        if not self.stdout_is_tty or not total:
            return
        if self.bar is None:
            # tqdm writes its own carriage returns: the stream itself, not Django's wrapper,
            # which would end every redraw with a newline.
            stream = getattr(self.stdout, "_out", self.stdout)
            self.bar = tqdm(total=total, unit="users", file=stream, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def end_progress(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # ---- verifying ------------------------------------------------------------------------

    def verify(self, options: dict[str, Any]) -> None:
        client = shared_client()
        links = CubeUser.objects.exclude(state=CubeUser.State.DELETED).select_related("user")
        if options["user"]:
            links = links.filter(user_id__in=options["user"])
        counts: Counter[str] = Counter()
        batch: list[CubeUser] = []
        for link in links.order_by("pk").iterator(chunk_size=drift.BATCH):
            batch.append(link)
            if len(batch) == drift.BATCH:
                self.verify_batch(client, batch, counts)
                batch = []
        if batch:
            self.verify_batch(client, batch, counts)
        unlinked = get_user_model()._default_manager.filter(connectycube__isnull=True).count()
        if unlinked:
            counts["drift"] += unlinked
            self.stdout.write(f"{unlinked} local user(s) have no ConnectyCube link yet.")
        self.stdout.write(
            f"Verified {counts['checked']} user(s): {counts['drift']} with drift, "
            f"{counts['identity']} with identity fields edited on ConnectyCube."
        )
        if counts["drift"]:
            raise CommandError(f"{counts['drift']} user(s) differ from ConnectyCube (see above).")

    def verify_batch(self, client: Any, batch: list[CubeUser], counts: Counter[str]) -> None:
        remote = drift.fetch(client, batch)
        for link in batch:
            counts["checked"] += 1
            found = drift.compare(link, remote.get(link.cube_id) if link.cube_id else None)
            who = f"user {link.external_id} ({link.login})"
            if found.identity:
                counts["identity"] += 1
                edits = "; ".join(found.identity)
                self.stdout.write(f"{who}: identity edited on ConnectyCube: {edits}")
            if found.fields:
                self.stdout.write(f"{who}: {'; '.join(found.fields)}")
            for note in found.notes:
                self.stdout.write(f"{who}: note: {note}")
            counts["drift"] += bool(found)

    @staticmethod
    def compare(link: CubeUser, remote: Any) -> list[str]:
        """Every difference of one link, identity edits first (see :mod:`...drift`)."""
        found = drift.compare(link, remote)
        return [*found.identity, *found.fields]

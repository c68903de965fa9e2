"""Push users to ConnectyCube now (backfill, retry, single users) or check for drift.

The default ``--dirty`` also links the users saved without a link since it (or the sweep) last
looked, such as those saved while ``SYNC_ENABLED`` was off (see :mod:`...unlinked`).
Every push runs under the same failure policy as the tasks (:mod:`...policy`): a transient
failure leaves the user owed with a due time the sweep honours, a permanent one marks it failed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DataError, connection, connections
from django.db.models import Q
from django.utils import timezone

from ... import backfill, drift, owed, policy, sync, unlinked
from ...client_factory import shared_client
from ...conf import app_settings
from ...models import CubeUser

CHUNK = 500
#: Users per batch of the create path: one ``GET /users/v2`` look-up, a few statements.
LOOKUP_CHUNK = backfill.BATCH_SIZE


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
        parser.add_argument("--dry-run", action="store_true", help="say what would be pushed")
        parser.add_argument(
            "--verify", action="store_true", help="report drift between local and remote"
        )
        parser.add_argument(
            "--concurrency", type=int, default=4, help="parallel pushes (default 4)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options["concurrency"]
        if concurrency < 1 or concurrency > 64:
            raise CommandError("--concurrency must be between 1 and 64.")
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            concurrency = 1  # shared-cache SQLite locks whole tables: threads would collide
        self.stdout_is_tty = bool(getattr(self.stdout, "isatty", lambda: False)())
        if options["verify"]:
            self.verify(options)
            return
        if not app_settings.SYNC_ENABLED and not options["dry_run"]:
            raise CommandError(
                'CONNECTYCUBE["SYNC_ENABLED"] is False: nothing is pushed. Switch it on, then '
                "run this command (it also links the users saved meanwhile)."
            )
        if options["all"]:
            scope = "all"
        elif options["user"]:
            scope = "user"
        elif options["failed"]:
            scope = "failed"
        else:
            scope = "dirty"
        pks, total = self.select(scope, options["user"], dry_run=options["dry_run"])
        if options["dry_run"]:
            shown = list(islice(pks, 20))
            self.stdout.write(f"Would push {total} user(s) ({scope}).")
            for pk in shown:
                self.stdout.write(f"  user {pk}")
            if total > len(shown):
                self.stdout.write(f"  … and {total - len(shown)} more")
            return
        self.push(pks, total, concurrency)

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
                owed.link_missing_users()
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

    # ---- pushing --------------------------------------------------------------------------

    def push(self, pks: Iterator[Any], total: int, concurrency: int) -> None:
        client = shared_client()
        counts: Counter[str] = Counter()
        started = time.monotonic()
        done = 0

        def work(pk: Any, absent: frozenset[str]) -> str:
            _discard_broken_connection()
            push = lambda: sync.push_user(pk, client=client, absent=absent)  # noqa: E731
            return policy.attempt(Q(user_id=pk), push).outcome

        def create(batch: backfill.Batch, link: CubeUser) -> str:
            _discard_broken_connection()
            return batch.run(link)

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cube-sync") as pool:
            pending: set[Future[str]] = set()
            for chunk in _chunks(pks, LOOKUP_CHUNK):
                # Users still without a remote identity go through the batched create path (a
                # few statements per chunk); the rest, and rows another worker holds, one by one.
                batch = backfill.claim(chunk, client=client, concurrency=concurrency)
                jobs: list[tuple[Any, ...]] = [(create, batch, link) for link in batch.links]
                jobs += [(work, pk, frozenset()) for pk in batch.others]
                for job in jobs:
                    # Bounded (memory stays flat), but with room for a whole chunk, so the pool
                    # keeps pushing one chunk while this thread claims the next.
                    if len(pending) >= LOOKUP_CHUNK + concurrency * 4:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        done += self.collect(finished, counts)
                        self.progress(done, total)
                    pending.add(pool.submit(*job))
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                done += self.collect(finished, counts)
                self.progress(done, total)
            # Each pool thread kept its database connection for the whole run: close them all,
            # one task per thread (the barrier keeps a thread from taking two).
            barrier = threading.Barrier(concurrency)

            def close_own_connections() -> None:
                connections.close_all()
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=10)

            for future in [pool.submit(close_own_connections) for _ in range(concurrency)]:
                future.result()
        if self.stdout_is_tty and total:
            self.stdout.write("")
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing to do"
        self.stdout.write(f"Pushed {done} user(s) in {elapsed:.1f}s: {summary}.")
        waiting = counts[policy.RETRYING]
        if counts[policy.FAILED] or waiting:
            raise CommandError(
                f"{counts[policy.FAILED]} user(s) failed, {waiting} could not be pushed now and "
                "stay owed (the sweep retries them when due); their errors are in the admin "
                "(ConnectyCube users, filtered by state)."
            )

    @staticmethod
    def collect(finished: Iterable[Future[str]], counts: Counter[str]) -> int:
        n = 0
        for future in finished:
            counts[future.result()] += 1
            n += 1
        return n

    def progress(self, done: int, total: int) -> None:
        if not self.stdout_is_tty or not total:
            return
        width = 30
        filled = int(width * done / total)
        self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
        self.stdout.flush()

    # ---- verifying ------------------------------------------------------------------------

    def verify(self, options: dict[str, Any]) -> None:
        client = shared_client()
        links = CubeUser.objects.exclude(state=CubeUser.State.DELETED).select_related("user")
        if options["user"]:
            links = links.filter(user_id__in=options["user"])
        counts: Counter[str] = Counter()
        batch: list[CubeUser] = []
        for link in links.order_by("pk").iterator(chunk_size=100):
            batch.append(link)
            if len(batch) == 100:
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
        ids = [link.cube_id for link in batch if link.cube_id]
        remote = {}
        if ids:
            page = client.get_users_by_ids(ids, per_page=100)
            remote = {user.id: user for user in page.items}
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


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _discard_broken_connection() -> None:
    """Keep this thread's database connection across pushes, unless an error broke it.

    (``close_old_connections`` would close it after every user under ``CONN_MAX_AGE = 0``, and
    opening a PostgreSQL connection costs more than a push.)
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()

"""Re-encrypt every stored session token under the newest key of ``TOKEN_KEYS``.

Put the new key first in ``CONNECTYCUBE["TOKEN_KEYS"]`` (or rotate ``SECRET_KEY`` and keep the old
one in ``SECRET_KEY_FALLBACKS``), deploy, run this command, then drop the old key. Rows stay
readable the whole time, because every configured key decrypts. The command works on the raw
column, so tokens are never decrypted into memory as model values, and each row is only written
if nobody renewed it meanwhile.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandParser
from django.db import models
from django.db.models.functions import Cast

from django_connectycube.management.validation import bounded_int, check_range
from django_connectycube.models import CubeSession
from django_connectycube.models.fields import rotate

MAX_BATCH = 10_000


class Command(BaseCommand):
    help = (
        "Re-encrypt stored ConnectyCube session tokens under the first key of "
        'CONNECTYCUBE["TOKEN_KEYS"]. Rows no configured key can decrypt are listed, not deleted.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=bounded_int("--batch-size", 1, MAX_BATCH),
            default=500,
            help=f"rows per batch (1-{MAX_BATCH}, default 500)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = check_range("--batch-size", options["batch_size"], 1, MAX_BATCH)
        # Cast to a plain TextField: the encrypted field would decrypt on read.
        raw = CubeSession.objects.annotate(raw=Cast("token", output_field=models.TextField()))
        rotated = empty = changed = 0
        unreadable: list[int] = []
        last_pk = 0
        while True:
            batch = list(
                raw.filter(pk__gt=last_pk).order_by("pk").values_list("pk", "raw")[:batch_size]
            )
            if not batch:
                break
            last_pk = batch[-1][0]
            for pk, value in batch:
                if not value:
                    empty += 1
                    continue
                try:
                    new_value = rotate(value)
                except InvalidToken:
                    unreadable.append(pk)
                    continue
                # Compare-and-set on the raw value: a renewal that wrote a new token since we
                # read this one (already under the newest key) is left alone.
                written = raw.filter(pk=pk, raw=value).update(
                    token=models.Value(new_value, output_field=models.TextField())
                )
                if written:
                    rotated += 1
                else:
                    changed += 1
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {rotated} token(s) under the newest key.")
        )
        if empty:
            self.stdout.write(f"{empty} row(s) hold no token.")
        if changed:
            self.stdout.write(f"{changed} row(s) changed meanwhile (already under the new key).")
        if unreadable:
            shown = ", ".join(str(pk) for pk in unreadable[:50])
            more = " …" if len(unreadable) > 50 else ""
            self.stderr.write(
                self.style.WARNING(
                    f"{len(unreadable)} row(s) could not be decrypted with any configured key "
                    f"(CubeSession pk {shown}{more}). Add the key they were written with to "
                    'CONNECTYCUBE["TOKEN_KEYS"] and run again, or flush them: those users simply '
                    "log in to ConnectyCube again."
                )
            )

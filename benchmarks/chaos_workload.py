"""The seeded workload of a chaos run: the local changes, and what they leave to check.

Creates, profile and avatar changes, deletes, re-creates of deleted usernames, bursts of saves
on one user, saves in rolled-back transactions, and a few users ConnectyCube must refuse.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PNG_HEADER", "ROLLBACK_MARK", "Workload"]

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
ROLLBACK_MARK = "ROLLBACK"


@dataclass
class Workload:
    """The seeded sequence of local changes, and what it leaves behind to check against."""

    rng: random.Random
    users: int
    ops: Counter[str] = field(default_factory=Counter)
    created: int = 0
    live: dict[int, str] = field(default_factory=dict)  # pk -> username
    deleted_pks: set[int] = field(default_factory=set)
    reusable: list[str] = field(default_factory=list)  # usernames of deleted users
    rollback_logins: set[str] = field(default_factory=set)
    invalid: set[int] = field(default_factory=set)  # pks ConnectyCube refuses, on purpose
    serial: int = 0

    def _user_model(self) -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model()

    def _profile(self, username: str) -> dict[str, Any]:
        rng = self.rng
        return {
            "email": f"{username}@example.com",
            "first_name": rng.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", ""]),
            "last_name": f"L{rng.randrange(10**6)}",
            "phone": f"+44{rng.randrange(10**9):09d}" if rng.random() < 0.5 else "",
            "tags": ",".join(rng.sample(["red", "green", "blue", "ops", "dev"], rng.randint(0, 3))),
        }

    def _avatar(self, pk: int) -> tuple[str, bytes]:
        self.serial += 1
        size = self.rng.randint(64, 1500)
        return f"a{pk}-{self.serial}.png", PNG_HEADER + self.rng.randbytes(size)

    def create(self, username: str | None = None) -> None:
        from django.core.files.base import ContentFile

        User = self._user_model()
        recreate = username is not None
        if username is None:
            username = f"chaos{self.created:05d}"
            self.created += 1
        user = User.objects.create(username=username, **self._profile(username))
        if self.rng.random() < 0.2:
            name, content = self._avatar(user.pk)
            user.avatar.save(name, ContentFile(content), save=True)
        self.live[user.pk] = username
        self.ops["re-create" if recreate else "create"] += 1

    def create_invalid(self) -> None:
        """A user ConnectyCube refuses (six tags, it takes five): a deliberate permanent error,
        the one kind of row that must end ``failed``. Never picked for a change afterwards."""
        User = self._user_model()
        username = f"invalid{len(self.invalid):03d}"
        user = User.objects.create(username=username, tags="a,b,c,d,e,f")
        self.live[user.pk] = username
        self.invalid.add(user.pk)
        self.ops["invalid create"] += 1

    def pick(self) -> Any:
        pk = self.rng.choice(sorted(set(self.live) - self.invalid))
        return self._user_model().objects.get(pk=pk)

    def update_profile(self) -> None:
        user = self.pick()
        for key, value in self._profile(user.username).items():
            if key != "email" and self.rng.random() < 0.6:
                setattr(user, key, value)
        user.save()
        self.ops["profile update"] += 1

    def update_unmapped(self) -> None:
        user = self.pick()
        user.bio = f"bio {self.rng.randrange(10**6)}"
        user.save(update_fields=["bio"])
        self.ops["unmapped update"] += 1

    def change_avatar(self) -> None:
        from django.core.files.base import ContentFile

        user = self.pick()
        if user.avatar and self.rng.random() < 0.25:
            user.avatar = None
            user.save()
            self.ops["avatar removed"] += 1
            return
        name, content = self._avatar(user.pk)
        user.avatar.save(name, ContentFile(content), save=True)
        self.ops["avatar change"] += 1

    def delete(self) -> None:
        user = self.pick()
        pk, username = user.pk, user.username
        user.delete()
        del self.live[pk]
        self.deleted_pks.add(pk)
        self.reusable.append(username)
        self.ops["delete"] += 1

    def recreate(self) -> None:
        username = self.reusable.pop(self.rng.randrange(len(self.reusable)))
        self.create(username)

    def burst(self) -> None:
        user = self.pick()
        for i in range(self.rng.randint(5, 25)):
            user.first_name = f"burst{i}-{self.rng.randrange(1000)}"
            user.save()
        self.ops["burst"] += 1

    def rolled_back(self) -> None:
        from django.db import transaction

        User = self._user_model()
        kind = self.rng.choice(["create", "update", "delete"])

        class Rollback(Exception):
            pass

        with contextlib.suppress(Rollback), transaction.atomic():
            if kind == "create":
                login = f"rb-{self.serial}-{self.rng.randrange(10**6)}"
                self.serial += 1
                self.rollback_logins.add(login)
                User.objects.create(username=login, first_name=ROLLBACK_MARK)
            elif kind == "update":
                user = self.pick()
                user.first_name = ROLLBACK_MARK
                user.save()
            else:
                self.pick().delete()
            raise Rollback
        self.ops[f"rolled-back {kind}"] += 1

    def step(self, remaining_steps: int) -> None:
        """One operation; creates are spread so that all ``users`` exist by the end."""
        remaining_creates = self.users - self.created
        if remaining_creates and (
            len(self.live) - len(self.invalid) < 2
            or self.rng.random() < remaining_creates / max(remaining_steps, 1)
        ):
            self.create()
            return
        choices: list[tuple[Callable[[], None], int]] = [
            (self.update_profile, 30),
            (self.update_unmapped, 5),
            (self.change_avatar, 15),
            (self.delete, 8 if len(self.live) - len(self.invalid) > 2 else 0),
            (self.recreate, 6 if self.reusable else 0),
            (self.burst, 5),
            (self.rolled_back, 7),
        ]
        funcs, weights = zip(*choices, strict=True)
        self.rng.choices(funcs, weights)[0]()

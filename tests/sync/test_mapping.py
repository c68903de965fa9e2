import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from django_connectycube.conf import ConfigurationError
from django_connectycube.sync import mapping

User = get_user_model()
CREDS = {"APPLICATION_ID": 7, "AUTH_KEY": "k", "AUTH_SECRET": "s"}


def make(username="alice", pk=1, **kwargs):
    return User(pk=pk, username=username, **kwargs)


def test_valid_username_is_the_login():
    assert mapping.derive_login(make("alice.b-c_d@x+y")) == "alice.b-c_d@x+y"


@pytest.mark.parametrize(
    "username",
    ["al", "José Ñandú", "x" * 150, "a b", "名前", "!!!", "bob!"],
)
def test_derived_login_is_always_valid(username):
    login = mapping.derive_login(make(username, pk=42))
    assert mapping.LOGIN_MIN <= len(login) <= mapping.LOGIN_MAX
    assert all(c.isascii() and (c.isalnum() or c in "_.@+-") for c in login)


def test_transformed_logins_of_different_users_differ():
    a = mapping.derive_login(make("bob!", pk=1))
    b = mapping.derive_login(make("bob?", pk=2))
    assert a != b
    assert a.startswith("bob_-") and b.startswith("bob_-")


def test_transliteration_keeps_readable_part():
    assert mapping.derive_login(make("José", pk=3)).startswith("Jose-")


def test_default_fields_include_optional_model_fields():
    user = make(
        "carol",
        pk=5,
        email="carol@example.com",
        first_name="Carol",
        last_name="King",
        phone="+4912345",
        website="https://carol.example",
        tags="music, piano,,",
    )
    assert mapping.get_user_fields(user, "dj-link") == {
        "login": "carol",
        "external_id": "dj-link",
        "email": "carol@example.com",
        "full_name": "Carol King",
        "phone": "+4912345",
        "website": "https://carol.example",
        "tag_list": "music,piano",
    }


def test_empty_email_is_not_sent():
    assert "email" not in mapping.get_user_fields(make(email=""), "dj-link")


def test_default_trigger_fields_come_from_the_model():
    fields = mapping.trigger_fields(User)
    assert {"username", "email", "first_name", "last_name", "phone", "website", "tags"} <= fields
    assert "bio" not in fields
    assert "last_login" not in fields
    assert mapping.needs_push(User, None)
    assert mapping.needs_push(User, frozenset({"email"}))
    assert not mapping.needs_push(User, frozenset({"last_login"}))
    assert not mapping.needs_push(User, frozenset({"bio", "password"}))


@mapping.reads("first_name")
def only_first_name(user):
    return {"login": f"user{user.pk:03d}", "full_name": user.first_name}


def undeclared(user):
    return {"login": f"user{user.pk:03d}"}


def test_custom_mapping_by_dotted_path():
    with override_settings(
        CONNECTYCUBE={**CREDS, "USER_FIELDS": "tests.sync.test_mapping.only_first_name"}
    ):
        fields = mapping.get_user_fields(make("zed", pk=9, first_name="Zed"), "dj-9")
        assert fields == {"login": "user009", "full_name": "Zed", "external_id": "dj-9"}
        assert mapping.trigger_fields(User) == frozenset({"first_name"})
        assert not mapping.needs_push(User, frozenset({"email"}))


def test_custom_mapping_cannot_change_external_id():
    def sneaky(user):
        return {"login": "sneaky", "external_id": "other"}

    with override_settings(CONNECTYCUBE={**CREDS, "USER_FIELDS": sneaky}):
        assert mapping.get_user_fields(make(pk=3), "dj-3")["external_id"] == "dj-3"


@pytest.mark.django_db
def test_external_id_is_the_links_never_the_pk():
    user = User.objects.create(username="linked")
    link_id = user.connectycube.external_id
    assert link_id != str(user.pk)
    assert mapping.get_user_fields(user)["external_id"] == link_id
    assert "external_id" not in mapping.get_user_fields(make("unsaved", pk=99))


def test_undeclared_mapping_pushes_on_every_save():
    with override_settings(
        CONNECTYCUBE={**CREDS, "USER_FIELDS": "tests.sync.test_mapping.undeclared"}
    ):
        assert mapping.trigger_fields(User) is None
        assert mapping.needs_push(User, frozenset({"bio"}))


def test_unimportable_mapping_names_the_setting():
    with override_settings(CONNECTYCUBE={**CREDS, "USER_FIELDS": "nowhere.to.be.found"}):
        with pytest.raises(ConfigurationError, match=r'CONNECTYCUBE\["USER_FIELDS"\]'):
            mapping.get_user_fields(make(), "dj-link")


def test_digest_is_stable_and_sensitive():
    a = mapping.fields_digest({"login": "a", "full_name": "A"})
    assert a == mapping.fields_digest({"full_name": "A", "login": "a"})
    assert a != mapping.fields_digest({"login": "a", "full_name": "B"})


def test_password_is_derived_not_random():
    with override_settings(CONNECTYCUBE=CREDS):
        one = mapping.derive_password(1)
        assert one == mapping.derive_password(1)
        assert one != mapping.derive_password(2)
        assert len(one) == 32
    with override_settings(CONNECTYCUBE={**CREDS, "APPLICATION_ID": 8}):
        assert mapping.derive_password(1) != one


def test_password_versions_rotate():
    secrets = {1: "old secret", 2: "new secret"}
    with override_settings(CONNECTYCUBE={**CREDS, "PASSWORD_SECRETS": secrets}):
        assert mapping.current_password_version() == 2
        assert mapping.derive_password(1) == mapping.derive_password(1, version=2)
        assert mapping.derive_password(1, version=1) != mapping.derive_password(1, version=2)
        with pytest.raises(ConfigurationError, match="no secret for version 3"):
            mapping.derive_password(1, version=3)


def test_password_of_a_pre_minting_link_is_unchanged():
    # Links made before external ids were minted keep the pk as their external id; their
    # remote users were created with HMAC(secret, "<application id>:<pk>") and still are.
    import base64
    import hashlib
    import hmac

    with override_settings(CONNECTYCUBE={**CREDS, "PASSWORD_SECRETS": {1: "s3cret"}}):
        digest = hmac.new(b"s3cret", b"7:42", hashlib.sha256).digest()
        expected = base64.urlsafe_b64encode(digest).decode("ascii")[:32]
        assert mapping.derive_password("42") == mapping.derive_password(42) == expected


def test_password_defaults_to_secret_key(settings):
    settings.CONNECTYCUBE = CREDS
    before = mapping.derive_password(1)
    settings.SECRET_KEY = "another-secret-key"
    assert mapping.derive_password(1) != before

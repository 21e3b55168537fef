#!/usr/bin/python3
"""Regenerates fixture.sqlite3 and fixture.json, the Django database that the
import tests of tokenauth read, and what they expect to find in it.

The database is made by Django itself: auth's and Django REST framework's
migrations create auth_user and authtoken_token, and the accounts app of
this folder adds accounts_apitoken (the APIToken model: a 64-character hex
key stored in plain text). Users get their passwords through Django's own
hashers, so the hashes are exactly what a Django site holds.

Needs Debian's packages (run with the system Python, which sees them):

    apt-get install -y python3-django python3-djangorestframework python3-argon2 python3-bcrypt
    /usr/bin/python3 tests/testdata/django/make_fixture.py

The salts, keys and hashes are random, so every run writes a different
file; the tests read what to expect from fixture.json.
"""

import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DB_PATH = os.path.join(HERE, "fixture.sqlite3")
JSON_PATH = os.path.join(HERE, "fixture.json")

sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # leave no __pycache__ in testdata

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DEBUG=False,
    SECRET_KEY="fixture only",
    USE_TZ=True,  # Django stores UTC, as every project made by startproject does
    TIME_ZONE="UTC",
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "rest_framework",
        "rest_framework.authtoken",
        "accounts",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB_PATH}},
    # The stock PBKDF2 hasher comes first: it is Django's default, and alice's
    # hash is made by it with its real cost.
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "accounts.hashers.CheapArgon2PasswordHasher",
        "accounts.hashers.CheapBCryptSHA256PasswordHasher",
    ],
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()

from django.contrib.auth.hashers import check_password, make_password  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework import VERSION as DRF_VERSION  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from accounts.hashers import CheapPBKDF2PasswordHasher  # noqa: E402
from accounts.models import APIToken  # noqa: E402


def at(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)


def iso(value):
    return None if value is None else value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


# username, email, password (None: unusable), hasher, active, joined, last login
USERS = [
    ("alice", "alice@example.com", "Wonderland rabbit hole 7", "pbkdf2_sha256", True,
     "2019-03-01 09:30:00.123456", "2024-06-30 18:00:00"),
    ("bob", "bob@example.com", "builder of bridges 42", "argon2", True, "2020-05-17 12:00:00", None),
    ("carol", "carol@example.com", "carols at christmas 2023", "bcrypt_sha256", True,
     "2021-11-02 08:15:30", "2024-01-05 07:00:00"),
    ("dave", "dave@example.com", "daves not here man 1971", "pbkdf2_cheap", False, "2018-07-07 07:07:07", None),
    ("erin", "", None, None, True, "2022-02-22 22:22:22", None),
    ("Zoë", "zoe@example.com", "zoë and the zebras 99", "pbkdf2_cheap", True, "2023-08-08 08:08:08", None),
]

# username, name, created, last used, expiry
API_TOKENS = [
    ("alice", "Phone", "2023-01-10 10:00:00", "2024-06-30 17:59:12.500000", "2099-01-01 00:00:00"),
    ("alice", "CI", "2023-02-01 00:00:00", None, None),
    ("alice", "Old laptop", "2020-01-01 00:00:00", "2020-12-01 00:00:00", "2021-01-01 00:00:00"),
    ("bob", "Backup script", "2021-03-03 03:03:03", "2024-02-02 02:02:02", None),
    ("carol", "Tablet", "2022-04-04 04:04:04", None, "2098-04-04 04:04:04"),
    ("dave", "Dormant", "2019-01-01 00:00:00", None, None),
    ("erin", "Service account", "2022-03-01 00:00:00", "2024-06-01 00:00:00", None),
]

# username, created
AUTH_TOKENS = [
    ("alice", "2022-12-12 12:12:12"),
    ("bob", "2021-01-01 00:00:00"),
    ("erin", "2022-02-23 00:00:00"),
]


def main():
    for path in (DB_PATH, DB_PATH + "-journal"):
        if os.path.exists(path):
            os.remove(path)
    call_command("migrate", run_syncdb=True, verbosity=0)

    users = {}
    expected_users = []
    for username, email, password, hasher, active, joined, last_login in USERS:
        user = User(username=username, email=email, is_active=active,
                    date_joined=at(joined), last_login=at(last_login) if last_login else None)
        if password is None:
            user.set_unusable_password()
        elif hasher == "pbkdf2_cheap":
            user.password = make_password(password, hasher=CheapPBKDF2PasswordHasher())
        else:
            user.password = make_password(password, hasher=hasher)
        user.save()
        assert password is None or check_password(password, user.password)
        users[username] = user
        expected_users.append({
            "id": user.pk,
            "username": username,
            "email": email,
            "password": password,
            "algorithm": user.password.split("$", 1)[0] if password else "unusable",
            "is_active": active,
            "date_joined": iso(user.date_joined),
            "last_login": iso(user.last_login),
        })

    expected_api = []
    for username, name, created, last_used, expires in API_TOKENS:
        token = APIToken.objects.create(user=users[username], name=name,
                                        last_used_at=at(last_used) if last_used else None,
                                        expires_at=at(expires) if expires else None)
        # auto_now_add ignores a value given to create().
        APIToken.objects.filter(pk=token.pk).update(created_at=at(created))
        token.refresh_from_db()
        expected_api.append({
            "username": username,
            "key": token.key,
            "name": name,
            "created_at": iso(token.created_at),
            "last_used_at": iso(token.last_used_at),
            "expires_at": iso(token.expires_at),
        })

    expected_auth = []
    for username, created in AUTH_TOKENS:
        token = Token.objects.create(user=users[username])
        Token.objects.filter(pk=token.pk).update(created=at(created))
        token.refresh_from_db()
        expected_auth.append({"username": username, "key": token.key, "created": iso(token.created)})

    with open(JSON_PATH, "w", encoding="utf-8") as f:
        json.dump({
            "made_by": "Django %s, Django REST framework %s" % (django.get_version(), DRF_VERSION),
            "users": expected_users,
            "api_tokens": expected_api,
            "auth_tokens": expected_auth,
        }, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print("wrote %s and %s" % (DB_PATH, JSON_PATH))


if __name__ == "__main__":
    main()

"""Django's own password hashers with lower costs, so that the tests that
check these hashes stay quick. The encoded strings are the ones the stock
hashers write: only the cost numbers inside them differ."""

from django.contrib.auth.hashers import (
    Argon2PasswordHasher,
    BCryptSHA256PasswordHasher,
    PBKDF2PasswordHasher,
)


class CheapPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 1024
    parallelism = 2


class CheapBCryptSHA256PasswordHasher(BCryptSHA256PasswordHasher):
    rounds = 4

"""An account's status, spelled once (a leaf module: the domain's other packages import it without
importing the accounts service)."""

from __future__ import annotations

from enum import StrEnum


class AccountStatus(StrEnum):
    ACTIVE = "active"  # publishing works
    EXPIRED = "expired"  # the network refused the token and a refresh: the user must reconnect
    ERROR = "error"  # the network refused the account itself (suspended, permissions gone)


ACCOUNT_STATUSES: tuple[AccountStatus, ...] = tuple(AccountStatus)

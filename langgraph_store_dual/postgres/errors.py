"""Errors of the PostgreSQL engine (here, not in `errors`, so that importing the package
does not import psycopg)."""

from __future__ import annotations

import psycopg

from ..errors import StoreError


class ConnectError(StoreError, psycopg.OperationalError):
    """PostgreSQL cannot be reached or refused the connection (wrong password, role or
    database, nothing listening): the server's own message, never the password. Also a
    `psycopg.OperationalError`, as the official savers raise."""

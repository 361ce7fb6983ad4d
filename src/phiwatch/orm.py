"""The declarative base of every table phiwatch stores (store.py's scans, watch/tables.py's lifecycle).

A module of its own, so the migrations can read the tables' metadata without importing the store,
which imports them."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass

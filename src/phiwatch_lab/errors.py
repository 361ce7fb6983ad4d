"""The one exception the lab raises: a short, one-line, PHI-free explanation."""

from __future__ import annotations


class LabError(Exception):
    """The lab could not be started, stopped or inspected."""

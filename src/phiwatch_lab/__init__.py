"""The built-in lab: real DICOM servers on loopback with documented, known exposures.

``up()`` starts them in the background and writes a manifest describing every
service and what a scanner must find there; ``down()`` stops them; ``status()``
tells which run. Nothing the lab prints or logs contains a patient value.
"""

from __future__ import annotations

from .control import DEFAULT_BASE_PORT, default_state_dir, down, manifest, status, up
from .errors import LabError

__all__ = [
    "DEFAULT_BASE_PORT",
    "LabError",
    "default_state_dir",
    "down",
    "manifest",
    "status",
    "up",
]

"""phiwatch: find exposed medical images and health records, prove each exposure without copying patient data."""

__version__ = "0.1.0"

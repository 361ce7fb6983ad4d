"""Renderers of one ScanResult. They never re-derive severities or facts."""

"""`phiwatch sniff` for a person: counts by kind, PHI attribute names, what limited the walk.

Never a file name or a value: only counts, kinds and attribute names.
"""

from __future__ import annotations

from ..content.walk import SniffSummary

KIND_NAMES = {"dicom": "DICOM", "dicomdir": "DICOMDIR", "hl7": "HL7 v2", "x12": "X12"}


def human_summary(summary: SniffSummary) -> list[str]:
    lines = [f"{summary.target}: {summary.files_seen} files in {summary.directories} folders, "
             f"{summary.files_sniffed} sniffed ({summary.bytes_read} bytes read) in "
             f"{summary.elapsed_seconds:.1f} s"]
    found = False
    for kind, count in sorted(summary.kinds.items()):
        all_files = count.verified + count.unverified + count.estimated
        if not all_files:
            continue
        found = True
        parts = [f"{count.verified} verified"]
        if count.unverified:
            parts.append(f"{count.unverified} look like it")
        if count.estimated:
            parts.append(f"{count.estimated} estimated from names")
        records = summary.records.get(kind)
        extra = f", {records} records" if records else ""
        lines.append(f"  {KIND_NAMES.get(kind, kind):<9} {all_files:>7} files ({', '.join(parts)}{extra})")
    if not found:
        lines.append("  no DICOM, DICOMDIR, HL7 or X12 file found")
    for kind, names in sorted(summary.phi_attributes.items()):
        if names:
            lines.append(f"  PHI attributes in {KIND_NAMES.get(kind, kind)}: {', '.join(names)}")
    if summary.hl7_message_types:
        lines.append(f"  HL7 message types: {', '.join(summary.hl7_message_types)}")
    if summary.transaction_sets:
        lines.append(f"  X12 transaction sets: {', '.join(summary.transaction_sets)}")
    limits = []
    if summary.file_limit_reached:
        limits.append(f"--max-files reached ({summary.files_estimated_by_name} files counted from names)")
    if summary.directories_beyond_depth:
        limits.append(f"{summary.directories_beyond_depth} folders beyond --max-depth")
    if summary.listing_limit_reached:
        limits.append("listing limit reached")
    if summary.truncated_files:
        limits.append(f"{summary.truncated_files} headers longer than --budget")
    if limits:
        lines.append("  limited: " + "; ".join(limits))
    skipped = sum(summary.errors.values())
    if skipped or summary.symlinks_skipped or summary.special_files:
        errors = ", ".join(f"{n} {status}" for status, n in sorted(summary.errors.items()))
        lines.append(f"  skipped: {summary.symlinks_skipped} symbolic links, {summary.special_files} special "
                     f"files" + (f", unreadable: {errors}" if errors else ""))
    lines.append("no file name or value is shown; --json for the whole summary")
    return lines

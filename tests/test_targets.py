"""Given target and port specifications, phiwatch streams exactly the intended addresses."""

from __future__ import annotations

import ipaddress
import itertools
import tracemalloc

import pytest

from phiwatch.targets import TargetError, build_targets, parse_ports


def addresses(*specs, excludes=()):
    return list(build_targets(specs, excludes=excludes).addresses())


def test_addresses_blocks_and_ranges():
    assert addresses("127.0.0.1") == ["127.0.0.1"]
    assert addresses("127.0.0.0/30") == ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert addresses("10.0.0.1-3") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert addresses("10.0.0.254-10.0.1.1") == ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]
    assert addresses("::1") == ["::1"]
    assert addresses("fe80::/126") == ["fe80::", "fe80::1", "fe80::2", "fe80::3"]


def test_overlaps_are_merged_and_excludes_always_win():
    targets = build_targets(["127.0.0.0/29", "127.0.0.4-10"], excludes=["127.0.0.2,127.0.0.5-6"])
    assert targets.size == 11 - 3
    assert "127.0.0.5" not in list(targets.addresses())
    assert "127.0.0.2" not in targets and "127.0.0.7" in targets


def test_exclude_file_is_a_do_not_probe_list(tmp_path):
    (tmp_path / "fragile.txt").write_text("# MRI console\n127.0.0.3\n127.0.0.8/29  # lab\n")
    targets = build_targets(["127.0.0.0/28"], exclude_files=[str(tmp_path / "fragile.txt")])
    assert list(targets.addresses()) == [f"127.0.0.{i}" for i in (0, 1, 2, 4, 5, 6, 7)]


def test_target_files_by_flag_or_by_argument(tmp_path):
    listing = tmp_path / "targets.txt"
    listing.write_text("127.0.0.1, 127.0.0.2\n\n127.0.0.9 # comment\n")
    assert build_targets([], list_files=[str(listing)]).size == 3
    assert build_targets([str(listing)]).size == 3


def test_host_names_are_resolved_forward_only():
    assert addresses("localhost")[0] in ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    "spec",
    ["1.2.3.4.5", "10.0.0.9-3", "10.0.0.1-300", "300.1.1.1/8", "", "a" * 600, "bad_name!",
     "no-such-host.invalid", "10.0.0.1-::1"],
)
def test_bad_targets_raise_one_clear_error(spec):
    with pytest.raises(TargetError) as info:
        build_targets([spec])
    assert "\n" not in str(info.value)


def test_a_huge_block_is_streamed_not_expanded():
    tracemalloc.start()
    targets = build_targets(["10.0.0.0/8"])
    first = list(itertools.islice(targets.addresses(), 5))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert targets.size == 2**24
    assert first[0] == "10.0.0.0" and first[-1] == "10.0.0.4"
    assert peak < 1024 * 1024


def test_ports():
    assert parse_ports("104,4242,11110-11112,104") == [104, 4242, 11110, 11111, 11112]
    for bad in ("0", "70000", "x", "5-1", ","):
        with pytest.raises(TargetError):
            parse_ports(bad)


def test_streamed_text_is_the_canonical_address_text():
    for spec in ("1.0.0.0-1.0.0.2", "255.255.255.252-255.255.255.254", "10.0.0.255-10.0.1.0",
                 "2001:db8::fffe-2001:db8::1:1"):
        streamed = addresses(spec)
        start, end = (ipaddress.ip_address(part) for part in spec.split("-"))
        expected = [str(ipaddress.ip_address(v)) for v in range(int(start), int(end) + 1)]
        assert streamed == expected
        assert all(isinstance(text, str) for text in streamed)


def test_a_large_sweep_keeps_no_address_objects():
    targets = build_targets(["10.0.0.0/16"])
    tracemalloc.start()
    count = sum(1 for _ in targets.addresses())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 65536
    assert peak < 64 * 1024

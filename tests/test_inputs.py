"""Service lists from nmap, masscan and ZMap stream exactly their open TCP (address, port) pairs.

The samples are written by hand from each tool's source (masscan src/out-*.c, ZMap
src/zmap.c and output_modules/module_csv.c, nmap's docs/nmap.dtd and a real nmap 7.93
run); only the last test runs a real tool: nmap against a listener on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from phiwatch.inputs import FORMATS, count_services, detect_format, read_services
from phiwatch.targets import TargetError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def services(path: Path, fmt: str = "auto", **options) -> list[tuple[str, int]]:
    return list(read_services(path, fmt, **options))


def error_of(path: Path, fmt: str = "auto", **options) -> str:
    with pytest.raises(TargetError) as caught:
        services(path, fmt, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- samples -----------------------------------------------------------------

NMAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="file:///usr/bin/../share/nmap/nmap.xsl" type="text/xsl"?>
<!-- Nmap 7.93 scan initiated Tue Nov 14 22:13:20 2023 as: nmap -n -sS -sU -O -oX scan.xml 10.1.2.0/29 -->
<nmaprun scanner="nmap" args="nmap -n -sS -sU -O -oX scan.xml 10.1.2.0/29" start="1700000000" \
startstr="Tue Nov 14 22:13:20 2023" version="7.93" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="3" services="104,4242,11112"/>
<scaninfo type="udp" protocol="udp" numservices="1" services="161"/>
<verbose level="0"/>
<debugging level="0"/>
<hosthint><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="10.1.2.3" addrtype="ipv4"/>
<address addr="00:11:22:33:44:55" addrtype="mac"/>
<hostnames>
</hostnames>
</hosthint>
<host starttime="1700000000" endtime="1700000001"><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="10.1.2.3" addrtype="ipv4"/>
<address addr="00:11:22:33:44:55" addrtype="mac" vendor="Siemens Healthcare"/>
<hostnames>
</hostnames>
<ports><extraports state="closed" count="1">
<extrareasons reason="reset" count="1" proto="tcp" ports="4242"/>
</extraports>
<port protocol="tcp" portid="104"><state state="open" reason="syn-ack" reason_ttl="64"/>\
<service name="dicom" method="table" conf="3"/></port>
<port protocol="tcp" portid="11112"><state state="filtered" reason="no-response" reason_ttl="0"/>\
<service name="dicom" method="table" conf="3"/></port>
<port protocol="udp" portid="161"><state state="open" reason="udp-response" reason_ttl="64"/>\
<service name="snmp" method="table" conf="3"/></port>
</ports>
<os><portused state="open" proto="tcp" portid="104"/>
<portused state="closed" proto="tcp" portid="4242"/>
</os>
<times srtt="310" rttvar="190" to="100000"/>
</host>
<host starttime="1700000000" endtime="1700000001"><status state="up" reason="echo-reply" reason_ttl="64"/>
<address addr="10.1.2.4" addrtype="ipv4"/>
<hostnames>
<hostname name="pacs.example.org" type="PTR"/>
</hostnames>
<ports><port protocol="tcp" portid="11112"><state state="open|filtered" reason="no-response" reason_ttl="0"/>\
</port>
<port protocol="tcp" portid="4242"><state state="open" reason="syn-ack" reason_ttl="64"/>\
<service name="vrml-multi-use" method="table" conf="3"/><script id="banner" output="&#xa;"/></port>
</ports>
</host>
<host starttime="1700000000" endtime="1700000001"><status state="up" reason="user-set" reason_ttl="0"/>
<address addr="2001:db8::a" addrtype="ipv6"/>
<hostnames>
</hostnames>
<ports><port protocol="tcp" portid="11112"><state state="open" reason="syn-ack" reason_ttl="64"/></port>
</ports>
</host>
<host starttime="1700000000" endtime="1700000002"><status state="down" reason="no-response" reason_ttl="0"/>
<address addr="10.1.2.5" addrtype="ipv4"/>
</host>
<runstats><finished time="1700000002" timestr="Tue Nov 14 22:13:22 2023" summary="Nmap done" elapsed="2.10" \
exit="success"/><hosts up="3" down="1" total="4"/>
</runstats>
</nmaprun>
"""
NMAP_EXPECTED = [("10.1.2.3", 104), ("10.1.2.4", 4242), ("2001:db8::a", 11112)]


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


PORT_4242_LINE = line_of(NMAP_XML, '<port protocol="tcp" portid="4242"')
SECOND_HOST_ADDRESS_LINE = line_of(NMAP_XML, '<address addr="10.1.2.4"')
TRUNCATED_LAST_LINE = line_of(NMAP_XML, "<runstats>")


def masscan_xml_host(address: str, port: int, state: str = "open", proto: str = "tcp", banner: str = "") -> str:
    """One line exactly as masscan's xml_out_status / xml_out_banner print it (CRLF included)."""
    if banner:
        inner = (
            f'<state state="open" reason="syn-ack" reason_ttl="64" />'
            f'<service name="http" banner="{banner}"></service>'
        )
    else:
        reason = "syn-ack" if state == "open" else "rst-ack"
        inner = f'<state state="{state}" reason="{reason}" reason_ttl="64"/>'
    return (
        f'<host endtime="1700000001"><address addr="{address}" addrtype="ipv4"/><ports>'
        f'<port protocol="{proto}" portid="{port}">{inner}</port></ports></host>\r\n'
    )


MASSCAN_XML_HEAD = (
    '<?xml version="1.0"?>\r\n<!-- masscan v1.0 scan -->\r\n'
    '<nmaprun scanner="masscan" start="1700000000" version="1.0-BETA"  xmloutputversion="1.03">\r\n'
    '<scaninfo type="syn" protocol="tcp" />\r\n'
)
MASSCAN_XML_TAIL = (
    '<runstats>\r\n<finished time="1700000002" timestr="2023-11-14 22:13:22" elapsed="2" />\r\n'
    '<hosts up="3" down="1" total="4" />\r\n</runstats>\r\n</nmaprun>\r\n'
)
MASSCAN_XML = (
    MASSCAN_XML_HEAD
    + masscan_xml_host("10.1.2.3", 104)
    + masscan_xml_host("2001:db8::7", 11112)  # masscan labels every address "ipv4", IPv6 too
    + masscan_xml_host("10.1.2.9", 104, state="closed")
    + masscan_xml_host("10.1.2.8", 161, proto="udp")
    + masscan_xml_host("10.1.2.10", 80, banner=r"HTTP/1.1 200 OK\x0d\x0aServer: Orthanc\x0d\x0a")
    + masscan_xml_host("10.1.2.3", 104)
    + MASSCAN_XML_TAIL
)
MASSCAN_EXPECTED = [("10.1.2.3", 104), ("2001:db8::7", 11112), ("10.1.2.10", 80)]

MASSCAN_LIST = """#masscan
open tcp 104 10.1.2.3 1700000000
open tcp 11112 2001:db8::7 1700000001
closed tcp 4242 10.1.2.9 1700000001
open udp 161 10.1.2.8 1700000002
banner tcp 80 10.1.2.10 1700000003 http HTTP/1.1 200 OK\\x0d\\x0aServer: Orthanc\\x0d\\x0a
open tcp 104 10.1.2.3 1700000004
# end
"""


def masscan_json_status(address: str, port: int, status: str = "open", proto: str = "tcp") -> str:
    """The text of json_out_status without its separator or newline."""
    reason = "syn-ack" if status == "open" else "rst-ack"
    return (
        f'{{   "ip": "{address}",   "timestamp": "1700000000", "ports": [ {{"port": {port}, "proto": "{proto}",'
        f' "status": "{status}", "reason": "{reason}", "ttl": 64}} ] }}'
    )


def masscan_json_banner(address: str, port: int, banner: str) -> str:
    return (
        f'{{   "ip": "{address}",   "timestamp": "1700000003", "ports": [ {{"port": {port}, "proto": "tcp",'
        f' "service": {{"name": "http", "banner": "{banner}"}} }} ] }}'
    )


JSON_RECORDS = [
    masscan_json_status("10.1.2.3", 104),
    masscan_json_status("2001:db8::7", 11112),
    masscan_json_status("10.1.2.9", 104, status="closed"),
    masscan_json_status("10.1.2.8", 161, proto="udp"),
    masscan_json_banner("10.1.2.10", 80, r"HTTP/1.1 200 OK\u000d\u000aServer: Orthanc"),
    masscan_json_status("10.1.2.3", 104),
]
# masscan 1.3+: valid JSON, the comma written before each record but the first.
MASSCAN_JSON_13 = "[\n" + ",\n".join(record + "\n" for record in JSON_RECORDS) + "]\n"
# masscan 1.0.5: brackets, but every record ends "},", so the last comma meets the "]".
MASSCAN_JSON_105 = "[\n" + "".join(record + ",\n" for record in JSON_RECORDS) + "]\n"
# masscan 1.0.4: no brackets, "}," after every record, then a line that is not JSON at all.
MASSCAN_JSON_104 = "".join(record + ",\n" for record in JSON_RECORDS) + "{finished: 1}\n"
# masscan -oD (ndjson), from out-ndjson.c.
MASSCAN_NDJSON = (
    '{"ip":"10.1.2.3","timestamp":"1700000000","port":104,"proto":"tcp","rec_type":"status",'
    '"data":{"status":"open","reason":"syn-ack","ttl":64}}\n'
    '{"ip":"2001:db8::7","timestamp":"1700000001","port":11112,"proto":"tcp","rec_type":"status",'
    '"data":{"status":"open","reason":"syn-ack","ttl":57}}\n'
    '{"ip":"10.1.2.9","timestamp":"1700000001","port":104,"proto":"tcp","rec_type":"status",'
    '"data":{"status":"closed","reason":"rst-ack","ttl":64}}\n'
    '{"ip":"10.1.2.10","timestamp":"1700000003","port":80,"proto":"tcp","rec_type":"banner",'
    '"data":{"service_name":"http","banner":"HTTP/1.1 200 OK"}}\n'
)

ZMAP_FULL = """saddr,sport,dport,classification,success,repeat
10.1.2.3,104,41234,synack,1,0
10.1.2.9,104,41234,rst,0,0
10.1.2.11,,,icmp,0,0
2001:db8::7,11112,52000,synack,1,0
10.1.2.3,104,41234,synack,1,1
"""

PLAIN_LIST = """# from last week's sweep
10.1.2.3:104

[2001:db8::1]:11112
10.1.2.4 4242   # whitespace works too
10.1.2.5,104
2001:db8::2 104
10.1.2.3:104
"""


# --- every format ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "fmt", "expected"),
    [
        ("nmap.xml", NMAP_XML, "xml", NMAP_EXPECTED),
        ("masscan.xml", MASSCAN_XML, "xml", MASSCAN_EXPECTED),
        ("masscan.txt", MASSCAN_LIST, "masscan-list", MASSCAN_EXPECTED),
        ("masscan-13.json", MASSCAN_JSON_13, "masscan-json", MASSCAN_EXPECTED),
        ("masscan-105.json", MASSCAN_JSON_105, "masscan-json", MASSCAN_EXPECTED),
        ("masscan-104.json", MASSCAN_JSON_104, "masscan-json", MASSCAN_EXPECTED),
        ("masscan.ndjson", MASSCAN_NDJSON, "masscan-json", MASSCAN_EXPECTED),
        ("zmap.csv", ZMAP_FULL, "zmap-csv", [("10.1.2.3", 104), ("2001:db8::7", 11112)]),
        (
            "services.txt",
            PLAIN_LIST,
            "list",
            [
                ("10.1.2.3", 104),
                ("2001:db8::1", 11112),
                ("10.1.2.4", 4242),
                ("10.1.2.5", 104),
                ("2001:db8::2", 104),
            ],
        ),
    ],
)
def test_each_format_yields_open_tcp_services_once(tmp_path, name, text, fmt, expected):
    path = write(tmp_path, name, text)
    assert detect_format(path) == fmt
    assert services(path) == expected
    assert services(path, fmt) == expected
    assert count_services(path) == len(expected)


def test_masscan_105_trailing_comma_is_really_invalid_json(tmp_path):
    with pytest.raises(json.JSONDecodeError):
        json.loads(MASSCAN_JSON_105)
    assert json.loads(MASSCAN_JSON_13)  # while 1.3's output is plain JSON


def test_reindented_masscan_json_is_read_too(tmp_path):
    pretty = json.dumps(json.loads(MASSCAN_JSON_13), indent=2)
    assert services(write(tmp_path, "pretty.json", pretty)) == MASSCAN_EXPECTED


def test_duplicates_can_be_kept(tmp_path):
    path = write(tmp_path, "masscan.txt", MASSCAN_LIST)
    assert services(path, dedupe=False) == MASSCAN_EXPECTED + [("10.1.2.3", 104)]


def test_addresses_are_canonical_and_families_never_collide(tmp_path):
    # IPv4-compatible and IPv4-mapped spellings are the IPv4 service itself (targets.canonical)
    path = write(tmp_path, "s.txt", "[2001:DB8:0::0:1]:104\n[2001:db8::1]:104\n[::10.1.2.3]:104\n10.1.2.3:104\n"
                 "[::ffff:10.1.2.3]:104\n[::1]:104\n")
    assert services(path) == [("2001:db8::1", 104), ("10.1.2.3", 104), ("::1", 104)]


# --- ports from elsewhere: ZMap's default output, bare addresses ---------------


def test_zmap_default_output_has_no_port_so_the_default_port_is_used(tmp_path):
    headerless = write(tmp_path, "zmap.txt", "10.1.2.3\n10.1.2.4\n2001:db8::7\n")
    assert services(headerless, default_port=104) == [("10.1.2.3", 104), ("10.1.2.4", 104), ("2001:db8::7", 104)]
    assert services(headerless, "zmap-csv", default_port=104) == services(headerless, default_port=104)
    assert (
        error_of(headerless)
        == "zmap.txt line 1: no port for 10.1.2.3 (write ADDRESS:PORT, or give a default port)"
    )
    assert "line 1: no port" in error_of(headerless, "zmap-csv")

    saddr_only = write(tmp_path, "zmap.csv", "saddr\n10.1.2.3\n")
    assert detect_format(saddr_only) == "zmap-csv"
    assert services(saddr_only, default_port=11112) == [("10.1.2.3", 11112)]
    assert error_of(saddr_only).startswith("zmap.csv line 1: ZMap output has no 'sport' column;")


def test_zmap_multi_port_default_output_is_saddr_comma_sport(tmp_path):
    path = write(tmp_path, "zmap.txt", "10.1.2.3,104\n10.1.2.4,11112\n")
    assert services(path) == services(path, "zmap-csv") == [("10.1.2.3", 104), ("10.1.2.4", 11112)]


def test_zmap_dport_is_zmaps_own_port_and_never_used(tmp_path):
    path = write(tmp_path, "zmap.csv", "saddr,dport\n10.1.2.3,41234\n")
    message = error_of(path)
    assert message.startswith("zmap.csv line 1: ZMap output has no 'sport' column ('dport' is ZMap's own port")
    assert services(path, default_port=104) == [("10.1.2.3", 104)]


def test_unfiltered_zmap_output_without_success_column_needs_a_port(tmp_path):
    path = write(tmp_path, "zmap.csv", "saddr,sport\n10.1.2.3,104\n10.1.2.11,\n")
    assert error_of(path).startswith("zmap.csv line 3: empty 'sport'")


# --- malformed input: one line, file name and line number ------------------------


def test_bad_port_names_file_and_line(tmp_path):
    good = "".join(f"10.1.2.{i}:104\n" for i in range(1, 17))
    path = write(tmp_path, "targets.txt", good + "10.1.2.99:70000\n10.1.2.100:104\n")
    with pytest.raises(TargetError, match=r"^targets\.txt line 17: bad port '70000'$"):
        services(path)
    # streaming: what came before the bad line was already yielded
    stream = read_services(path)
    assert [next(stream) for _ in range(16)][-1] == ("10.1.2.16", 104)
    with pytest.raises(TargetError):
        next(stream)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "10.1.2.3:104\npacs.example.org:104\n",
            "line 2: 'pacs.example.org' is a host name; service lists must hold",
        ),
        ("10.1.2.3:0\n", "line 1: bad port '0'"),
        ("# c\n\n10.1.2.3:http\n", "line 3: bad port 'http'"),
        ("10.1.2.3:\n", "line 1: bad port ''"),
        ("10.1.2.300:104\n", "line 1: bad address '10.1.2.300'"),
        ("010.1.2.3:104\n", "line 1: ambiguous address '010.1.2.3': 8.1.2.3 to the resolver (octal), 10.1.2.3"),
        ("10.1.2.3 104 4242\n", "line 1: expected ADDRESS:PORT, got '10.1.2.3 104 4242'"),
        ("2001:db8::1:104\n", "line 1: no port for 2001:db8::1:104 (IPv6 services are written [address]:port)"),
        ("[2001:db8::1]104\n", "line 1: expected [IPv6]:PORT"),
        ("[fe80::1%eth0]:104\n", "line 1: scoped IPv6 address 'fe80::1%eth0' is not supported"),
        ("224.0.0.1:104\n", "line 1: '224.0.0.1' is not a unicast address"),
        ("0.0.0.0:104\n", "line 1: '0.0.0.0' is not a unicast address"),
        ("[ff02::1]:104\n", "line 1: 'ff02::1' is not a unicast address"),
    ],
)
def test_malformed_plain_lists(tmp_path, text, message):
    assert error_of(write(tmp_path, "services.txt", text)).startswith(f"services.txt {message}")


@pytest.mark.parametrize(
    ("name", "text", "fmt", "message"),
    [
        (
            "masscan.txt",
            "#masscan\nopen tcp 104 10.1.2.3 1700000000\nopen tcp 104 10.1.2.300 1700000000\n",
            "auto",
            "masscan.txt line 3: bad address '10.1.2.300'",
        ),
        (
            "masscan.txt",
            "#masscan\nopen tcp 104 10.1.2.3 1700000000\nnot a record\n",
            "auto",
            "masscan.txt line 3: expected a masscan -oL record",
        ),
        ("masscan.txt", "open tcp 70000 10.1.2.3 1700000000\n", "auto", "masscan.txt line 1: bad port '70000'"),
        (
            "masscan.json",
            "[\n"
            + JSON_RECORDS[0]
            + ",\n"
            + JSON_RECORDS[1]
            + ",\n"
            + '{ "ip": "10.1.2.3", "ports": [ {"port": 1',
            "auto",
            "masscan.json line 4: bad JSON",
        ),
        (
            "masscan.json",
            "[\n" + JSON_RECORDS[0] + ",\n\n" + masscan_json_status("10.1.2.3", 0) + "\n]\n",
            "auto",
            "masscan.json line 4: bad port '0'",
        ),
        (
            "masscan.json",
            '[\n{"address": "10.1.2.3"}\n]\n',
            "auto",
            "masscan.json line 2: expected a masscan record",
        ),
        ("masscan.json", '[\n"10.1.2.3"\n]\n', "auto", "masscan.json line 2: expected a JSON object"),
        (
            "nmap.xml",
            NMAP_XML.replace('portid="4242"><state state="open"', 'portid="70000"><state state="open"'),
            "auto",
            f"nmap.xml line {PORT_4242_LINE}: bad port '70000'",
        ),
        (
            "nmap.xml",
            NMAP_XML[: NMAP_XML.index("<runstats>")],
            "auto",
            f"nmap.xml line {TRUNCATED_LAST_LINE}: malformed XML: no element found "
            "(the file ends early: was the scan interrupted?)",
        ),
        (
            "nmap.xml",
            NMAP_XML.replace('<address addr="10.1.2.4"', '<address addr="pacs.example.org"'),
            "auto",
            f"nmap.xml line {SECOND_HOST_ADDRESS_LINE}: 'pacs.example.org' is a host name",
        ),
        (
            "page.xml",
            "<html><body/></html>\n",
            "auto",
            "page.xml line 1: not nmap or masscan XML (root element <html>)",
        ),
        (
            "bomb.xml",
            '<?xml version="1.0"?>\n<!DOCTYPE nmaprun [\n<!ENTITY a "aaaaaaaaaa">\n]>\n<nmaprun>&a;</nmaprun>\n',
            "auto",
            "bomb.xml line 3: XML entity declarations are refused (a)",
        ),
        (
            "zmap.csv",
            "saddr,sport,success\n10.1.2.3,104,1\n10.1.2.x,104,1\n",
            "auto",
            "zmap.csv line 3: bad address '10.1.2.x'",
        ),
        ("zmap.csv", "saddr,sport,success\n10.1.2.3,104\n", "auto", "zmap.csv line 2: expected 3 columns, got 2"),
        (
            "scan.gnmap",
            "# Nmap 7.93 scan initiated Tue Nov 14 22:13:20 2023 as: nmap -oG scan.gnmap 10.1.2.3\n",
            "auto",
            "scan.gnmap line 1: nmap or masscan normal/grepable output is not supported; write XML with -oX",
        ),
    ],
)
def test_malformed_tool_output(tmp_path, name, text, fmt, message):
    assert error_of(write(tmp_path, name, text), fmt).startswith(message)


def test_unknown_format_missing_file_and_bad_default_port_fail_at_once(tmp_path):
    path = write(tmp_path, "s.txt", "10.1.2.3:104\n")
    with pytest.raises(TargetError, match="unknown service list format 'nessus'; choose one of: auto, xml"):
        read_services(path, "nessus")
    for fmt in FORMATS:
        with pytest.raises(TargetError, match=r"^cannot read service list '.*missing\.txt': No such file"):
            read_services(tmp_path / "missing.txt", fmt)
    with pytest.raises(TargetError, match="bad default port 0"):
        read_services(path, default_port=0)


def test_explicit_format_overrides_detection(tmp_path):
    path = write(tmp_path, "s.txt", "10.1.2.3:104\n")
    assert error_of(path, "xml").startswith("s.txt line 1: malformed XML")
    assert services(write(tmp_path, "empty.txt", "# nothing found\n\n")) == []


# --- streaming -----------------------------------------------------------------

LINES = 200_000


def address_of(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def generate(path: Path, fmt: str, distinct: int = LINES) -> None:
    with open(path, "w") as out:
        if fmt == "masscan-json":
            out.write("[\n")
        if fmt == "xml":
            out.write(MASSCAN_XML_HEAD)
        for i in range(LINES):
            address, port = address_of(i % distinct), 104 + i % 3
            if fmt == "list":
                out.write(f"{address}:{port}\n")
            elif fmt == "masscan-list":
                out.write(f"open tcp {port} {address} 1700000000\n")
            elif fmt == "masscan-json":
                out.write(masscan_json_status(address, port) + ",\n")
            else:
                out.write(masscan_xml_host(address, port))
        out.write({"masscan-json": "]\n", "xml": MASSCAN_XML_TAIL}.get(fmt, ""))


def peak_while_reading(path: Path, dedupe: bool) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_services(path, dedupe=dedupe))
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["list", "masscan-list", "masscan-json", "xml"])
def test_large_files_stream_in_bounded_memory(tmp_path, fmt):
    path = tmp_path / f"big.{fmt}"
    generate(path, fmt)
    count, peak = peak_while_reading(path, dedupe=False)
    assert count == LINES
    # Never the file (3 MB to 38 MB here), never the results: a few read buffers at most.
    assert peak < min(path.stat().st_size // 8, 4 << 20), (peak, path.stat().st_size)


def test_deduplication_memory_grows_with_distinct_services_not_lines(tmp_path):
    repeated = tmp_path / "repeated.txt"
    generate(repeated, "list", distinct=999)  # 200,000 lines, 999 distinct services
    count, peak = peak_while_reading(repeated, dedupe=True)
    assert count == 999
    assert peak < 512 << 10

    distinct = tmp_path / "distinct.txt"
    generate(distinct, "list")
    count, peak = peak_while_reading(distinct, dedupe=True)
    assert count == LINES
    assert peak < LINES * 100 + (512 << 10)  # the documented cost: about 90 bytes per distinct service


# --- a real nmap run -------------------------------------------------------------


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_reads_real_nmap_xml(tmp_path):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    output = tmp_path / "nmap.xml"
    try:
        subprocess.run(
            ["nmap", "-n", "-Pn", "-sT", "-p", f"1,9,{port}", "-oX", str(output), "127.0.0.1"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    finally:
        listener.close()

    found = services(output)
    assert detect_format(output) == "xml"
    assert ("127.0.0.1", port) in found

    # The same answer from a whole-tree parse of nmap's own file, closed ports included.
    tree = ET.parse(output)
    states = {int(p.get("portid", "0")): p.find("state").get("state") for p in tree.iter("port")}  # type: ignore[union-attr]
    assert set(states) == {1, 9, port} and states[port] == "open"
    assert found == [("127.0.0.1", number) for number, state in states.items() if state == "open"]

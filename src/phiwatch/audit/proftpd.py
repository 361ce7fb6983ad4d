"""ProFTPD: <Anonymous> blocks (anonymous logins, their root, <Limit> on LOGIN and WRITE), TLS."""

from __future__ import annotations

from .context import Context, Parsed
from .directives import Directive, Tree, parse, within
from .model import change, finding
from .source import Source

KIND = "proftpd.conf"
MARKERS = ("<anonymous", "serverident", "defaultroot", "useralias", "requirevalidshell", "tlsengine",
           "servertype", "<limit login>", "passiveports", "masqueradeaddress", "delaytable")


def recognise(name: str, text: str) -> bool:
    if name.startswith("proftpd") and name.endswith(".conf"):
        return True
    lower = text.lower()
    return sum(marker in lower for marker in MARKERS) >= 2


def _limited(tree: Tree, anonymous: Directive, commands: set[str], deny: str) -> bool:
    """Whether a <Limit> inside the <Anonymous> block denies (or allows) every listed command."""
    limits = [d for d in tree.directives if d.name == "limit" and within(d, anonymous)
              and commands & {a.upper() for a in d.args}]
    for limit in limits:
        if any(d.parent is limit and d.name == deny for d in tree.directives):
            return True
    return False


def audit(source: Source, ctx: Context) -> Parsed:
    tree = parse(source, ctx)
    out = Parsed(includes=tree.includes, notes=tree.notes)
    top = {d.name: d for d in tree.directives if not d.sections}
    host = top["defaultaddress"].args[0] if "defaultaddress" in top and top["defaultaddress"].args else ""
    port_arg = top["port"].args[0] if "port" in top and top["port"].args else "21"
    port = int(port_arg) if port_arg.isdigit() else 21
    for block in (d for d in tree.directives if d.name == "anonymous"):
        if _limited(tree, block, {"LOGIN"}, "denyall"):
            continue
        root = block.args[0] if block.args else "~ftp"
        medical = ctx.medical_files(root)
        evidence = f"<Anonymous {root}> lets users ftp and anonymous log in; their root is {root}"
        check = "ftp_medical_files_exposed" if medical else "ftp_anonymous_access"
        if medical:
            evidence += f"; it holds {medical} medical files"
        fix = [change(block.source, block.line, False, "  <Limit LOGIN>\n    DenyAll\n  </Limit>")]
        out.findings.append(finding(check, evidence, block.source, block.line, fix=fix, host=host, port=port))
        writes = {"WRITE", "STOR", "STOU", "APPE", "MKD", "ALL"}
        if _limited(tree, block, writes, "allowall") and not _limited(tree, block, writes, "denyall"):
            out.findings.append(finding(
                "ftp_anonymous_upload", f"<Anonymous {root}> allows anonymous writes (<Limit WRITE> AllowAll)",
                block.source, block.line, host=host, port=port,
            ))
    tls = [d for d in tree.directives if d.name == "tlsengine"]
    if not any(d.args and d.args[0].lower() == "on" for d in tls):
        line = tls[0].line if tls else 1
        fix = ([change(tls[0].source, tls[0].line, True, "TLSEngine on")] if tls
               else [change(source, len(source.lines) or 1, False, "<IfModule mod_tls.c>\n  TLSEngine on\n"
                            "  TLSRequired on\n</IfModule>")])
        out.findings.append(finding("ftp_no_tls", "TLSEngine is not on: logins and files cross in clear text",
                                    tls[0].source if tls else source, line, fix=fix, host=host, port=port))
    return out

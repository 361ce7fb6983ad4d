"""rsyncd.conf: modules anyone can read or write (no `auth users`), `hosts allow`, `read only`, `list`.

Module parameters set before the first module are every module's defaults (rsyncd.conf(5)).
"""

from __future__ import annotations

from .context import Context, Parsed
from .ini import Section, Value, parse, yes
from .model import change, finding
from .samba import _narrow
from .source import Source

KIND = "rsyncd.conf"


def recognise(name: str, text: str) -> bool:
    if name.startswith("rsyncd") and name.endswith(".conf"):
        return True
    lower = text.lower()
    keys = ("use chroot", "secrets file", "auth users", "max connections", "lock file", "&include",
            "refuse options", "dont compress", "read only", "pid file", "uid =")
    return sum(key in lower for key in keys) >= 2 and "[global]" not in lower and "workgroup" not in lower


def audit(source: Source, ctx: Context) -> Parsed:
    config = parse(source, ctx, global_name="", include_keys=("include",))
    out = Parsed(includes=config.includes, notes=config.notes)
    top = config.sections[0]

    def get(module: Section, key: str) -> Value | None:
        return module.get(key) or top.get(key)

    address = top.get("address")
    port_value = top.get("port")
    host = address.text if address else ""
    port = int(port_value.text) if port_value and port_value.text.isdigit() else 873
    for module in config.sections[1:]:
        if get(module, "auth users") and (get(module, "auth users") or Value("", 0, source)).text.strip():
            continue
        allow = get(module, "hosts allow")
        writable = not yes(get(module, "read only"), True)
        listed = yes(get(module, "list"), True)
        path = get(module, "path")
        medical = ctx.medical_files(path.text if path else None)
        scope = f"; only hosts allow '{allow.text}' may connect" if allow and _narrow(allow.text) else (
            "; any host may connect")
        evidence = (f"Module {module.name!r} has no auth users: anyone can "
                    f"{'read and write' if writable else 'read'} it{scope}"
                    f"{'' if listed else ' (hidden from the module list, list = no)'}")
        fix = [change(module.source, module.line, False, "auth users = radiology"),
               change(module.source, module.line, False, "secrets file = /etc/rsyncd.secrets")]
        check = "rsync_module_without_auth"
        if medical:
            check = "rsync_medical_files_exposed"
            evidence += f"; its folder holds {medical} medical files"
        out.findings.append(finding(check, evidence, module.source, module.line, fix=fix, host=host, port=port))
        if writable:
            read_only = get(module, "read only")
            line = read_only.line if read_only else module.line
            out.findings.append(finding(
                "rsync_module_writable", f"Module {module.name!r}: read only = no without auth users",
                read_only.source if read_only else module.source, line,
                fix=[change(read_only.source, read_only.line, True, "read only = yes")] if read_only
                else [change(module.source, module.line, False, "read only = yes")], host=host, port=port,
            ))
    shown = [m for m in config.sections[1:] if yes(m.get("list") or top.get("list"), True)]
    if shown:
        first = shown[0]
        out.findings.append(finding(
            "rsync_module_list_exposed",
            f"{len(shown)} modules are listed to anyone who asks (list = yes is the default)",
            first.source, first.line, fix=[change(first.source, first.line, False, "list = no")],
            host=host, port=port,
        ))
    return out

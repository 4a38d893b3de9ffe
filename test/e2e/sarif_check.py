#!/usr/bin/python3
"""Check a SARIF log against what SARIF 2.1.0 requires, without the network
or the jsonschema package: the properties the OASIS schema marks required,
their types, and the consistency rules of the spec that code-scanning
tools rely on (ruleId/ruleIndex against tool.driver.rules, level values,
1-based regions, artifact URIs).

usage: sarif_check.py FILE [--results N] [--uri URI]...
  --results N   the log holds exactly N results
  --uri URI     some result's artifactLocation.uri equals URI
Exit 0 when valid, 1 with one line per problem on stderr.
"""
import json
import re
import sys

LEVELS = {"none", "note", "warning", "error"}
problems = []


def bad(where, what):
    problems.append(f"{where}: {what}")


def want(obj, key, typ, where):
    if not isinstance(obj, dict) or key not in obj:
        bad(where, f"missing required property '{key}'")
        return None
    if not isinstance(obj[key], typ):
        bad(f"{where}.{key}", f"is {type(obj[key]).__name__}, expected {typ}")
        return None
    return obj[key]


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_message(msg, where):
    if not isinstance(msg, dict):
        bad(where, "message is not an object")
    elif not isinstance(msg.get("text"), str) and not isinstance(msg.get("id"), str):
        bad(where, "message has neither text nor id")
    elif isinstance(msg.get("text"), str) and not msg["text"]:
        bad(where, "message text is empty")


def check_uri(uri, where):
    # RFC 3986 URI-reference characters only (percent-encoding well formed).
    if not re.fullmatch(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*", uri):
        bad(where, f"uri {uri!r} is not a valid URI reference")
    first = uri.split("/", 1)[0]
    if ":" in first and not re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", uri):
        bad(where, f"uri {uri!r}: ':' in the first segment of a relative reference")


def check(log, want_results, want_uris):
    if not isinstance(log, dict):
        bad("$", "not an object")
        return
    if log.get("version") != "2.1.0":
        bad("$.version", f"is {log.get('version')!r}, expected '2.1.0'")
    schema = log.get("$schema")
    if schema is not None and not (isinstance(schema, str) and "2.1.0" in schema):
        bad("$.$schema", f"{schema!r} does not name SARIF 2.1.0")
    runs = want(log, "runs", list, "$")
    if runs is None:
        return
    total = 0
    uris = set()
    for r, run in enumerate(runs):
        w = f"$.runs[{r}]"
        tool = want(run, "tool", dict, w)
        driver = want(tool, "driver", dict, f"{w}.tool") if tool is not None else None
        rules = []
        if driver is not None:
            name = want(driver, "name", str, f"{w}.tool.driver")
            if name == "":
                bad(f"{w}.tool.driver.name", "is empty")
            if "version" in driver and not isinstance(driver["version"], str):
                bad(f"{w}.tool.driver.version", "is not a string")
            rules = driver.get("rules", [])
            if not isinstance(rules, list):
                bad(f"{w}.tool.driver.rules", "is not an array")
                rules = []
        ids = []
        for i, rule in enumerate(rules):
            rw = f"{w}.tool.driver.rules[{i}]"
            rid = want(rule, "id", str, rw)
            ids.append(rid)
            sd = rule.get("shortDescription")
            if sd is not None and not isinstance(sd.get("text"), str):
                bad(rw, "shortDescription without text")
            level = rule.get("defaultConfiguration", {}).get("level", "warning")
            if level not in LEVELS:
                bad(rw, f"defaultConfiguration.level {level!r} not in {sorted(LEVELS)}")
        if len(set(ids)) != len(ids):
            bad(f"{w}.tool.driver.rules", "duplicate rule ids")
        results = run.get("results")
        if results is None:
            continue
        if not isinstance(results, list):
            bad(f"{w}.results", "is not an array")
            continue
        total += len(results)
        for i, res in enumerate(results):
            rw = f"{w}.results[{i}]"
            if not isinstance(res, dict):
                bad(rw, "is not an object")
                continue
            if "message" not in res:
                bad(rw, "missing required property 'message'")
            else:
                check_message(res["message"], rw)
            rid = res.get("ruleId")
            idx = res.get("ruleIndex")
            if rid is None and idx is None:
                bad(rw, "neither ruleId nor ruleIndex")
            if rid is not None and rid not in ids:
                bad(rw, f"ruleId {rid!r} is not in tool.driver.rules")
            if idx is not None:
                if not is_int(idx) or not 0 <= idx < len(ids):
                    bad(rw, f"ruleIndex {idx!r} out of range")
                elif rid is not None and ids[idx] != rid:
                    bad(rw, f"ruleIndex {idx} is {ids[idx]!r}, ruleId is {rid!r}")
            level = res.get("level", "warning")
            if level not in LEVELS:
                bad(rw, f"level {level!r} not in {sorted(LEVELS)}")
            for j, loc in enumerate(res.get("locations", [])):
                lw = f"{rw}.locations[{j}]"
                pl = loc.get("physicalLocation")
                if pl is None:
                    continue
                al = pl.get("artifactLocation", {})
                uri = al.get("uri")
                if uri is not None:
                    if not isinstance(uri, str):
                        bad(lw, "uri is not a string")
                    else:
                        check_uri(uri, lw)
                        uris.add(uri)
                reg = pl.get("region")
                if reg is not None:
                    for k in ("startLine", "startColumn", "endLine", "endColumn"):
                        if k in reg and (not is_int(reg[k]) or reg[k] < 1):
                            bad(f"{lw}.region.{k}", f"{reg[k]!r} is not an integer >= 1")
                    if not any(k in reg for k in ("startLine", "charOffset", "byteOffset")):
                        bad(f"{lw}.region", "has no start")
    if want_results is not None and total != want_results:
        bad("$", f"{total} results, expected {want_results}")
    for u in want_uris:
        if u not in uris:
            bad("$", f"no result with uri {u!r} (have {sorted(uris)})")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    want_results = None
    want_uris = []
    args = argv[2:]
    while args:
        opt = args.pop(0)
        if opt == "--results":
            want_results = int(args.pop(0))
        elif opt == "--uri":
            want_uris.append(args.pop(0))
        else:
            print(f"sarif_check: unknown option {opt}", file=sys.stderr)
            return 2
    try:
        with open(argv[1], "rb") as f:
            log = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        print(f"sarif_check: {argv[1]}: {e}", file=sys.stderr)
        return 1
    check(log, want_results, want_uris)
    for p in problems:
        print(f"sarif_check: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

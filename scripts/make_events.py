#!/usr/bin/env python3
"""Shapes every sample under events/<function>/ as API Gateway's HTTP API (payload 2.0) sends it:
`routeKey` (top level and in `requestContext`) is the route's template from template.yaml
(`GET /v1/members/{id}`), `pathParameters` holds what the template's parameters match in
`rawPath`, and `queryStringParameters` the parsed `rawQueryString`. Samples are written by hand
(copy one of the same route and change the case); the expected status is in the file name
(`<case>.<status>.json`, `.ok.json` for scheduled inputs) and tests/api/events.rs replays every
one and checks its shape and that every route has one. Run after adding or changing a sample:
python3 scripts/make_events.py"""
import json
import pathlib
import re
from urllib.parse import parse_qsl

root = pathlib.Path(__file__).resolve().parent.parent
# The template's HTTP routes per function binary, read line by line (no YAML library needed):
# a function's `Binary:` comes before its `Events:`, each event's `Method:` before its `Path:`.
routes, binary, method = {}, None, None
for line in (root / "template.yaml").read_text().splitlines():
    if m := re.match(r"\s+Binary: (\S+)$", line):
        binary = m.group(1)
    elif m := re.match(r"\s+Method: (\S+)$", line):
        method = m.group(1).upper()
    elif (m := re.match(r"\s+Path: (/\S*)$", line)) and method and binary:
        routes.setdefault(binary, []).append((method, m.group(1)))
        method = None


def matched(path, template):
    names = re.findall(r"\{(\w+)\}", template)
    rx = "^" + re.sub(r"\\\{(\w+)\\\}", r"([^/]+)", re.escape(template)) + "$"
    m = re.match(rx, path)
    return None if m is None else dict(zip(names, m.groups()))


order = ["version", "routeKey", "rawPath", "rawQueryString", "pathParameters",
         "queryStringParameters", "headers", "requestContext", "isBase64Encoded", "body"]
changed = 0
for f in sorted((root / "events").glob("*/*.json")):
    e = json.loads(f.read_text())
    if "routeKey" not in e:
        continue  # a scheduled input, an SQS batch, a Cognito trigger
    method, path = e["requestContext"]["http"]["method"], e["rawPath"]
    found = sorted(((m, t, matched(path, t)) for m, t in routes.get(f.parent.name, []) if m == method),
                   key=lambda c: (c[2] is None, len(c[2] or {})))
    if not found or found[0][2] is None:
        raise SystemExit(f"{f}: {method} {path} is no route of {f.parent.name} in template.yaml")
    m, t, params = found[0]
    e["routeKey"] = e["requestContext"]["routeKey"] = f"{m} {t}"
    e.pop("pathParameters", None)
    e.pop("queryStringParameters", None)
    if params:
        e["pathParameters"] = params
    if e.get("rawQueryString"):
        e["queryStringParameters"] = dict(parse_qsl(e["rawQueryString"], keep_blank_values=True))
    e = {k: e[k] for k in order if k in e} | {k: v for k, v in e.items() if k not in order}
    text = json.dumps(e, indent=2, ensure_ascii=False) + "\n"
    if text != f.read_text():
        f.write_text(text)
        changed += 1
print(f"shaped {changed} sample(s) under {root / 'events'}")

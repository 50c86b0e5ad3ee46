"""What the contract run actually exercised (tests/contract/run.sh), from
the server's own request counters (`/metrics`, before and after the run):
per documented operation, the answers by status. A run whose operations
mostly met 401 (the token lost) or 404 (ids that do not exist) tested
nothing, so this fails unless every operation but the few that cannot be
reached got past authentication and lookup at least once, and unless 401s
are rare.

    python3 coverage.py OPENAPI_JSON METRICS_BEFORE METRICS_AFTER
"""

import collections
import json
import re
import sys

# Operations a fuzzer cannot get past lookup, by design: the customer page
# takes a secret link token, a dead letter's seq only exists after a day of
# failed deliveries, the websocket needs an upgrade.
UNREACHABLE = {
    ("GET", "/r/{token}"),
    ("POST", "/r/{token}"),
    ("POST", "/v1/webhooks/{webhook_id}/dead-letters/{seq}/replay"),
    ("GET", "/v1/ws"),
}
# "Not exercised" answers: authentication failed, or nothing by that id.
SHALLOW = {401, 404, 405}
# Schemathesis tries each operation once without credentials; a run that
# lost its token meets 401 on nearly every request.
MAX_401_PER_OPERATION = 3
# Operations that must have succeeded (2xx) at least once; raise it when more
# of the document's constraints are stated (a generated body refused for an
# undocumented reason never succeeds).
MIN_SUCCEEDED = 50

# Greedy: route labels hold braces of their own ("/v1/calls/{call_id}").
LINE = re.compile(r'^callahead_http_requests_total\{(.*)\}\s+(\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def counts(path):
    out = collections.Counter()
    with open(path) as f:
        for line in f:
            m = LINE.match(line.strip())
            if m:
                labels = dict(LABEL.findall(m.group(1)))
                out[(labels["method"], labels["route"], int(labels["status"]))] += int(float(m.group(2)))
    return out


doc = json.load(open(sys.argv[1]))
before, after = counts(sys.argv[2]), counts(sys.argv[3])
run = after - before
ops = sorted((m.upper(), p) for p, item in doc["paths"].items() for m in item
             if m in {"get", "post", "put", "delete", "patch"})
secured = {(m.upper(), p) for p, item in doc["paths"].items() for m, op in item.items()
           if isinstance(op, dict) and op.get("security")}
by_op = collections.defaultdict(collections.Counter)
for (method, route, status), n in run.items():
    by_op[(method, route)][status] += n

total = sum(run.values())
unauthorized = sum(n for (_, _, s), n in run.items() if s == 401)
shallow_only = []
failed = False
print(f"{'operation':<62} answers by status")
for op in ops:
    statuses = by_op.get(op, collections.Counter())
    reached = any(s not in SHALLOW for s in statuses)
    mark = "ok" if reached else ("--" if op in UNREACHABLE else "NOT REACHED")
    shown = " ".join(f"{s}x{n}" for s, n in sorted(statuses.items())) or "none"
    print(f"{op[0] + ' ' + op[1]:<62} {shown}  {mark}")
    if not reached and op not in UNREACHABLE:
        shallow_only.append(op)
reached = len(ops) - len(shallow_only) - len([o for o in ops if o in UNREACHABLE])
never = [op for op in ops if not any(200 <= s < 300 for s in by_op.get(op, {}))]
succeeded = len(ops) - len(never)
print(f"\n{total} requests; {reached} of {len(ops)} operations got past authentication and lookup, "
      f"{succeeded} succeeded at least once; {unauthorized} answers were 401 ({unauthorized / max(total, 1):.1%})")
print("never succeeded: " + ", ".join(f"{m} {p}" for m, p in never))
if succeeded < MIN_SUCCEEDED:
    print(f"fewer than {MIN_SUCCEEDED} operations succeeded")
    failed = True
if shallow_only:
    print("operations that only met 401/404/405 (seed them in tests/contract/seed.py):")
    for op in shallow_only:
        print(f"  {op[0]} {op[1]}")
    failed = True
lost = [op for op, statuses in by_op.items() if op in secured and statuses[401] > MAX_401_PER_OPERATION]
if lost:
    print(f"operations answered 401 more than {MAX_401_PER_OPERATION} times (the run lost its token):")
    for op in sorted(lost):
        print(f"  {op[0]} {op[1]}: {by_op[op][401]} of {sum(by_op[op].values())}")
    failed = True
if total == 0:
    print("no request reached the server")
    failed = True
sys.exit(1 if failed else 0)

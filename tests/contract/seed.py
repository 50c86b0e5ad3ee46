"""Seeds a live server for the contract run (tests/contract/run.sh) and
writes the schemathesis configuration that points the fuzzer at what it
created: real ids for path parameters (mixed with generated ones, so 404s
are exercised too), the courier's token for the courier's own operations,
and spare accounts for the destructive ones (deactivate, revoke, delete), so
the run never takes away what the rest of it relies on.

    python3 seed.py BASE_URL ADMIN_TOKEN CONFIG_OUT
"""

import datetime
import json
import sys
import urllib.error
import urllib.request

base, admin, out = sys.argv[1], sys.argv[2], sys.argv[3]


def call(method, path, token, body=None, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if status not in expect:
        sys.exit(f"seeding: {method} {path} answered {status}: {text[:300]!r}")
    return json.loads(text) if text else None


depot = call("POST", "/v1/depots", admin, {"name": "Contract", "time_zone": "Europe/Moscow"})["id"]
courier = call("POST", f"/v1/depots/{depot}/couriers", admin, {"name": "Ivan", "phone": "+79990000001"})
spare_courier = call("POST", f"/v1/depots/{depot}/couriers", admin, {"name": "Spare", "phone": "+79990000002"})
supervisor = call("POST", f"/v1/depots/{depot}/supervisors", admin, {"name": "Olga"})
spare_supervisor = call("POST", f"/v1/depots/{depot}/supervisors", admin, {"name": "Spare"})
integrator = call("POST", f"/v1/depots/{depot}/integrator-keys", admin, {"name": "crm"})["token"]
courier_id, courier_token = courier["courier"]["id"], courier["token"]

# Today in the depot's zone (Moscow is UTC+3 all year): the route the
# courier's own operations read.
now = datetime.datetime.now(datetime.timezone.utc)
today = (now + datetime.timedelta(hours=3)).date()
stops = []
for i in range(3):
    start = now + datetime.timedelta(hours=1 + i)
    stops.append({
        "external_id": f"ord-{i}",
        "customer_name": f"Customer {i}",
        "phone": f"+7916000000{i}",
        "time_zone": "Europe/Moscow",
        "address": f"Lenina {i}",
        "window_start": start.isoformat().replace("+00:00", "Z"),
        "window_end": (start + datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "order_numbers": [f"A-{i}"],
        "amount": {"minor": 125050, "currency": "RUB"},
    })
route = call("PUT", f"/v1/couriers/{courier_id}/routes/{today}", integrator, {"stops": stops})
stop_ids = [s["stop"]["id"] for s in route["stops"]]
call_id = call("POST", "/v1/calls", courier_token, {"stop_id": stop_ids[0], "idempotency_key": "seed-0001"})["id"]
call("POST", "/v1/direct-calls", courier_token,
     {"stop_id": stop_ids[1], "idempotency_key": "seed-0002", "note": "left at the door"})
campaign = call("POST", f"/v1/depots/{depot}/campaigns", admin,
                {"name": "remind", "steps": [{"after_secs": 3600, "action": {"type": "sms"}}]})["id"]
# Nothing listens on port 9: deliveries fail, so failures are there to list.
webhook = call("POST", f"/v1/depots/{depot}/webhooks", integrator, {"url": "http://127.0.0.1:9/hook"})["webhook"]["id"]
spare_webhook = call("POST", f"/v1/depots/{depot}/webhooks", integrator, {"url": "http://127.0.0.1:9/spare"})["webhook"]["id"]

tokens = call("GET", f"/v1/tokens?limit=1000", admin)["tokens"]
bootstrap = [t["id"] for t in tokens if t["kind"] == "bootstrap"]
spare_tokens = [t["id"] for t in tokens
                if (t["role"], t["subject_id"]) in {("courier", spare_courier["courier"]["id"]),
                                                     ("supervisor", spare_supervisor["supervisor"]["id"])}]
if len(bootstrap) != 1 or not spare_tokens:
    sys.exit(f"seeding: unexpected tokens {tokens}")


def toml(v):
    return json.dumps(v)


lines = [
    "# Written by tests/contract/seed.py for one run.",
    f"headers = {{ Authorization = {toml('Bearer ' + admin)} }}",
    "",
]
ids = {
    "depot_id": [depot],
    "courier_id": [courier_id],
    "supervisor_id": [supervisor["supervisor"]["id"]],
    "stop_id": stop_ids,
    "call_id": [call_id],
    "campaign_id": [campaign],
    "webhook_id": [webhook],
    "date": [str(today)],
    "token_id": spare_tokens + bootstrap,
}
for name, values in ids.items():
    lines += [f"[dictionaries.{name}]", f"values = {toml(values)}", ""]
lines.append("[parameters]")
for name in ids:
    # Mostly real ids; now and then a generated one, so the 404s are
    # checked against the document too.
    lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.85 }}')
lines.append("")


def operation(name, headers=None, params=None):
    # By name ("METHOD /path"): filters of one entry are alternatives, so a
    # path and a method would pick every operation with either.
    lines.append("[[operations]]")
    lines.append(f"include-name = {toml(name)}")
    if headers:
        lines.append("headers = { " + ", ".join(f"{k} = {toml(v)}" for k, v in headers.items()) + " }")
    if params:
        lines.append("parameters = { " + ", ".join(f"{toml(k)} = {toml(v)}" for k, v in params.items()) + " }")
    lines.append("")


# The courier's own operations take the courier's token.
for name in ["GET /v1/me/route", "PUT /v1/me/route/plan", "PUT /v1/me/position", "POST /v1/calls",
             "POST /v1/direct-calls", "POST /v1/direct-calls/dial"]:
    operation(name, headers={"Authorization": f"Bearer {courier_token}"})
# Destructive operations get accounts of their own.
operation("POST /v1/couriers/{courier_id}/deactivate", params={"path.courier_id": spare_courier["courier"]["id"]})
operation("POST /v1/supervisors/{supervisor_id}/deactivate",
          params={"path.supervisor_id": spare_supervisor["supervisor"]["id"]})
operation("DELETE /v1/webhooks/{webhook_id}", params={"path.webhook_id": spare_webhook})

with open(out, "w") as f:
    f.write("\n".join(lines))
print(f"seeded depot {depot}, courier {courier_id}, stops {stop_ids}, call {call_id}, "
      f"campaign {campaign}, webhooks {webhook}/{spare_webhook}; bootstrap token {bootstrap[0]}")

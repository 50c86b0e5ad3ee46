#!/usr/bin/env python3
"""Puts a demo courier with today's route on a running callahead-server.

    CALLAHEAD_ADMIN_TOKEN=dev-admin android-demo/scripts/seed-demo-route.py \
        [--server http://127.0.0.1:8080] [--stops 8] [--time-zone Europe/Berlin]

With the admin token it creates a depot and a courier, then imports a route
for today whose delivery windows open every 20 minutes from now, so "Call
the next hour" has work at once. Prints the route date and, on its last line,
the courier's token: paste that into the app's settings screen. The token is
shown only this once (the server keeps its hash). Standard library only.
"""

import argparse
import datetime
import json
import os
import sys
import urllib.error
import urllib.request

STREETS = [
    "Torstraße 12", "Invalidenstraße 117", "Bernauer Str. 5", "Kastanienallee 77",
    "Oderberger Str. 44", "Schönhauser Allee 36", "Brunnenstraße 9", "Ackerstraße 3",
    "Linienstraße 140", "Gartenstraße 22", "Chausseestraße 86", "Rosenthaler Str. 40",
]
NAMES = [
    "Anna Schmidt", "Jonas Weber", "Leyla Kaya", "Marek Nowak", "Sofia Rossi", "Ben Fischer",
    "Emma Wagner", "Noah Becker", "Mia Hoffmann", "Paul Schulz", "Lena Koch", "Elias Richter",
]


def local_time_zone() -> str:
    """The machine's IANA zone (from /etc/localtime on Linux and macOS), else UTC."""
    target = os.path.realpath("/etc/localtime")
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "UTC"


def call(server: str, token: str, method: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        server.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')}")
    except urllib.error.URLError as e:
        sys.exit(f"{method} {path}: cannot reach {server}: {e.reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="the server as seen from this machine")
    parser.add_argument("--admin-token", default=os.environ.get("CALLAHEAD_ADMIN_TOKEN"),
                        help="defaults to $CALLAHEAD_ADMIN_TOKEN")
    parser.add_argument("--stops", type=int, default=8, choices=range(1, len(NAMES) + 1), metavar="N")
    parser.add_argument("--time-zone", default=local_time_zone(),
                        help="the customers' IANA time zone (default: this machine's)")
    args = parser.parse_args()
    if not args.admin_token:
        sys.exit("set CALLAHEAD_ADMIN_TOKEN (the one the server was started with) or pass --admin-token")

    depot = call(args.server, args.admin_token, "POST", "/v1/depots",
                 {"name": "Demo depot", "time_zone": args.time_zone})
    created = call(args.server, args.admin_token, "POST", f"/v1/depots/{depot['id']}/couriers",
                   {"name": "Demo courier", "phone": "+4915100000000"})
    courier = created["courier"]

    now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    today = datetime.datetime.now().date().isoformat()
    stops = []
    for i in range(args.stops):
        opens = now + datetime.timedelta(minutes=20 * i + 5)
        stops.append({
            "external_id": f"demo-{i + 1}",
            "customer_name": NAMES[i],
            "phone": f"+49301234{5600 + i}",
            "time_zone": args.time_zone,
            "address": f"{STREETS[i]}, Berlin",
            "window_start": opens.isoformat().replace("+00:00", "Z"),
            "window_end": (opens + datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "order_numbers": [f"A-{1000 + i}"],
        })
    route = call(args.server, args.admin_token, "PUT", f"/v1/couriers/{courier['id']}/routes/{today}",
                 {"stops": stops})

    print(f"depot {depot['id']}, courier {courier['id']}, route {today} with {len(route['stops'])} stops")
    print(f"courier token (shown once): {created['token']}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Smoke test of the generated Python bindings against the real server.

Starts the `callahead-server` binary on a loopback port, bootstraps a depot,
a courier and an integrator key over HTTP, imports a route whose delivery
windows open within the hour, then drives a courier client through the
bindings: sync, request a call, wait (event-driven) for its outcome.

Run as a script or with pytest; both need the bindings and the server:

    scripts/bindgen python
    PYTHONPATH=bindings/python CALLAHEAD_SERVER_BIN=target/debug/callahead-server \\
        python3 tests/python/smoke_test.py
"""

import asyncio
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import callahead

WAIT_SECS = 30
ADMIN = "python-smoke-admin-token-0123456789"
TIME_SCALE = 10
# Every simulated customer answers after 5 s and decides 10 s later (domain
# time, so 0.5 s and 1 s of real time at TIME_SCALE).
QUICK_CUSTOMERS = [
    "--sim-seed", "7", "--sim-answer-rate", "1", "--sim-fail-rate", "0",
    "--sim-ring-secs", "5", "5", "--sim-talk-secs", "10", "10",
]


class Server:
    """The server binary as a child process on a free loopback port."""

    def __init__(self, directory):
        binary = os.environ.get("CALLAHEAD_SERVER_BIN", "target/debug/callahead-server")
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"{binary} is not an executable callahead-server; set CALLAHEAD_SERVER_BIN")
        self.log_path = os.path.join(directory, "server.log")
        env = dict(os.environ, CALLAHEAD_ADMIN_TOKEN=ADMIN)
        env.setdefault("RUST_LOG", "warn")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [binary, "serve", "--listen", "127.0.0.1:0", "--db", os.path.join(directory, "server.db"),
                 "--time-scale", str(TIME_SCALE), *QUICK_CUSTOMERS],
                stdout=subprocess.PIPE, stderr=log, env=env, text=True,
            )
        listening = threading.Event()
        self.url = None

        def read_stdout():
            for line in self.process.stdout:
                prefix = "callahead-server listening on "
                if line.startswith(prefix):
                    self.url = line[len(prefix):].strip()
                    listening.set()
            listening.set()  # exited: url stays None

        threading.Thread(target=read_stdout, daemon=True).start()
        if not listening.wait(WAIT_SECS) or self.url is None:
            self.stop()
            raise RuntimeError(f"the server did not start:\n{self.log_tail()}")

    def log_tail(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-40:])

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(WAIT_SECS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def request(self, method, path, token, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
        })
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")


def bootstrap(server, stops):
    """A depot, a courier, an integrator key and a supervisor; today's route of `stops` stops."""
    all_day = {"from": "00:00", "to": "23:59"}
    policy = {
        "max_attempts": 3, "retry_spacing_secs": 10, "ring_timeout_secs": 30,
        # The server's clock runs TIME_SCALE times faster, and CI may run at
        # night in the customers' time zone.
        "calling_hours": {"weekdays": all_day, "weekends": all_day},
        "stop_at_window_start": False,
    }
    depot = server.request("POST", "/v1/depots", ADMIN,
                           {"name": "Python depot", "time_zone": "Europe/Moscow", "policy": policy})
    courier = server.request("POST", f"/v1/depots/{depot['id']}/couriers", ADMIN,
                             {"name": "Python courier", "phone": "+79990000001"})
    integrator = server.request("POST", f"/v1/depots/{depot['id']}/integrator-keys", ADMIN, {"name": "CRM"})
    supervisor = server.request("POST", f"/v1/depots/{depot['id']}/supervisors", ADMIN, {"name": "Dispatch"})
    now = datetime.datetime.now(datetime.timezone.utc)
    date = now.date().isoformat()
    route = [{
        "external_id": f"ORD-{i}",
        "customer_name": f"Customer {i}",
        "phone": f"+7999200{i:04}",
        "time_zone": "Europe/Moscow",
        "address": f"Tverskaya {i}, Moscow",
        "window_start": (now + datetime.timedelta(minutes=10 + 5 * i)).isoformat(),
        "window_end": (now + datetime.timedelta(minutes=70 + 5 * i)).isoformat(),
        "order_numbers": [str(16000 + i)],
    } for i in range(stops)]
    server.request("PUT", f"/v1/couriers/{courier['courier']['id']}/routes/{date}", integrator["token"],
                   {"stops": route})
    return date, courier["token"], supervisor["token"]


class Listener(callahead.CourierListener):
    """Records callbacks (called on the core's threads) and wakes waiters."""

    def __init__(self):
        self.cond = threading.Condition()
        self.stops = {}
        self.events = []  # (event, received wall ms)
        self.connection = []

    def on_stop_changed(self, stop):
        with self.cond:
            self.stops[stop.stop.id] = stop
            self.cond.notify_all()

    def on_connection_changed(self, state):
        with self.cond:
            self.connection.append(state)
            self.cond.notify_all()

    def on_event(self, event):
        received = int(time.time() * 1000)
        with self.cond:
            self.events.append((event, received))
            self.cond.notify_all()

    def wait_for(self, what, pred):
        with self.cond:
            if not self.cond.wait_for(pred, WAIT_SECS):
                raise AssertionError(f"timed out after {WAIT_SECS} s waiting for {what}")


def test_a_call_requested_through_the_python_bindings_reaches_its_outcome():
    with tempfile.TemporaryDirectory() as directory:
        server = Server(directory)
        try:
            date, courier_token, supervisor_token = bootstrap(server, 2)
            listener = Listener()
            settings = callahead.ClientSettings(
                db_path=os.path.join(directory, "courier.db"), server_url=server.url, token=courier_token)
            client = callahead.CourierClient.open(settings, listener)
            try:
                synced = asyncio.run(client.sync_route(date))
                assert len(synced) == 2, synced
                listener.wait_for("the client to be online",
                                  lambda: listener.connection[-1:] == [callahead.ConnectionState.ONLINE])

                due = client.stops_due_within(datetime.datetime.now(datetime.timezone.utc), 60)
                assert len(due) == 2, "both windows open within the hour"
                stop_id = due[0].stop.id
                tapped = client.request_calls([stop_id])
                assert tapped[0].outbox is not None or tapped[0].call is not None

                def finished():
                    s = listener.stops.get(stop_id)
                    return s is not None and s.outbox is None and s.call is not None \
                        and s.call.status == callahead.CallStatus.FINISHED

                listener.wait_for("the call's outcome", finished)
                call = listener.stops[stop_id].call
                assert call.outcome is not None, call
                kinds = [e.kind for e, _ in listener.events if e.stop_id == stop_id]
                for kind in ("call_requested", "attempt_placed", "ringing", "answered", "call_finished"):
                    assert kind in kinds, f"heard {kind} (heard {kinds})"
                latency = max(received - e.origin_wall_ms for e, received in listener.events)
                print(f"python: {len(listener.events)} events, outcome {call.outcome.name}, "
                      f"max push latency {latency} ms")
                assert latency < 1000, f"each event within 1 s of its cause; max {latency} ms"
                assert client.active_count() == 0

                calls = server.request("GET", f"/v1/calls?date={date}", supervisor_token)["calls"]
                assert [c["call"]["stop_id"] for c in calls] == [stop_id], calls
            finally:
                client.shutdown()
        except BaseException:
            print(server.log_tail(), file=sys.stderr)
            raise
        finally:
            server.stop()


if __name__ == "__main__":
    test_a_call_requested_through_the_python_bindings_reaches_its_outcome()
    print("1 passed, 0 failed")

"""A visitor a relay policy answered never reaches the client, yet the tunnel's owner sees it:
the relay sends POLICY_ANSWERED (protocol version 4) and the client records the request in its
inspector and request events with the policy named ("policy": "ip_deny"). Credentials the
visitor sent are redacted before they leave the relay; a flood of refused visitors costs the
client's session a bounded number of notices and never the session itself."""
import base64
import json
import urllib.request

from helpers import wait_until
from test_policies import basic, get, policy, start_relay, tunnel_policies

USERS = ["alice:$6$saltsalt$" + "x" * 86]  # no password matches


def requests_of(base):
    with urllib.request.urlopen(base + "/api/requests/http?limit=500", timeout=10) as r:
        return json.loads(r.read())["requests"]


def test_a_refused_visitor_shows_in_the_owners_events_and_inspector(group, tmp_path, backend,
                                                                     make_agent):
    tun = backend("tun")
    relay = start_relay(group, tmp_path, tunnel_policies(
        policy("ip_deny", cidrs=["127.0.0.2/32"])))
    agent = make_agent(relay, "http", tun.port, "--subdomain", "alpha",
                       "--basic-auth", "bob:correct-horse-battery")
    base = agent.wait_event("inspector")["url"]
    denied = get(relay.http_port, "/secret?q=1", host="alpha.localhost", source="127.0.0.2")
    assert denied.status == 403, denied
    wrong = get(relay.http_port, "/door", host="alpha.localhost",
                headers=[("Authorization", basic("bob", "guess-one"))])
    assert wrong.status == 401, wrong
    assert tun.requests() == 0

    def events():
        return [e for e in agent.events if e.get("event") == "request"]
    wait_until(lambda: len(events()) >= 2, timeout=10, message="two request events")
    by_uri = {e["uri"]: e for e in events()}
    assert by_uri["/secret?q=1"]["policy"] == "ip_deny", by_uri
    assert by_uri["/secret?q=1"]["status"] == 403
    assert by_uri["/secret?q=1"]["remote_addr"].startswith("127.0.0.2"), by_uri
    assert by_uri["/door"]["policy"] == "basic_auth" and by_uri["/door"]["status"] == 401

    records = {r["request"]["uri"]: r for r in requests_of(base)}
    door = records["/door"]
    assert door["policy"] == "basic_auth" and door["response"]["status_code"] == 401, door
    raw = base64.b64decode(door["request"]["raw"]).decode()
    assert "Authorization: [redacted]" in raw, raw
    assert "guess-one" not in raw and base64.b64encode(b"bob:guess-one").decode() not in raw
    assert "WWW-Authenticate" in json.dumps(door["response"]["headers"]), door
    assert records["/secret?q=1"]["policy"] == "ip_deny"


def test_a_flood_of_refused_visitors_keeps_the_session(group, tmp_path, backend, make_agent):
    tun = backend("tun")
    relay = start_relay(group, tmp_path, tunnel_policies(
        policy("ip_deny", cidrs=["127.0.0.2/32"])))
    agent = make_agent(relay, "http", tun.port, "--subdomain", "alpha")
    for i in range(600):
        assert get(relay.http_port, "/f%d" % i, host="alpha.localhost",
                   source="127.0.0.2").status == 403
    ok = get(relay.http_port, "/after", host="alpha.localhost")
    assert ok.status == 200 and ok.backend == "tun", ok
    wait_until(lambda: any(e.get("uri") == "/after" for e in agent.events), timeout=10,
               message="the request after the flood")
    noticed = [e for e in agent.events if e.get("policy") == "ip_deny"]
    # 100 at once and 20 a second after that: far fewer than were refused, and some.
    assert 50 <= len(noticed) < 600, len(noticed)
    assert not any(e.get("event") in ("reconnecting", "error") for e in agent.events), agent.events

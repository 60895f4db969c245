"""The bandwidth policy (docs/policies.md): bytes a second through a route, each direction,
shared by all its visitors, shaped (the visitor waits; nothing is dropped). Rates are measured
over transfers of several seconds and must come within 10% of the limit; the burst allowed at
once (a tenth of a second's worth, at least 16 KiB) is left out of the reckoning."""
import concurrent.futures
import hashlib
import http.client
import json
import time

import pytest

from helpers import BIN
from test_policies import (HOST, assert_refused_at_marked_line, policy, site, start_relay,
                           tunnel_policies)

RATE = 256 * 1024
BURST = max(RATE // 10, 16 * 1024)


def origin_route(origin, **route):
    route["upstream"] = ["http://127.0.0.1:%d" % origin.port]
    return route


def download(port, n, host=HOST):
    """(bytes received, seconds) for GET /bytes?n=N through the relay."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        start = time.monotonic()
        conn.request("GET", "/bytes?n=%d" % n, headers={"Host": host})
        r = conn.getresponse()
        body = r.read()
        elapsed = time.monotonic() - start
        assert r.status == 200, (r.status, body[:200])
        return body, elapsed
    finally:
        conn.close()


def assert_rate(nbytes, elapsed, rate, what):
    measured = (nbytes - BURST) / elapsed
    assert 0.9 * rate <= measured <= 1.1 * rate, (
        "%s: %.0f bytes/s against a limit of %d (%d bytes in %.2f s)" % (
            what, measured, rate, nbytes, elapsed))


def test_downloads_are_shaped_to_the_limit(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, site(
        [HOST], [origin_route(origin, policies=[policy("bandwidth", down="256KiB/s")])]))
    body, elapsed = download(relay.http_port, 4 * RATE)
    assert len(body) == 4 * RATE
    assert_rate(len(body), elapsed, RATE, "one download")
    # Unshaped for comparison: the limit is what slowed it.
    conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=30)
    start = time.monotonic()
    conn.request("GET", "/bytes?n=%d" % (4 * RATE))
    assert conn.getresponse().read() == body
    assert time.monotonic() - start < elapsed / 4
    conn.close()


def test_visitors_of_a_route_share_its_budget(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, site(
        [HOST], [origin_route(origin, policies=[policy("bandwidth", down="256KiB/s")])]))
    size = 2 * RATE
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: download(relay.http_port, size), range(2)))
    elapsed = time.monotonic() - start
    assert all(len(b) == size for b, _ in results)
    assert_rate(2 * size, elapsed, RATE, "two downloads together")


def test_uploads_are_shaped_to_the_limit(group, tmp_path, origin):
    relay = start_relay(group, tmp_path, site(
        [HOST], [origin_route(origin, policies=[policy("bandwidth", up="128KiB/s")])]))
    body = bytes(range(256)) * (4 * 128 * 1024 // 256)
    conn = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=60)
    start = time.monotonic()
    conn.request("POST", "/sha256", body=body, headers={"Host": HOST})
    r = conn.getresponse()
    answer = json.loads(r.read())
    elapsed = time.monotonic() - start
    conn.close()
    assert r.status == 200 and answer["sha256"] == hashlib.sha256(body).hexdigest(), answer
    rate = 128 * 1024
    measured = (len(body) - max(rate // 10, 16 * 1024)) / elapsed
    assert 0.9 * rate <= measured <= 1.1 * rate, (measured, elapsed)


def test_a_tunnels_bandwidth_from_the_relays_tunnel_policy(group, tmp_path, origin, make_agent):
    relay = start_relay(group, tmp_path, tunnel_policies(policy("bandwidth", down="256KiB/s")))
    make_agent(relay, "http", origin.port, "--subdomain", "alpha")
    body, elapsed = download(relay.http_port, 3 * RATE, host="alpha.localhost")
    assert len(body) == 3 * RATE
    assert_rate(len(body), elapsed, RATE, "through a tunnel")


def test_the_owners_bandwidth_adds_to_the_relays(group, tmp_path, origin, make_agent):
    """The relay's 1 MiB/s and the owner's 256 KiB/s: the lower one is what the visitor gets."""
    relay = start_relay(group, tmp_path, tunnel_policies(policy("bandwidth", down="1MiB/s")))
    config = tmp_path / "porthole.toml"
    config.write_text('server = "%s"\n[tunnels.web]\ntype = "http"\ntarget = "%d"\n'
                      'subdomain = "beta"\n[[tunnels.web.policies]]\ntype = "bandwidth"\n'
                      'down = "256KiB/s"\n' % (relay.server, origin.port))
    group.spawn("start", [BIN, "start", "--config", str(config), "--all", "--json",
                          "--inspect=false"]).wait_event("ready")
    body, elapsed = download(relay.http_port, 3 * RATE, host="beta.localhost")
    assert_rate(len(body), elapsed, RATE, "the owner's budget under the relay's")


CONFIG_ERRORS = {
    "no_direction": ("down =", """
[[sites]]
hosts = ["shop.test"]
upstream = ["http://127.0.0.1:1"]
[[sites.policies]]  #<
type = "bandwidth"
"""),
    "not_a_rate": ("bytes a second", """
[[sites]]
hosts = ["shop.test"]
upstream = ["http://127.0.0.1:1"]
[[sites.policies]]
type = "bandwidth"
down = "2MiB"  #<
"""),
    "two_in_one_list": ("one bandwidth policy", """
[[sites]]
hosts = ["shop.test"]
upstream = ["http://127.0.0.1:1"]
[[sites.policies]]
type = "bandwidth"
down = "2MiB/s"
[[sites.policies]]  #<
type = "bandwidth"
up = "1MiB/s"
"""),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_a_bad_bandwidth_table_is_refused_naming_file_and_line(tmp_path, case):
    needle, text = CONFIG_ERRORS[case]
    assert_refused_at_marked_line(tmp_path / ("%s.toml" % case), text, needle)

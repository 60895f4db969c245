"""error_pages (docs/policies.md): the operator's bodies for the relay's own answers, per site
([[sites]] error_pages) and for every tunnel ([tunnel_policy] error_pages), by status. A page
replaces the relay's short text; the status and the fields a policy's answer needs
(WWW-Authenticate, Retry-After) stay; answers of the upstream itself are never replaced."""
import pytest

from test_policies import (HOST, assert_refused_at_marked_line, basic, get, policy, site,
                           start_relay, table, tunnel_policies, to)

PAGES = {404: "<h1>Nothing here</h1>\n", 403: "<h1>Not for you</h1>\n",
         401: "<h1>Who are you?</h1>\n", 502: "<h1>Back soon</h1>\n",
         503: "<h1>Back very soon</h1>\n"}


def write_pages(tmp_path):
    folder = tmp_path / "errors"
    folder.mkdir()
    for status, body in PAGES.items():
        (folder / ("%d.html" % status)).write_text(body)
    (folder / "429.txt").write_text("slow down\n")
    return {str(s): "errors/%d.html" % s for s in PAGES}


def assert_page(answer, status):
    assert answer.status == status, answer
    assert answer.text == PAGES[status], answer
    assert answer.header("Content-Type") == "text/html; charset=utf-8", answer
    assert answer.backend is None, answer


def test_a_sites_pages_replace_the_relays_own_answers(group, tmp_path, backend):
    pages = write_pages(tmp_path)
    b = backend("b")
    users = ["alice:" + "$6$saltsalt$" + "x" * 86]  # no password matches: every try is a 401
    relay = start_relay(group, tmp_path, site([HOST], [
        to(b, path="/app"),
        to(b, path="/private", policies=[policy("basic_auth", users=users)]),
        to(b, path="/lan", policies=[policy("ip_allow", cidrs=["10.0.0.0/8"])]),
        {"path": "/down", "upstream": ["http://127.0.0.1:1"], "max_tries": 1},
    ], error_pages=pages))
    assert_page(get(relay.http_port, "/nowhere"), 404)         # no route takes the path
    assert_page(get(relay.http_port, "/lan/x"), 403)           # ip_allow refused
    refused = get(relay.http_port, "/private", headers=[("Authorization", basic("alice", "no"))])
    assert_page(refused, 401)
    assert refused.header("WWW-Authenticate").startswith("Basic"), refused
    down = get(relay.http_port, "/down")
    assert down.status in (502, 503), down
    assert_page(down, down.status)
    head = get(relay.http_port, "/nowhere", method="HEAD")
    assert head.status == 404 and head.body == b"", head
    # The upstream's own answers pass as they are, 404 included.
    ok = get(relay.http_port, "/app/missing")
    assert ok.status == 200 and ok.backend == "b", ok
    assert b.requests() == 1


def test_a_status_without_a_page_keeps_the_relays_text(group, tmp_path, backend):
    b = backend("b")
    (tmp_path / "only404.html").write_text("<p>gone</p>")
    relay = start_relay(group, tmp_path, site(
        [HOST], [to(b, path="/lan", policies=[policy("ip_allow", cidrs=["10.0.0.0/8"])])],
        error_pages={"404": "only404.html"}))
    denied = get(relay.http_port, "/lan")
    assert denied.status == 403 and "<p>" not in denied.text and denied.text, denied
    assert get(relay.http_port, "/x").text == "<p>gone</p>"


def test_tunnel_pages_answer_for_tunnel_names(group, tmp_path, backend, make_agent):
    pages = write_pages(tmp_path)
    tun = backend("tun")
    relay = start_relay(group, tmp_path, table("tunnel_policy", {"error_pages": pages}).replace(
        "[[tunnel_policy]]", "[tunnel_policy]")
        + tunnel_policies(policy("ip_deny", cidrs=["127.0.0.2/32"])))
    make_agent(relay, "http", tun.port, "--subdomain", "alpha")
    assert_page(get(relay.http_port, "/", host="ghost.localhost"), 404)  # nobody holds the name
    assert_page(get(relay.http_port, "/", host="alpha.localhost", source="127.0.0.2"), 403)
    served = get(relay.http_port, "/", host="alpha.localhost")
    assert served.status == 200 and served.backend == "tun", served


CONFIG_ERRORS = {
    "status_out_of_range": ("400 to 599", """
[[sites]]
hosts = ["shop.test"]
upstream = ["http://127.0.0.1:1"]
error_pages = { 302 = "p.html" }  #<
"""),
    "status_not_a_number": ("status", """
[[sites]]
hosts = ["shop.test"]
upstream = ["http://127.0.0.1:1"]
error_pages = { oops = "p.html" }  #<
"""),
    "missing_file": ("nowhere.html", """
[[sites]]
hosts = ["shop.test"]
upstream = ["http://127.0.0.1:1"]
error_pages = { 502 = "nowhere.html" }  #<
"""),
    "not_a_table": ("table", """
[tunnel_policy]
error_pages = "errors/"  #<
"""),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_a_bad_error_pages_key_is_refused_naming_file_and_line(tmp_path, case):
    needle, text = CONFIG_ERRORS[case]
    (tmp_path / "p.html").write_text("page")
    assert_refused_at_marked_line(tmp_path / ("%s.toml" % case), text, needle)

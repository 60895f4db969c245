#include "help_topics.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <array>

namespace porthole::cli {
namespace {

constexpr std::string_view config_text = R"TEXT(porthole.toml: the client config file

`porthole start [NAME...] [--all]` opens the tunnels of this file in one client (one session, one
reconnect loop); `porthole config check [--config FILE]` validates it without connecting.

Where     --config FILE; else $XDG_CONFIG_HOME/porthole/porthole.toml; else
          ~/.config/porthole/porthole.toml (when XDG_CONFIG_HOME is unset or empty).
Order     flags win, then the environment (PORTHOLE_SERVER, PORTHOLE_TOKEN), then this file, then
          the defaults below. The token: --token, then --token-file, then PORTHOLE_TOKEN, then
          token or token_file here.
Errors    an unknown key, a wrong type or a bad value stops with FILE:LINE: what is wrong.
Text      UTF-8: strings, quoted keys and comments may hold any language; invalid UTF-8, or text
          beyond ASCII elsewhere, stops with FILE:LINE.
Sizes     a whole number of bytes, or a string with a unit: B, KB, KiB, MB, MiB, GB, GiB ("64KiB").

TOP-LEVEL KEYS

  server = "relay.example.com:7835"
      string HOST:PORT; default "127.0.0.1:7835". The relay's control address; the relays of a
      cluster as a list ("a.example.com:7835,b.example.com:7835"), tried in turn when the one
      in use goes away. --server and PORTHOLE_SERVER win over it.
  token = "a-long-random-token"
      string; default none. The token the relay expects. --token, --token-file and
      PORTHOLE_TOKEN win over it. Keep this file chmod 600, or use token_file.
  token_file = "relay.token"
      string, a file; default none. Read the token from the first line of that file that is not
      blank or a # comment; a relative path starts at this file's directory. Give token or
      token_file, not both. A file that others may read draws a warning (chmod 600 it).
  inspect = false
      bool; default true. Run the local inspector (porthole help inspector). Flag: --inspect.
  inspect_addr = "127.0.0.1:4041"
      string HOST:PORT; default "127.0.0.1:4040", or the next free port up to 4049 when 4040 is
      taken. Where the inspector listens. Flag: --inspect-addr.
  inspect_body_limit = "256KiB"
      size; default 64 KiB. How much of each request and response body the inspector keeps.
      Flag: --inspect-body-limit.
  inspect_memory = "128MiB"
      size; default 32 MiB. What all recorded requests together may hold; the oldest go first.
      Flag: --inspect-memory.

TUNNELS: one [tunnels.NAME] table each; NAME is what `porthole start NAME` takes

  type = "http"
      string, required: http, tcp or tls.
  target = 3000
      required: a port number (on 127.0.0.1), "HOST:PORT", or for http "http://HOST:PORT".
  subdomain = "myapp"
      string (http, tls); default: a random name. Ask for myapp.DOMAIN: 1-63 characters a-z,
      0-9 and '-', not starting or ending with '-'.
  domain = "app.example.com"
      string (http, tls); default none; --domain. Serve a domain of your own instead: its DNS
      points at the relay, and the relay's custom_domains lets your token use it. The relay
      gets its certificate (ACME). Not with subdomain.
  group = "a-long-random-group-key"
      string (http, tls); default none; --group. Join a tunnel group: clients with the same
      token, subdomain and group key all hold the name, and the relay balances visitors over
      them (each new visitor connection goes to the next client). A client that leaves, or
      dies, stops getting visitors; the others keep serving. Needs subdomain, and a token when
      the relay is not on loopback. A secret: the client sends only a digest of it.
  host_header = "rewrite"
      string (http); default "preserve". The Host the local service sees: preserve (the
      visitor's), rewrite (target's host:port) or any other value, sent as it is.
  remote_port = 20432
      integer 1-65535 (tcp); default: a free port from the relay's range.
  routes = [{ path = "/api", target = 8000 }, { path = "/ws", target = "127.0.0.1:9000" }]
      list of { path, target } tables (http); default none. A request whose path begins with a
      route's path on whole segments ("/api" takes /api, /api/v1 and /api?x, not /apix; a path
      ending in '/' takes anything under it) goes to that route's target (written like target);
      the first match in the list wins and the tunnel's own target takes everything else. The
      path reaches the service unchanged. A path starts with '/' and holds no query or spaces.
      On the command line: --route /api=8000 (repeatable).
  [[tunnels.NAME.policies]]
      tables (http) with a type and its keys, as in the relay's [[sites.policies]] (`porthole
      help policies`), but no *_file or *_url keys: the relay checks and changes requests before
      they reach this tunnel. basic_auth users are "NAME:HASH" (htpasswd -nB). On the command
      line: --basic-auth USER:PASSWORD, --allow-ip CIDR, --deny-ip CIDR, --rate-limit N/PERIOD,
      --https-only, --verify-webhook PROVIDER:SECRET, --compress. Needs a relay of protocol
      version 3.
  cache = false
      true (http): the relay keeps this tunnel's responses in its tunnel cache as their
      Cache-Control allows, and serves them while this client is away and its name leased (a
      laptop's site stays up while it sleeps). The relay needs [tunnel_policy] cache. On the
      command line: --cache.

EXAMPLE

  server = "relay.example.com:7835"
  token = "a-long-random-token"
  inspect_body_limit = "256KiB"

  [tunnels.web]
  type = "http"
  target = 3000
  subdomain = "myapp"
  routes = [{ path = "/api", target = 8000 }]

  [tunnels.db]
  type = "tcp"
  target = "127.0.0.1:5432"
  remote_port = 20432

  [tunnels.site]
  type = "tls"
  target = 8443
)TEXT";

constexpr std::string_view server_config_text =
    R"TEXT(The relay's config file: porthole server --config FILE

TOML. Every key is optional; a flag given on the command line wins over its key (--token and
--tokens-file add to the tokens of the file). An unknown key, a wrong type or a bad value stops the
relay with FILE:LINE: what is wrong. Seconds are whole numbers from 1 to 86400; the max_* limits
whole numbers from 1 to 1000000 unless said otherwise. The file is UTF-8: strings, quoted keys and
comments may hold any language.

LISTENERS AND NAMES

  domain = "tunnels.example.com"
      string; default "localhost"; --domain. HTTP tunnels are NAME.DOMAIN (*.localhost
      resolves to loopback in curl and browsers).
  http_addr = "0.0.0.0:80"
      string HOST:PORT; default "127.0.0.1:8080"; --http-addr. Public HTTP (port 0: any free).
  https_addr = "0.0.0.0:443"
      string HOST:PORT; default none; --https-addr. Public HTTPS: tunnel URLs become
      https://NAME.DOMAIN[:PORT], and TLS passthrough tunnels are served here.
  redirect_https = true
      bool; default false; --redirect-https. Answer plain HTTP with 308 to the same URL on https
      (needs https_addr with certificates).
  control_addr = "0.0.0.0:7835"
      string HOST:PORT; default "127.0.0.1:7835"; --control-addr. Where clients connect.
  tcp_ports = "20000-20999"
      string LOW-HIGH; default "20000-20999"; --tcp-ports. Ports handed to TCP tunnels.

CLIENTS

  tokens = ["a-long-random-token", "verifier:5a1c...9e07"]
      list of strings; default none; --token. Accepted client tokens: a token, or better its
      "verifier:HEX" as `porthole token verifier` prints it (reading a verifier does not let
      anyone log in), or "sha256:HEX", the SHA-256 of a token (as secret as the token: it is
      the key a client proves it holds). Without any token the relay accepts every client, and
      refuses to start so unless control_addr is loopback.
  tokens_file = "/etc/porthole/tokens"
      string, a file; default none; --tokens-file. One entry (as for tokens) per line,
      # comments. Prefer it (or tokens here, in a chmod 600 file) to --token: every local user
      can read a command line, and a relay given --token off loopback warns so. Once set,
      tokens are required even while it is empty; `porthole admin tokens add` appends to it.
  bound_names = { myapp = "verifier:5a1c...9e07" }
      table of NAME = an entry as for tokens; default none. Only that token may take NAME.DOMAIN.
  reserved_names = ["www", "api"]
      list of strings; default www, api, admin, mail, relay, status, dashboard, ns1, ns2, smtp,
      autoconfig, autodiscover. Names no client may take; the list replaces the default.

ADMIN API (porthole help admin)

  admin_socket = "/run/porthole/admin.sock"
      string, a path; default $RUNTIME_DIRECTORY/admin.sock, else
      $XDG_RUNTIME_DIR/porthole/admin.sock, else none; "" for none; --admin-socket. Mode 0660:
      root, the relay's user and its group may call. A stale socket is removed; one a relay
      answers on stops the start.
  admin_addr = "127.0.0.1:7836"
      string HOST:PORT; default none; --admin-addr. A TCP admin listener; needs a token, even
      on loopback.
  admin_token = "at least 32 characters"
  admin_token_file = "/etc/porthole/admin-token"
      a string, or a file holding it; default none; --admin-token-file. The bearer token of
      admin_addr, 32 characters at least (head -c 32 /dev/urandom | base64).
  admin_hosts = ["relay.example.com"]
      list of host names; default none. Host names admin_addr answers besides localhost and IP
      literals (any other Host gets 421).

CERTIFICATES FOR VISITORS

  [[tls_certificates]]
  cert = "/etc/porthole/wildcard.pem"
  key = "/etc/porthole/wildcard.key"
      list of tables with cert and key (PEM chain and private key files); default none;
      --tls-cert and --tls-key. Repeatable; chosen by SNI, the first is the default. TOML puts
      tables after the plain keys, so write these last.
  tls_self_signed_dir = "/var/lib/porthole/ca"
      string, a directory; default none; --tls-self-signed. Development: keep a local CA there
      (made on first use) and serve certificates signed by it.

AUTOMATIC CERTIFICATES (ACME)

  custom_domains = { "verifier:HEX" = ["*.customer.com", "app.example.org"] }
      table of token entries (as in tokens) to lists of domains; default none. The domains of
      their own a token's clients may serve (--domain): exact, or *.SUFFIX for any name under
      SUFFIX. The relay gets their certificates by ACME when visitors come.

  [acme]
  email = "ops@example.com"
      string; default none; --acme-email. The account's contact. [acme] (or the flag) turns it
      on: the relay gets a certificate from the CA, on demand, the first time a visitor asks
      for DOMAIN, a site's host or the name of a tunnel a client holds (never for other names).
      Needs https_addr; DNS of each name must point at this relay.
  ca = "letsencrypt"
      string; default "letsencrypt"; --acme-ca. Or "letsencrypt-staging", or a directory URL.
  ca_root = "/etc/porthole/acme-ca.pem"
      string, a PEM file; default none; --acme-ca-root. An extra trusted root for the CA's own
      HTTPS (a private CA).
  state_dir = "/var/lib/porthole"
      string, a directory; default $STATE_DIRECTORY or ~/.local/state/porthole; --state-dir.
      The account key and the certificates (keys 0600), reused after a restart.
  challenges = ["http-01", "tls-alpn-01"]
      list; default both, in that order. http-01 is answered on http_addr (port 80 for the
      CA), tls-alpn-01 on https_addr (port 443).
  renew_after = 0.667
      fraction of a certificate's lifetime; default 0.667. When it is renewed.
  eab_kid = "..."
  eab_hmac = "..."
      strings; default none. External Account Binding, for CAs that require it.
  dns = { rfc2136 = { server = "ns1.example.com:53", zone = "example.com",
          tsig_name = "acme", tsig_alg = "hmac-sha256", tsig_secret = "BASE64" } }
      table; default none. DNS-01 by RFC 2136 updates signed with TSIG (BIND, Knot, PowerDNS).
      With dns or dns_hook, DOMAIN and *.DOMAIN are one certificate, ordered at start: every
      tunnel is served by it, with no order per name. Adds dns-01 to challenges.
  dns_hook = "/usr/local/bin/acme-dns"
      string, a command; default none. DNS-01 through any provider's tool: run as
      HOOK add|remove _acme-challenge.NAME VALUE; exit status 0 is success.
  dns_wait = "30s"
      duration; default 0. Time for secondaries to catch up after publishing, before the CA
      looks.

A CLUSTER OF RELAYS

  cluster = { redis = "redis://127.0.0.1:6379/0", node_id = "relay-a",
              advertise = "10.0.0.1:7837", secret_file = "/etc/porthole/cluster.key" }
      table; default none (a relay of its own). Several relays behind one DNS name share one
      tunnel registry in Redis: a name or port is held through one relay at a time, and a
      visitor who reaches another relay is carried to it over the link. Every relay of a
      cluster has the same domain, tokens, sites and policies; only node_id and advertise
      differ (a relay whose config differs is logged). Per-token limits count every relay's.
      Clients list the relays (--server a:7835,b:7835) and move on when theirs goes away.
      redis: redis://[:PASSWORD@]HOST:PORT/DB or unix:///PATH?db=N.
      node_id: this relay's name in the registry, 1-63 of a-z, 0-9 and '-'.
      advertise: HOST:PORT where the other relays reach this one's link.
      link_addr: where the link listens; default 0.0.0.0 and advertise's port.
      secret_file: the cluster's shared secret, one line of 32 characters or more (openssl
      rand -hex 32), mode 0600; the link is TLS 1.3 keyed by it.
      redis_password_file: the Redis password (AUTH), when the URL holds none.
      Redis unreachable: each relay serves what it holds and takes new tunnels locally, and
      claims them all again when Redis returns.

CLIENT TRANSPORT

  control_tls = "auto"
      string auto, on or off; default "auto"; --control-tls. TLS on the control port; auto is
      on unless control_addr is loopback.
  control_cert = "/etc/porthole/relay.pem"
  control_key = "/etc/porthole/relay.key"
      strings, files; default: a self-signed certificate made at start, whose fingerprint is
      printed for clients to pin; --control-cert, --control-key. Give both or neither.

EVENT LOOPS

  threads = 2
      1 to 64, default the number of cores the relay may run on (its CPU affinity);
      --threads. Event loops, one thread each. The first serves everything; each other one
      listens on the HTTP and HTTPS addresses too (SO_REUSEPORT) and serves site routes with
      no cache, no tunnel member and no bandwidth policy (a rate_limit's table is the
      relay's, shared by the loops), HTTP tunnels with no bandwidth policy, no rate_limit in
      [tunnel_policy] and no cache, and TLS tunnels (the first loop hands it the tunnel's
      data connection), handing any other connection to the first loop once. TCP tunnels and
      tcp sites are accepted and connected by the first loop; the loops take turns carrying
      their bytes. A change needs a restart.

TIMEOUTS (seconds)

  lease_grace = 60
      default 60; --lease-grace. How long a dropped client keeps its names and ports.
  shutdown_timeout = 10
      default 10; --shutdown-timeout. How long SIGINT/SIGTERM lets open requests finish.
  header_timeout = 30
      default 30; --header-timeout. A visitor must send its request head (and finish the TLS
      handshake) within this.
  idle_timeout = 300
      default 300; --idle-timeout. An HTTP connection idle between requests or reads closes;
      WebSockets and other upgrades have none.

LIMITS (each refusal says why; an HTTP visitor over a limit gets 429 per address, 503 per tunnel;
a TCP visitor is closed)

  max_tunnels_per_client = 64
      default 64. Tunnels one client session may open.
  max_tunnels_per_token = 256
      default 256. Tunnels open at once across every client using the same token (in a cluster,
      on every relay).
  max_connections_per_ip = 1024
      default 1024. Open visitor connections from one address.
  max_connections_per_tunnel = 4096
      default 4096. Visitor connections using one tunnel at once.
  max_pending_streams = 256
      default 256. Visitors of one client waiting for a data connection.
  max_new_connections_per_second = 10000
      default 10000. New visitor connections per tunnel and second (a burst of as many); 429.
  max_header_bytes = 65536
      1024 to 1048576; default 65536. Size of a visitor's request head; over it: 431.
  max_unauthenticated = 256
      default 256. Control-port connections that have not proved a token yet; when all are taken,
      a new one closes the oldest. At most a descriptor limit's eighth.
  max_unauthenticated_per_ip = 32
      default 32. The same from one address; more are closed at once.
  handshake_timeout = 5
      default 5. Seconds from a control-port connection's accept to its proof.
  max_sessions_per_token = 32
      default 32. Clients connected at once with one token (a reconnect replaces its old session;
      in a cluster, on every relay).
  max_control_frames_per_second = 100
      default 100 (a burst of twice as many). A client that sends more is disconnected.
  The per-address limits are capped by the descriptor limit: max_connections_per_ip at a quarter
  of it, max_unauthenticated at an eighth; the relay says so at start when it caps them.

SITES: THE RELAY AS A REVERSE PROXY

  [[sites]]
  hosts = ["shop.example.com", "*.shop.example.com"]
      list of strings; required. Exact names, "*." wildcards (the longest wins, exact names
      first) or "*" (every host no other site has). A Host no site serves falls through to the
      tunnels at NAME.DOMAIN. A host in two sites is an error.
  [[sites.routes]]
  path = "/api"
      string; default: every path. A whole-segment prefix ("/api" takes /api, /api/x and
      /api?q, not /apix); the first route that matches wins, and one that can never match
      (after a shorter prefix of its path, or after a route without path) is an error.
  strip_prefix = true
      bool; default false. Forward /api/x as /x.
  upstream = ["http://10.0.0.5:8080", { url = "http://10.0.0.6:8080", weight = 3 }]
      list of members; required (or at the site's level, for its routes). http://HOST[:PORT],
      https://HOST[:PORT] (verified against the system store or ca_file, SNI = HOST),
      unix:/PATH, and tunnel:NAME (the clients that hold NAME; a group of them shares its
      visitors). weight 1 to 1000, default 1.
  These keys may also stand in [[sites]], as defaults for its routes:
  lb_policy = "round_robin"
      round_robin (smooth, weighted), least_conn, random_two (the less busy of two random
      members), ip_hash (the visitor's address) or cookie; ip_hash and cookie use a consistent
      hash ring: removing one of N members moves about 1/N of the visitors.
  cookie_name = "porthole_upstream"
      the cookie lb_policy = "cookie" sets (HttpOnly, Path=/) and follows.
  health_path = "/healthz"
      default none. GET it on every http, https and unix member; health_interval = "5s",
      health_timeout = "2s", health_status = "200-399" ("200", "2xx"); fall = 3 failed checks in
      a row take a member out, rise = 2 passed ones bring it back.
  max_fails = 3, eject_time = "10s"
      passive checks, every member kind: this many connect failures or 5xx answers in a row take
      a member out for eject_time, twice as long each time it happens again (up to 32 times).
      max_fails = 0 turns passive ejection off (a tunnel reached by its own name never is).
  max_tries = 3
      members tried for one request. A failed connect moves on to the next member for any
      request; a request already sent moves on only when it is idempotent and has no body.
      No member available: 503; every member tried failed: 502.
  connect_timeout = "5s", upstream_timeout = "30s"
      upstream_timeout: default none (streams stay open as long as they flow). A response that
      has not started within it is answered 504.
  max_idle_per_member = 256
      kept-alive connections to one backend, reused by later requests; keep it above the
      requests a member serves at once, or those over it pay a new connection each.
  ca_file = "/etc/porthole/backend-ca.pem"
      the CA https members are verified against; default: the system store.
  Durations are whole seconds or strings: "500ms", "2s", "1m", "1h".
  [[sites.policies]], [[sites.routes.policies]]
      tables with type = "ip_allow", "ip_deny", "basic_auth", "jwt", "rate_limit", "headers",
      "redirect", "https_only", "respond", "max_body", "verify_webhook", "rewrite",
      "bandwidth" or "compress", run in order before a request goes upstream: the site's,
      then the route's. `porthole help policies` has every key.
  error_pages = { 404 = "errors/404.html", 502 = "errors/down.html" }
      in [[sites]] or [tunnel_policy]: the body of the relay's own answers by status (400-599),
      read at start from files relative to this one (at most 1 MiB each).
  cache = { memory = "256MiB", max_object = "8MiB", default_ttl = 0 }
      in [[sites]] (one cache its routes share), [[sites.routes]] (the route's own) or
      [tunnel_policy] (one for every tunnel): an RFC 9111 shared cache, in memory and
      optionally on disk. Responses
      are stored as their Cache-Control, Expires, Vary and Last-Modified allow; fresh ones are
      served with Age and Cache-Status, stale ones validated with the stored ETag or
      Last-Modified; concurrent misses for one URL make one upstream request. Keys:
      enabled = true; memory = "256MiB" (the budget, least recently used evicted first);
      max_object = "8MiB" (larger responses pass uncached); default_ttl = 0 (seconds, or "10m":
      freshness for storable responses that state none, else 10% of their Last-Modified age);
      store_set_cookie = false (responses that set cookies are not stored unless true);
      stale_when_offline = false (true: serve stale while no upstream answers, and while a
      tunnel's client is away and its name still leased); opt_in = false ([tunnel_policy]
      only: true caches only tunnels whose owner asks with --cache); disk = { path =
      "/var/cache/porthole/NAME", size = "1GiB" } (keep responses on disk too, across
      restarts: an absolute directory per cache). `porthole help cache` has more.
  [tunnel_policy]
      rules for every HTTP tunnel (a Host NAME.DOMAIN that no site claims):
      [[tunnel_policy.policies]] tables like the ones above, run before the tunnel owner's own,
      forbid = ["respond", ...]: policy types a tunnel's owner may not set ("cache": an owner
      may not ask for the cache with --cache), error_pages, and cache.

  [[tcp_sites]]
  listen = "0.0.0.0:5432"
  upstream = ["tcp://10.0.0.9:5432", "unix:/run/postgresql/.s.PGSQL.5432"]
      L4: every connection on listen goes to one member, bytes pumped both ways. Takes
      lb_policy (not cookie), health_interval (turns on a TCP connect check), health_timeout,
      rise, fall, max_fails, eject_time, connect_timeout, max_tries.

  trusted_proxies = ["10.0.0.0/8", "fd00::/8"]
      CIDRs of load balancers in front of the relay: from them, X-Forwarded-For and
      X-Forwarded-Proto are believed (the visitor's address is the last one before them).
  accept_proxy_protocol = true
      bool; default false. The HTTP and HTTPS listeners (and [[tcp_sites]] with the key set)
      read a PROXY protocol v1 or v2 header first, from trusted_proxies only.
  send_proxy_protocol = "v2"
      off, v1 or v2 (a route or tcp site key); default off. Connections to backends start with
      a PROXY header naming the visitor; they are then not reused for other visitors.

  access_log = { path = "/var/log/porthole/access.log", format = "json", query = "names" }
      one line per request; --access-log, --access-log-format. path: a file, or "-" for
      standard output; format: json (default) or combined (Apache's, porthole's fields after);
      query: names (parameter names without values, default), drop or full. Add
      anonymize_ip = true to keep an IPv4 /24 and an IPv6 /48 only. Never logged:
      Authorization, cookies, tokens. SIGUSR1 opens the file anew (logrotate).
  metrics_addr = "127.0.0.1:9090"
      serves Prometheus metrics at /metrics; --metrics-addr. Off loopback it needs
      metrics_token_file = "/etc/porthole/metrics.token": the bearer token Prometheus sends.
  metrics_tunnel_labels = 200
      0 to 10000: tunnel names with a label of their own; later ones count as _other.
)TEXT";

constexpr std::string_view admin_text =
    R"TEXT(The relay's admin API: porthole admin [--socket PATH | --addr HOST:PORT] [--json] COMMAND

A running relay answers on its admin socket (admin_socket, mode 0660: root, the relay's user or
its group; the kernel names the caller) and, when set, on a TCP port (admin_addr), where every
request carries Authorization: Bearer TOKEN (admin_token or admin_token_file).

COMMANDS

  porthole admin clients               the connected clients: id, address, agent, RTT, tunnels
  porthole admin tunnels               the tunnels served, and the names and ports leased
  porthole admin sites                 the configured sites and each member's health
  porthole admin config                the effective config, secrets as "<redacted>"
  porthole admin tokens                the accepted tokens: digest, label, sessions, source
  porthole admin cluster               a relay of a cluster: Redis reachable or not, the relays
                                       alive, their links, TCP ports and whether their config
                                       matches, visitors carried
  porthole admin kick ID               disconnect a client (8+ hex digits of its id): its names
                                       become leases, it reconnects and gets them back
  porthole admin release NAME          free a leased NAME or tcp:PORT now
  porthole admin reload                read relay.toml and the tokens file again and apply them
                                       (as SIGHUP); a refused file exits 1 naming FILE:LINE
  porthole admin tokens add [--label TEXT]
                                       make a token, append its verifier to tokens_file, print
                                       it once
  porthole admin tokens revoke DIGEST  take a token (12+ hex digits of its digest) out of
                                       tokens_file; its sessions close at once, names freed
  porthole admin upgrade [--binary PATH] [--wait SECONDS]
                                       replace the relay with a new program (default: its own
                                       program file) that takes over its listening sockets,
                                       leases and pinned certificate; clients reconnect to it,
                                       the old relay drains. A new program that cannot serve
                                       exits 1 with its error and the old relay serves on.
                                       Socket only.

Without --socket or --addr it tries the relay's default socket, then /run/porthole/admin.sock.
--addr takes the token from --token-file FILE or PORTHOLE_ADMIN_TOKEN. --json prints the API's
document unchanged. Exit status: 0 done, 1 refused (the API's error on stderr), 2 no relay
answered.

HTTP API (JSON)

  GET    /api/clients, /api/tunnels, /api/sites, /api/config, /api/tokens, /api/cluster
  DELETE /api/clients/ID               kick; 404 unknown, 409 an ambiguous prefix
  DELETE /api/leases/NAME              NAME or tcp:PORT; 409 while a session holds it
  POST   /api/tokens                   {"label": "ci-runner"} -> 201 {"token", "digest",
                                       "verifier"}; 409 without tokens_file
  DELETE /api/tokens/DIGEST            409 for a token set in relay.toml or by --token
  POST   /api/reload                   read the config again: 200 {"generation", "changes"}, or
                                       422 {"error": "FILE:LINE: ..."}, the old config running
  POST   /api/upgrade                  {"binary": "/usr/bin/porthole", "wait": 30}, both
                                       optional; answered once the new relay serves: 200
                                       {"pid", "binary"}, or 422 {"error"}, 409 while one runs;
                                       403 on admin_addr
  GET    /metrics                      the Prometheus text, as on metrics_addr
  GET    /api/recent                   the last 256 refusals and relay-made errors, newest first:
                                       time, kind, reason, status, visitor, host, method, path
                                       (no query), tunnel or site
  GET    /api/events                   server-sent events: "rate" each second (requests,
                                       by_class, bytes_in, bytes_out, sessions), "refusal" and
                                       "error" as they happen; at most 8 readers
  GET    /                             the dashboard (web page, no token needed for its files)

Lists stop at 1000 entries (?limit=N, "truncated": true). On both listeners Host must be
localhost, an IP literal or in admin_hosts (else 421), an Origin must match Host (else 403), and
a POST needs Content-Type: application/json. A missing or wrong token on TCP gets 401 with
WWW-Authenticate: Bearer. Changes are logged with who made them ("admin: uid 1000 (pid 4242)
revoked token 5d41402abc4b2a76").

DASHBOARD

  Open http://ADMIN_ADDR/ in a browser: clients (kick), tunnels and leases (release), sites and
  their members' health, requests/s and bytes/s over five minutes, recent refusals and errors.
  On admin_addr the page asks for the admin token and keeps it in the tab (sessionStorage). For
  the socket: ssh -L 7836:/run/porthole/admin.sock HOST, then http://127.0.0.1:7836/ (no token).
  The page is compiled into the binary and served with a Content-Security-Policy that allows no
  inline script or style and nothing from elsewhere.
)TEXT";

constexpr std::string_view inspector_text =
    R"TEXT(The inspector: what a client records of its HTTP traffic

Every client (porthole http, porthole start) serves a web page and a JSON API at
http://127.0.0.1:4040 (or the next free port up to 4049; the client prints the URL). --inspect-addr
or inspect_addr picks another address; --inspect=false or inspect = false turns it off. It listens
on loopback only and answers only a Host of localhost or an IP address (no DNS rebinding).

RECORDED

  - Each HTTP exchange through an HTTP tunnel: request and response line, headers and body, the
    visitor's address, start time and duration. Bodies up to --inspect-body-limit bytes each
    (default 64 KiB; the whole size is always counted); chunked bodies are recorded decoded.
  - After a WebSocket upgrade, every frame both ways (payload up to 4 KiB; the last 1,000 frames
    of a connection).
  - Replays, like any request.
  All records together hold at most --inspect-memory bytes (default 32 MiB); the oldest go first.

API (JSON; /api/tunnels has the shape scripts already read a public URL from)

  GET    /api/tunnels             open tunnels: name, public_url, proto, config, metrics
  GET    /api/requests/http       records, newest first; ?limit=50&tunnel_name=NAME
  GET    /api/requests/http/ID    one record
  POST   /api/requests/http       replay {"id": "ID"} to the local service; with "raw": "BASE64"
                                  send that edited request instead; answers 204
  DELETE /api/requests/http       forget every record; answers 204
  GET    /api/events              text/event-stream of request, frame, tunnels and clear events
  GET    /metrics                 Prometheus text (porthole_client_*): requests by tunnel and
                                  status class, durations, bytes, local connect failures,
                                  reconnects, session and tunnels up, process_* (README)

POST and DELETE need Content-Type: application/json and no Origin but the inspector's own.
These checks, and the body's announced size, are judged on the request head before any body is
read: a replay may carry 1 MiB (more when --inspect-body-limit is raised), anything else 16 KiB
(over it: 413). At most 64 connections are open at once (another gets 503); a request head must
arrive within 10 s, idle keep-alive time included, and a body within 30 s.
Without the inspector there is no /metrics: give Prometheus a fixed --inspect-addr to scrape.
)TEXT";

constexpr std::string_view routing_text = R"TEXT(Routing: how a visitor reaches a tunnel

HTTP AND HTTPS (porthole http, type = "http")

  A visitor asks for http://NAME.DOMAIN[:PORT]/...: the relay reads the Host header, which must be
  exactly one label under its --domain (any case, any port), and hands the request to the tunnel
  called NAME. With --https-addr the same names answer on HTTPS, with the relay's certificate
  chosen by SNI. Each request of a kept-alive connection is routed on its own.
  - NAME is what the client asked for (--subdomain, subdomain = in the file) or a random
    8-character name: 1-63 characters a-z, 0-9 and '-', not starting or ending with '-'.
  - The relay refuses a name another client holds, a reserved name (reserved_names) and a name
    bound to another token (bound_names).
  - A Host that is not NAME.DOMAIN gets 404; so does a name no client holds (the page names it);
    a name whose client is reconnecting gets 502 until it is back.
  - The local service sees the Host that host_header says (preserve, rewrite or a value) and
    X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host.

PATH ROUTES INSIDE ONE HTTP TUNNEL

  routes = [{ path = "/api", target = 8000 }] in a [tunnels.NAME] table, or --route /api=8000:
  a request whose path begins with a route's path on whole segments ("/api" takes /api, /api/v1
  and /api?x, not /apix; a path ending in '/' takes anything under it) goes to that route's
  target. The first match in the order given wins; the tunnel's own target takes everything else.
  The path is passed on unchanged. A route whose service is down answers 502 naming it; the
  others keep working.

TCP (porthole tcp, type = "tcp")

  Each tunnel gets a public port of its own on the relay: one from --tcp-ports (default
  20000-20999), or the one asked for with --remote-port (remote_port = in the file). Visitors
  connect to DOMAIN:PORT (any name that reaches the relay) and bytes pass through untouched.

TLS PASSTHROUGH (porthole tls, type = "tls")

  On its --https-addr port the relay reads the server name (SNI) from the visitor's ClientHello
  without decrypting. NAME.DOMAIN of a tls tunnel sends the still encrypted connection through the
  client to the local service, which keeps its own certificate; any other name is HTTPS that the
  relay terminates itself.

RECONNECTS

  A client that loses the relay asks for the same names and ports when it is back and gets them:
  the relay holds a dropped client's names and ports for lease_grace seconds (default 60).
)TEXT";

constexpr std::string_view policies_text = R"TEXT(Policies: what the relay checks and changes before a request goes upstream

WHERE

  In the relay's --config file, as tables run in the order written: [[sites.policies]] for
  every route of a site (first), [[sites.routes.policies]] for one route (after the site's), and
  [[tunnel_policy.policies]] for every HTTP tunnel (a Host NAME.DOMAIN no site claims); in
  [tunnel_policy], forbid = ["TYPE", ...] names types a tunnel's owner may not set. Each table has
  a type and that type's keys. A bad table stops the relay at start, naming FILE:LINE.

  A tunnel's owner sets its own, enforced by the relay after the relay's: flags of porthole http
  (--basic-auth USER:PASSWORD, --allow-ip CIDR, --deny-ip CIDR, --rate-limit N/PERIOD,
  --https-only, --verify-webhook PROVIDER:SECRET, --compress) or [[tunnels.NAME.policies]]
  tables in porthole.toml, with the same keys (no *_file or *_url keys: the relay reads no
  file and fetches no URL for a tunnel). A password
  given to --basic-auth is hashed (bcrypt) on the client; only the hash reaches the relay.

    [[sites.policies]]
    type = "ip_deny"
    cidrs = ["203.0.113.0/24"]

THE TYPES

  ip_allow     cidrs = ["10.0.0.0/8", "2001:db8::/32"]: 403 unless the visitor is in one.
  ip_deny      cidrs = [...]: 403 when the visitor is in one. The visitor is the peer, or behind
               trusted_proxies the address X-Forwarded-For or the PROXY header names.
  basic_auth   users = ["alice:$2y$..."] and/or htpasswd_file = "PATH" (relative to the config
               file); realm = "porthole"; forward_auth_header = false. 401 with WWW-Authenticate
               until the Basic credentials match. Hashes: bcrypt ($2y$, htpasswd -B) and
               SHA-crypt ($5$, $6$); plaintext, {SHA} and MD5 ($apr1$) lines are refused. The
               Authorization field is not forwarded unless forward_auth_header = true.
  jwt          Authorization: Bearer JWT checked against jwks_file = "PATH" (a JWK Set, relative
               to the config file), jwks_url = "https://..." (fetched at start and every
               jwks_refresh = "1h"; a failed fetch keeps the old keys) or secret = "..." (HS256,
               32 bytes or more). algorithms = ["RS256", "ES256", "EdDSA"] (the default; HS256
               with a secret; none never); issuer = "..." and audience = "..." when set must
               match iss and aud; leeway = "30s" for exp and nbf; claims_to_headers =
               { sub = "X-User" } sets fields upstream (the visitor's own are removed);
               forward_token = true. 401 with WWW-Authenticate: Bearer error="invalid_token",
               error_description= expired, not yet valid, audience, issuer, signature,
               algorithm, malformed, no key for kid or no keys.
  rate_limit   rate = "100/min" (N/s, N/min, N/h, N/day); burst = N (default: N of rate);
               key = "ip" | "header:NAME" | "route"; ipv6_prefix = 64; max_keys = 100000.
               burst requests pass at once, then one each period/N; over it 429 with
               Retry-After, RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset.
  headers      request_set, request_add, response_set, response_add = { NAME = "VALUE" };
               request_remove, response_remove = ["NAME"]; request_id = true (X-Request-Id added
               when the visitor sent none). Values may hold {remote_addr} {host} {request_id}
               {tunnel} {scheme} {path}. Framing fields (Host, Content-Length, ...) are refused.
  redirect     to = "https://new.example.com{uri}" ({host} {path} {query} {uri}); status = 308
               (301, 302, 303, 307 or 308).
  https_only   status = 308: a plain-HTTP visitor is sent to the same URL over HTTPS.
  respond      status = 200, body = "", content_type = "text/plain; charset=utf-8": the relay
               answers itself (a maintenance page, robots.txt).
  max_body     size = "10MiB": 413 when Content-Length says more, before a byte goes upstream; a
               chunked body is cut where it passes the size.
  rewrite      strip_prefix = "/api", from = "^/old/(.*)$", to = "/new/\\1", add_prefix = "/v2":
               the path sent upstream, in that order (a prefix on whole segments; the first
               match of the RE2 expression replaced, \1-\9 its groups); the query is kept.
  bandwidth    down = "2MiB/s", up = "512KiB/s", burst = "256KiB": bytes a second through the
               route (to and from visitors), shared by all its visitors; over it they wait.
  verify_webhook
               provider = "github" | "stripe" | "slack" | "shopify" | "twilio" | "hmac";
               secret = "..." or secret_file = "PATH" (relative to the config file; never
               logged); max_body = "1MiB" (larger: 413). The relay reads the whole body first,
               checks the provider's signature over it, then forwards it exactly as it came;
               else 401 naming the failed check ("signature header missing", "timestamp outside
               the tolerance", "signature does not match", ...).
                 github   X-Hub-Signature-256: sha256=HEX(HMAC-SHA256(secret, body))
                 stripe   Stripe-Signature: t=TS,v1=HEX(HMAC-SHA256(secret, TS.body)), any v1
                 slack    X-Slack-Signature: v0=HEX(HMAC-SHA256(secret, v0:TS:body)) with
                          X-Slack-Request-Timestamp: TS
                 shopify  X-Shopify-Hmac-Sha256: BASE64(HMAC-SHA256(secret, body))
                 twilio   X-Twilio-Signature: BASE64(HMAC-SHA1(token, URL + sorted form fields));
                          url = "https://hooks.example.com/sms" when the public URL differs
                 hmac     header = "X-Signature" (required), algorithm = "sha256" | "sha1" |
                          "sha512", encoding = "hex" | "base64", prefix = "sha256="
               tolerance = "5m": how far a stripe or slack timestamp may be from now.
  compress     encodings = ["zstd", "br", "gzip"] (the relay's preference); gzip_level = 1 (1-9),
               br_level = 1 (0-11), zstd_level = 1 (1-9); min_length = 1024 (bytes: a shorter
               Content-Length is sent as it is); types = ["text/*", "application/json",
               "application/javascript", "application/xml", "image/svg+xml", ...] ("type/*" for
               every subtype). Responses of those types go out compressed as they stream, with
               the first encoding the visitor's Accept-Encoding takes (weights, q=0 and * read);
               Vary: Accept-Encoding is added, a strong ETag weakened (W/"..."), Accept-Ranges
               dropped, the body sent chunked (HTTP/1.0: ended by the close). Never compressed:
               HEAD, Range requests, Cache-Control: no-transform (request or response), 1xx,
               204, 206, 304, bodies with a Content-Encoding already. Whenever the upstream
               pauses, what came is flushed, so server-sent events are not held back.

An answer to a request without a body keeps a kept-alive connection open; the next request on
it is judged again. So does one to a request whose body verify_webhook has read.

Error pages: error_pages = { 404 = "errors/404.html", 502 = "errors/down.html" } in a [[sites]]
table, or in [tunnel_policy] for tunnel names: the body the relay sends, by status (400-599),
whenever it answers a request itself (no route, no such tunnel, upstream down, a policy's
answer). Content-Type from the extension (.html, .json, else text). Read at start, 1 MiB at most.

A tunnel's owner sees each request a relay policy answered in the client's inspector and request
events, with "policy": TYPE (credentials the visitor sent are redacted on the relay).
)TEXT";

constexpr std::string_view cache_text = R"TEXT(The relay's HTTP cache: an RFC 9111 shared cache in memory and optionally on disk, per
site, per route or for every tunnel. docs/caching.md has the whole design.

  [[sites]]
  hosts = ["shop.example.com"]
  upstream = ["http://10.0.0.5:8080"]
  cache = { memory = "256MiB", max_object = "8MiB",
            disk = { path = "/var/cache/porthole/shop", size = "10GiB" } }

  [tunnel_policy]
  cache = { memory = "64MiB", stale_when_offline = true }

Keys (every one optional): enabled = true, memory = "256MiB", max_object = "8MiB" (at most
memory), default_ttl = 0, store_set_cookie = false, stale_when_offline = false, opt_in = false,
disk (none). A [[sites.routes]] table with its own cache = { ... } (or cache = { enabled =
false }) overrides its site's.

The disk tier: disk = { path = "DIR", size = "1GiB" } keeps every stored response in DIR too
(an absolute path, its own for each cache; made mode 0700 if missing; the packaged service may
write under /var/cache/porthole). Memory holds the most recently used; what it let go is read
back from disk. Restarts, crashes and reloads keep what is on disk. Each file carries its
length and a CRC-32: one cut short or damaged is deleted when read, never served. size bounds
the files (least recently used deleted first). A failed write (a full disk) turns disk writes
off for a minute, logged; the cache goes on in memory. A second relay on the same DIR is
refused at start.

What is stored: responses to GET with a final status other than 206 and 304, unless the request
or the response says no-store, the response is private or varies on *, the request carried
Authorization (stored only with public, s-maxage or must-revalidate), or the response sets a
cookie (store_set_cookie = true allows it). A response needs explicit freshness (max-age,
s-maxage, Expires, public) unless its status is heuristically cacheable (200, 203, 204, 300,
301, 308, 404, 405, 410, 414, 501). s-maxage, then max-age, then Expires - Date decide how long
it is fresh; without them, default_ttl, else 10% of the time since Last-Modified (at most a day).

What is served: a fresh stored response matching the URL and the Vary fields, with Age and
Cache-Status ("porthole; hit; ttl=N"); HEAD from a stored GET; the visitor's own If-None-Match
and If-Modified-Since answered 304; one byte range answered 206 (416 outside the body). The
request's no-cache, max-age, min-fresh and max-stale are followed; so are the response's
no-cache, must-revalidate, proxy-revalidate and stale-while-revalidate (the stale response is
served at once and refreshed behind the visitor). A stale response with an ETag or
Last-Modified is validated: the relay asks the upstream with If-None-Match or
If-Modified-Since, and a 304 renews what is stored ("porthole; fwd=stale; fwd-status=304").
Concurrent misses for one URL wait for the first one's response (up to 30 s).
CDN-Cache-Control (RFC 9213), when a response has it, takes Cache-Control's place here.

When the upstream fails (no connection, no answer, or a 5xx), a stale response within the
response's or the request's stale-if-error is served instead; stale_when_offline = true serves
any stored response when no upstream can be reached, and for a tunnel while its client is away
and its name is still leased (never past must-revalidate, proxy-revalidate, s-maxage or
no-cache) (raise lease_grace to keep a laptop's site up while it sleeps). A tunnel's stored
responses belong to the client holding the name: another client taking the name later starts
from nothing. An unsafe method (POST, PUT, DELETE, PATCH) answered below 400 drops the stored
responses of its URL and of same-host URLs in Location and Content-Location.

A tunnel's owner: porthole http 8000 --cache (cache = true in [tunnels.NAME]) asks for the
tunnels' cache and consents to stale answers while away: what is stored for the tunnel is then
served while its client is away, as stale_when_offline would (within the same limits). With
opt_in = true in [tunnel_policy] cache, only such tunnels are cached; without, every tunnel is.
A relay without [tunnel_policy] cache, or with forbid = ["cache"], refuses the tunnel and says
why.

Admin: porthole admin cache (sizes and counts), porthole admin cache purge URL [--prefix];
GET /api/cache and DELETE /api/cache?url=URL or ?prefix=URL on the admin API. URL is
"https://host/path?query", or "host/path" for both schemes. Metrics:
porthole_cache_requests_total{cache,result}, porthole_cache_stored_bytes{cache},
porthole_cache_entries{cache}; with a disk tier, porthole_cache_disk_bytes{cache},
porthole_cache_disk_entries{cache}, porthole_cache_disk_reads_total{cache} and
porthole_cache_disk_errors_total{cache,kind=corrupt|write}.

Not yet: compression of cached responses on a route with the compress policy (hits are sent
as stored).
)TEXT";

constexpr std::array<help_topic, 7> topics{{
    {"cache", "the relay's HTTP cache: what is stored and served, stale answers, purge",
     cache_text},
    {"config", "the client config file porthole.toml: every key, its type and default",
     config_text},
    {"server-config", "the relay's --config file: every key, its type, default and flag",
     server_config_text},
    {"admin", "the relay's admin API and porthole admin: clients, tunnels, kicks, tokens",
     admin_text},
    {"inspector", "what the client's inspector records, its address and its JSON API",
     inspector_text},
    {"routing", "how visitors reach tunnels: NAME.DOMAIN, TCP ports, SNI and path routes",
     routing_text},
    {"policies", "what the relay checks and changes per site, route and tunnel: auth, JWTs, "
                 "IP rules, rate limits, headers, redirects, webhook signatures, compression",
     policies_text},
}};

std::string command_names(const CLI::App& app) {
    std::string names;
    for (const CLI::App* sub : app.get_subcommands(
             [](const CLI::App* s) { return !s->get_name().empty() && !s->get_group().empty(); }))
        names += (names.empty() ? "" : ", ") + sub->get_name();
    return names;
}

}  // namespace

std::span<const help_topic> help_topics() { return topics; }

std::string help_topic_names() {
    std::string names;
    for (const auto& topic : topics)
        names += fmt::format("{}{}", names.empty() ? "" : ", ", topic.name);
    return names;
}

int run_help(const CLI::App& app, const std::vector<std::string>& words, std::ostream& out,
             std::ostream& err) {
    if (words.empty()) {
        std::string main_help =
            app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
        while (!main_help.empty() && main_help.back() == '\n') main_help.pop_back();
        out << main_help << "\n\nReference pages, porthole help TOPIC:\n";
        for (const auto& topic : topics)
            out << fmt::format("  {:<15} {}\n", topic.name, topic.summary);
        out << "\nporthole help COMMAND prints what porthole COMMAND --help prints.\n";
        return 0;
    }
    if (words.size() == 1)
        for (const auto& topic : topics)
            if (topic.name == words.front()) {
                out << topic.text;
                return 0;
            }
    const CLI::App* cmd = &app;
    std::string path = app.get_name();
    for (const auto& word : words) {
        auto found =
            cmd->get_subcommands([&word](const CLI::App* s) { return s->get_name() == word; });
        path += " " + word;
        if (found.empty()) {
            err << fmt::format(
                "porthole: error: no help topic or command '{}' (topics: {}; "
                "commands: {})\n",
                path.substr(app.get_name().size() + 1), help_topic_names(), command_names(*cmd));
            return 2;
        }
        cmd = found.front();
    }
    out << cmd->get_formatter()->make_help(cmd, path, CLI::AppFormatMode::Normal);
    return 0;
}

}  // namespace porthole::cli

#pragma once
// The relay's settings: defaults, TOML file, tokens file, validation. Errors name FILE:LINE.
#include "config/acme_config.hpp"
#include "config/cluster_config.hpp"
#include "config/endpoint.hpp"
#include "config/site_config.hpp"
#include "observe/access_log_settings.hpp"
#include "protocol/auth.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace porthole::config {

// Where one accepted token came from, index for index with server_config::tokens.
struct token_origin {
    std::string source{};  // "relay.toml:9", "/var/lib/porthole/tokens:3", "--token"
    std::string label{};  // a tokens-file line's comment: "verifier:HEX  # laptop, added ..."
    bool from_tokens_file = false;  // the admin API may revoke it
};

// The CPUs this process may run on (its affinity mask, which cpusets and taskset narrow), 1 to 64:
// the default number of event loops.
std::uint32_t usable_cores();

struct server_config {
    std::string domain = "localhost";
    endpoint http_addr{"127.0.0.1", 8080};
    endpoint control_addr{"127.0.0.1", 7835};
    port_range tcp_ports{20000, 20999};
    std::vector<protocol::verifier> tokens;  // verifiers of the accepted tokens
    std::vector<token_origin> token_origins{};  // where each of `tokens` came from
    // Set: tokens are required even while it holds none, and `porthole admin tokens` edits it.
    std::string tokens_file{};
    std::chrono::seconds lease_grace{60};
    std::chrono::milliseconds heartbeat{10000};
    std::chrono::seconds shutdown_timeout{10};
    std::chrono::seconds header_timeout{30};
    std::chrono::seconds idle_timeout{300};
    std::uint16_t pool_size = 8;
    // Abuse limits (docs: README "Relay configuration file").
    std::vector<std::string> reserved_names{"www",  "api",    "admin",     "mail", "relay",
                                            "status", "dashboard", "ns1", "ns2",  "smtp",
                                            "autoconfig", "autodiscover"};
    std::uint32_t max_tunnels_per_client = 64;
    std::uint32_t max_tunnels_per_token = 256;  // across every client using the token
    std::uint32_t max_connections_per_ip = 1024;
    std::uint32_t max_connections_per_tunnel = 4096;
    std::uint32_t max_pending_streams = 256;  // per client: visitors waiting for a data connection
    std::uint32_t max_new_connections_per_second = 10000;  // per tunnel, burst of as many
    std::uint32_t max_header_bytes = 64 * 1024;  // a visitor's request head; over it: 431
    // Control-port connections that have not authenticated yet (HELLO or DATA_HELLO, then the
    // proof): in all and per source address. A full table closes its oldest entry for a new one.
    std::uint32_t max_unauthenticated = 256;
    std::uint32_t max_unauthenticated_per_ip = 32;
    std::chrono::seconds handshake_timeout{5};  // from accept to a verified proof
    std::uint32_t max_sessions_per_token = 32;  // clients connected at once with one token
    // Frames a session may send per second (a burst of twice as many): over it, it is closed.
    std::uint32_t max_control_frames_per_second = 100;
    // Names only one token may take: name -> that token's verifier.
    std::vector<std::pair<std::string, protocol::verifier>> bound_names;
    // Domains of their own a token's tunnels may serve (--domain): verifier -> patterns
    // ("app.example.com", "*.customer.com").
    std::vector<std::pair<protocol::verifier, std::vector<std::string>>> custom_domains{};
    // [tunnel_policy] cache: one shared cache in front of every tunnel's route.
    std::optional<cache_config> tunnel_cache{};
    bool json = false;
    // `porthole proxy`: no control port and no tunnels, only the sites.
    bool control_enabled = true;
    // Client-relay transport: "auto" is TLS unless the control address is loopback.
    std::string control_tls = "auto";
    std::string control_cert;  // PEM chain; empty: a self-signed certificate made at start
    std::string control_key;

    bool control_tls_enabled() const;

    // HTTPS for visitors.
    std::optional<endpoint> https_addr;
    std::vector<std::string> tls_certs;  // PEM chains, chosen by SNI; paired with tls_keys
    std::vector<std::string> tls_keys;
    std::string tls_self_signed_dir;  // non-empty: a local CA and *.DOMAIN certificate live here
    bool redirect_https = false;  // plain HTTP answers 308 to https://
    std::optional<acme_config> acme{};  // certificates from an ACME CA, on demand
    // One of several relays sharing a tunnel registry in Redis (docs/design-scale.md).
    std::optional<cluster_config> cluster{};

    // Reverse proxy: [[sites]] by host and path, [[tcp_sites]] by listening address.
    site_set sites;
    // [tunnel_policy]: rules for every HTTP tunnel (a Host no site claims). `policies` run
    // before the tunnel owner's own; `forbid` names types an owner may not set.
    std::vector<policy_config> tunnel_policies;
    std::vector<std::string> tunnel_policy_forbid;
    error_pages tunnel_error_pages;  // [tunnel_policy] error_pages
    // Peers whose X-Forwarded-For and PROXY headers are believed: "10.0.0.0/8", "::1/128", or a
    // single address; kept as normalized network text.
    std::vector<std::string> trusted_proxies;
    bool accept_proxy_protocol = false;  // HTTP and HTTPS listeners read a PROXY v1/v2 header first

    std::string config_file{};  // the --config file it was read from, if any

    // The admin API (docs/design-operations.md#admin-api). nullopt: the default path
    // (default_admin_socket()); "": no socket.
    std::optional<std::string> admin_socket{};
    std::optional<endpoint> admin_addr{};  // a TCP listener, which needs admin_token
    std::string admin_addr_at{};  // "relay.toml:14" or "--admin-addr", for errors
    std::string admin_token{};  // the bearer token of admin_addr; never printed
    std::vector<std::string> admin_hosts{};  // Host names admin_addr answers besides localhost

    bool tokens_required() const { return !tokens.empty() || !tokens_file.empty(); }

    // Observing: a listener for GET /metrics, tunnel names with a label of their own, the
    // access log (off when unset).
    std::optional<endpoint> metrics_addr;
    std::string metrics_token_file;  // bearer token Prometheus sends; needed off loopback
    std::uint32_t metrics_tunnel_labels = 200;
    // Event loops, one thread each: the first serves everything, the others the HTTP edge's
    // routes and tunnels that any loop may serve (docs/architecture.md#threads). Default: the
    // cores this process may run on.
    std::uint32_t threads = usable_cores();
    std::optional<observe::access_log_settings> access_log;
};

// $RUNTIME_DIRECTORY/admin.sock (systemd), else $XDG_RUNTIME_DIR/porthole/admin.sock, else "".
std::string default_admin_socket();
// A bearer token in a file (admin_token_file, metrics_token_file): its first line, trimmed,
// checked for length; `at` names the setting in errors.
tl::expected<std::string, std::string> read_admin_token_file(const std::string& path,
                                                             const std::string& at);
// At least 32 characters.
tl::expected<void, std::string> check_admin_token(const std::string& token, const std::string& at);

// Applies the keys of a TOML file over `cfg`.
tl::expected<void, std::string> load_server_file(const std::string& path, server_config& cfg);
// The same over text already read; `path` names it in errors.
tl::expected<void, std::string> load_server_text(std::string_view text, const std::string& path,
                                                 server_config& cfg);
// One entry of a tokens file: the token or verifier, and the label of its comment.
struct tokens_file_line {
    std::string entry{};
    std::string label{};
};
// nullopt for a blank or comment line.
std::optional<tokens_file_line> read_tokens_file_line(std::string_view line);
// Appends the tokens of a file: one per line, '#' comments, "sha256:HEX" for a stored digest.
tl::expected<void, std::string> load_tokens_file(const std::string& path, server_config& cfg);
// Checks that concern several settings at once.
tl::expected<void, std::string> validate(const server_config& cfg);

}  // namespace porthole::config

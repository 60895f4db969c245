#pragma once
// The client's settings: the relay to use and the tunnels to open, from flags or porthole.toml
// (`[tunnels.NAME]` tables). Errors name FILE:LINE.
#include "config/endpoint.hpp"
#include "protocol/frame.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace porthole::config {

// One path-prefix rule inside an HTTP tunnel: requests under `path` go to `target`.
struct http_route {
    std::string path;
    endpoint target;
};

struct tunnel_spec {
    std::string name;  // the [tunnels.NAME] key; empty for a tunnel given on the command line
    protocol::tunnel_kind kind = protocol::tunnel_kind::http;
    endpoint target;
    std::string subdomain;  // http: empty = the relay picks one
    std::uint16_t remote_port = 0;  // tcp: 0 = the relay picks one
    std::string host_header = "preserve";  // http: preserve | rewrite | a literal value
    std::vector<http_route> routes;  // http: first match wins; `target` takes the rest
    // http, tls: clients asking for the same subdomain with the same token and group key share
    // it, and the relay balances visitors over them. A secret: never logged.
    std::string group;
    std::string group_at;  // FILE:LINE of a config file's `group`, for later checks
    std::string policies;  // http: the owner's [[policies]] as sent to the relay (owner_policies)
};

// A tunnel group joined without a token on a relay other machines reach: anyone who knows
// (or guesses) the group key could join it and take visitors. The message names where the group
// was asked for and the fix; nullopt when fine.
std::optional<std::string> group_without_token(const tunnel_spec& t, const endpoint& server,
                                               bool has_token);

// The local inspector (docs/inspector.md).
struct inspect_settings {
    bool enabled = true;
    std::optional<endpoint> addr;  // unset: 127.0.0.1:4040, or the next free port
    std::size_t body_limit = 64 * 1024;  // bytes captured per body
    std::size_t memory = 32 * 1024 * 1024;  // bytes all records may hold
};

struct agent_config {
    endpoint server{"127.0.0.1", 7835};  // the first relay to try
    // Every relay to try, `server` first: relays of one cluster; when the one in use goes
    // away, the client goes on with the next (--server a:7835,b:7835).
    std::vector<endpoint> servers{};
    std::string token;
    std::vector<tunnel_spec> tunnels;
    bool json = false;  // one JSON event per line on stdout instead of text
    bool live_view = false;  // redraw a status screen on the terminal instead of log lines
    bool no_color = false;
    bool qr = false;  // print each public URL as a QR code
    inspect_settings inspect;
    // Transport: "auto" is TLS unless the relay is on loopback (or a fingerprint is pinned).
    std::string tls = "auto";
    std::string server_ca;  // CA file; empty: the system trust store
    std::string server_fingerprint;  // lowercase hex SHA-256 of the relay's certificate
    bool insecure = false;
    std::chrono::seconds target_connect_timeout{10};  // to the local service, per visitor

    bool tls_enabled() const {
        return tls == "on" ||
               (tls == "auto" && (!server_fingerprint.empty() || !is_loopback_host(server.host)));
    }
};

struct client_file {
    std::optional<std::vector<endpoint>> server;
    std::optional<std::string> token;
    std::optional<std::string> token_file;  // a relative path is taken from the file's directory
    inspect_settings inspect;
    std::vector<tunnel_spec> tunnels;  // sorted by name
};

tl::expected<client_file, std::string> load_client_file(const std::string& path);
// The same over text already read; `path` names it in errors.
tl::expected<client_file, std::string> load_client_text(std::string_view text,
                                                        const std::string& path);

// A byte size: a number, or a number with B, KB, KiB, MB, MiB, GB or GiB ("64KiB").
tl::expected<std::size_t, std::string> parse_size(std::string_view text);

// A route given as PATH=TARGET (--route /api=8000).
tl::expected<http_route, std::string> parse_route(std::string_view text);

// ~/.config/porthole/porthole.toml (XDG_CONFIG_HOME respected).
std::string default_client_file();

// A token kept in a file stays out of the process list, which every local user can read.
struct file_token {
    std::string token;
    std::string warning;  // set when users besides the owner may read the file
};
// The first line of `path` that is neither blank nor a # comment, trimmed. Errors name the file,
// never its contents.
tl::expected<file_token, std::string> read_token_file(const std::string& path);
// The same over text already read; `path` names it in errors.
tl::expected<std::string, std::string> token_in_text(std::string_view text,
                                                     const std::string& path);
// Whether permission bits `mode` let the file's group or everyone read it.
bool others_may_read(unsigned mode);

// The warning due for a token given with --token to a process whose peer (a relay, or the relay's
// own control listener) is `address`; empty on loopback. `instead` names the safer ways.
std::string command_line_token_warning(const endpoint& address, std::string_view instead);

}  // namespace porthole::config

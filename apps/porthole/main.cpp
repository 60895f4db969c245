// porthole command line: parses flags, builds a config, hands it to the relay or the client.
#include "admin_command.hpp"
#include "client/agent.hpp"
#include "completion.hpp"
#include "config/client_config.hpp"
#include "config/owner_policies.hpp"
#include "config/server_config.hpp"
#include "core/log.hpp"
#include "help_topics.hpp"
#include "http/host_route.hpp"
#include "manpage.hpp"
#include "net/tls.hpp"
#include "core/fd_channel.hpp"
#include "relay/handoff.hpp"
#include "relay/relay.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>
#include <filesystem>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include <sys/stat.h>
#include <unistd.h>

namespace {

using porthole::config::endpoint;

[[noreturn]] void fail(const std::string& message) {
    std::cerr << "porthole: error: " << message << "\n";
    std::exit(2);
}

// --server HOST:PORT[,HOST:PORT...]: `server` is the first, `servers` all of them.
void set_servers(porthole::config::agent_config& cfg, const std::string& flag,
                 const std::string& value) {
    auto list = porthole::config::parse_server_list(value);
    if (!list) fail(fmt::format("{}: {}", flag, list.error()));
    cfg.server = list->front();
    cfg.servers = std::move(*list);
}

endpoint endpoint_flag(const std::string& flag, const std::string& value) {
    auto ep = porthole::config::parse_endpoint(value);
    if (!ep) fail(fmt::format("{}: {}", flag, ep.error()));
    return *ep;
}

struct server_flags {
    std::string config_file, domain, http_addr, control_addr, tcp_ports, tokens_file;
    std::string control_tls, control_cert, control_key;
    std::string https_addr, tls_self_signed;
    std::string acme_email, acme_ca, acme_ca_root, state_dir;
    std::string access_log, access_log_format, metrics_addr;
    std::vector<std::string> tls_certs, tls_keys;
    bool redirect_https = false;
    std::vector<std::string> tokens;
    std::string admin_socket, admin_addr, admin_token_file;
    int lease_grace = 0, shutdown_timeout = 0, header_timeout = 0, idle_timeout = 0, threads = 0;
    bool json = false;
};

struct proxy_flags {
    std::string listen = "127.0.0.1:8080";
    std::vector<std::string> upstream;
    std::string lb_policy = "round_robin", health_path, cookie_name, ca_file;
    int health_interval = 5, upstream_timeout = 0, threads = 0;
    bool json = false;
};

// How the client reaches the relay: shared by http, tcp and start.
struct transport_flags {
    std::string tls = "auto", server_ca, server_fingerprint;
    bool insecure = false;
    int connect_timeout = 10;
};

// What the client shows: the terminal view or log lines, and the inspector.
struct output_flags {
    std::string log_format = "auto";
    bool json = false, qr = false;
    bool inspect = true;
    std::string inspect_addr, inspect_body_limit, inspect_memory;
};

struct client_flags {
    std::string target, server = "127.0.0.1:7835", token, token_file, subdomain, domain, group,
        host_header = "preserve";
    std::vector<std::string> routes;
    int remote_port = 0;
    porthole::config::owner_policy_flags policies;
    transport_flags transport;
    output_flags output;
};

void add_output_flags(CLI::App& cmd, output_flags& f) {
    cmd.add_option("--log-format", f.log_format,
                   "auto (a live view when stdout is a terminal, else text), text or json "
                   "(one event per line)")
        ->check(CLI::IsMember({"auto", "text", "json"}))
        ->capture_default_str();
    cmd.add_flag("--json", f.json, "same as --log-format json");
    cmd.add_flag("--qr", f.qr, "show each public URL as a QR code too");
    cmd.add_flag("--inspect", f.inspect,
                 "run the inspector (web page and API of recorded requests); --inspect=false "
                 "turns it off")
        ->capture_default_str();
    cmd.add_option("--inspect-addr", f.inspect_addr,
                   "inspector address HOST:PORT (default 127.0.0.1:4040, or the next free port)");
    cmd.add_option("--inspect-body-limit", f.inspect_body_limit,
                   "bytes of each request and response body the inspector keeps (default 64KiB)");
    cmd.add_option("--inspect-memory", f.inspect_memory,
                   "bytes all recorded requests may take; the oldest go first (default 32MiB)");
}

std::size_t size_flag(const std::string& flag, const std::string& value) {
    auto size = porthole::config::parse_size(value);
    if (!size) fail(fmt::format("{}: {}", flag, size.error()));
    return *size;
}

// `base` holds what the config file said; flags given on the command line win.
void apply_output(const CLI::App& cmd, const output_flags& f,
                  const porthole::config::inspect_settings& base,
                  porthole::config::agent_config& cfg) {
    const std::string format = f.json ? "json" : f.log_format;
    cfg.json = format == "json";
    const char* term = std::getenv("TERM");
    cfg.live_view = format == "auto" && ::isatty(STDOUT_FILENO) == 1 &&
                    !(term && std::string_view(term) == "dumb");
    const char* no_color = std::getenv("NO_COLOR");
    cfg.no_color = no_color && *no_color;
    cfg.qr = f.qr;
    cfg.inspect = base;
    if (cmd.count("--inspect")) cfg.inspect.enabled = f.inspect;
    if (cmd.count("--inspect-addr"))
        cfg.inspect.addr = endpoint_flag("--inspect-addr", f.inspect_addr);
    if (cmd.count("--inspect-body-limit"))
        cfg.inspect.body_limit = size_flag("--inspect-body-limit", f.inspect_body_limit);
    if (cmd.count("--inspect-memory"))
        cfg.inspect.memory = size_flag("--inspect-memory", f.inspect_memory);
}

void add_transport_flags(CLI::App& cmd, transport_flags& f) {
    cmd.add_option("--tls", f.tls,
                   "TLS to the relay: auto (on unless the relay is on loopback), on or off")
        ->check(CLI::IsMember({"auto", "on", "off"}))
        ->capture_default_str();
    cmd.add_option("--server-ca", f.server_ca, "verify the relay against this CA file (PEM)")
        ->check(CLI::ExistingFile);
    cmd.add_option("--server-fingerprint", f.server_fingerprint,
                   "accept only the relay certificate with this SHA-256 (sha256:HEX, as the "
                   "relay prints it)");
    cmd.add_flag("--insecure", f.insecure, "do not verify the relay's certificate (unsafe)");
    cmd.add_option("--connect-timeout", f.connect_timeout,
                   "seconds to connect to the local service for each visitor before the visitor "
                   "gets an error (502 for HTTP)")
        ->check(CLI::Range(1, 60))
        ->capture_default_str();
}

void apply_transport(const transport_flags& f, porthole::config::agent_config& cfg) {
    cfg.tls = f.tls;
    cfg.target_connect_timeout = std::chrono::seconds(f.connect_timeout);
    cfg.server_ca = f.server_ca;
    cfg.insecure = f.insecure;
    if (!f.server_fingerprint.empty()) {
        auto fp = porthole::net::normalize_fingerprint(f.server_fingerprint);
        if (!fp)
            fail(fmt::format("--server-fingerprint '{}': expected sha256: and 64 hex digits",
                             f.server_fingerprint));
        cfg.server_fingerprint = *fp;
    }
    if (cfg.tls == "off" && (cfg.insecure || !cfg.server_fingerprint.empty() || !cfg.server_ca.empty()))
        fail("--tls off cannot be combined with --server-ca, --server-fingerprint or --insecure");
}

void warn(const std::string& message) { std::cerr << "porthole: warning: " << message << "\n"; }

constexpr std::string_view token_help =
    "token the relay expects; every local user can read it in the process list: prefer "
    "--token-file or PORTHOLE_TOKEN";
constexpr std::string_view token_file_help =
    "read the token from the first line of FILE that is not blank or a # comment (keep it "
    "chmod 600)";

// Precedence: --token, then --token-file, then PORTHOLE_TOKEN, then the config file's token or
// token_file. `file` is null for commands that read no config file.
std::string client_token(const CLI::App& cmd, const std::string& token,
                         const std::string& token_file, const porthole::config::client_file* file,
                         const endpoint& server) {
    if (cmd.count("--token")) {
        if (auto w = porthole::config::command_line_token_warning(
                server, "--token-file FILE or PORTHOLE_TOKEN");
            !w.empty())
            warn(w);
        return token;
    }
    const auto from_file = [](const std::string& path) {
        auto read = porthole::config::read_token_file(path);
        if (!read) fail(read.error());
        if (!read->warning.empty()) warn(read->warning);
        return read->token;
    };
    if (cmd.count("--token-file")) return from_file(token_file);
    if (const char* env = std::getenv("PORTHOLE_TOKEN"); env && *env) return env;
    if (file && file->token) return *file->token;
    if (file && file->token_file) return from_file(*file->token_file);
    return {};
}

// The relay's config: defaults, then the file and the tokens file, then the flags. Run again on
// reload with the same flags: then only the files can have changed, and an error is returned
// rather than ending the process.
tl::expected<porthole::config::server_config, std::string> build_server_config(
    const CLI::App& cmd, const server_flags& f) {
    porthole::config::server_config cfg;
    if (!f.config_file.empty())
        if (auto ok = porthole::config::load_server_file(f.config_file, cfg); !ok)
            return tl::unexpected(ok.error());
    cfg.config_file = f.config_file;
    if (cmd.count("--domain")) {
        if (!porthole::http::valid_domain(f.domain))
            fail(fmt::format("--domain: '{}' is not a valid DNS name", f.domain));
        cfg.domain = f.domain;
    }
    if (cmd.count("--http-addr")) cfg.http_addr = endpoint_flag("--http-addr", f.http_addr);
    if (cmd.count("--control-addr"))
        cfg.control_addr = endpoint_flag("--control-addr", f.control_addr);
    if (cmd.count("--tcp-ports")) {
        auto r = porthole::config::parse_port_range(f.tcp_ports);
        if (!r) fail("--tcp-ports: " + r.error());
        cfg.tcp_ports = *r;
    }
    for (const auto& t : f.tokens) {
        auto key = porthole::protocol::parse_token_entry(t);
        if (!key) fail("--token: " + key.error());
        cfg.tokens.push_back(*key);
        cfg.token_origins.push_back({"--token", {}, false});
    }
    if (!f.tokens_file.empty())
        if (auto ok = porthole::config::load_tokens_file(f.tokens_file, cfg); !ok)
            return tl::unexpected(ok.error());
    if (cmd.count("--lease-grace")) cfg.lease_grace = std::chrono::seconds(f.lease_grace);
    if (cmd.count("--threads")) cfg.threads = static_cast<std::uint32_t>(f.threads);
    if (cmd.count("--shutdown-timeout"))
        cfg.shutdown_timeout = std::chrono::seconds(f.shutdown_timeout);
    if (cmd.count("--header-timeout")) cfg.header_timeout = std::chrono::seconds(f.header_timeout);
    if (cmd.count("--idle-timeout")) cfg.idle_timeout = std::chrono::seconds(f.idle_timeout);
    cfg.json = f.json;
    if (cmd.count("--https-addr")) cfg.https_addr = endpoint_flag("--https-addr", f.https_addr);
    if (cmd.count("--tls-cert")) {
        cfg.tls_certs = f.tls_certs;
        cfg.tls_keys = f.tls_keys;
    }
    if (cmd.count("--tls-self-signed")) cfg.tls_self_signed_dir = f.tls_self_signed;
    if (cmd.count("--acme-email") || cmd.count("--acme-ca") || cmd.count("--acme-ca-root") ||
        cmd.count("--state-dir")) {
        if (!cfg.acme) cfg.acme.emplace();
        if (cmd.count("--acme-email")) cfg.acme->email = f.acme_email;
        if (cmd.count("--acme-ca")) {
            auto url = porthole::config::acme_directory(f.acme_ca);
            if (!url) return tl::unexpected("--acme-ca: " + url.error());
            cfg.acme->ca = *url;
        }
        if (cmd.count("--acme-ca-root")) cfg.acme->ca_root = f.acme_ca_root;
        if (cmd.count("--state-dir")) cfg.acme->state_dir = f.state_dir;
    }
    if (f.redirect_https) cfg.redirect_https = true;
    if (cmd.count("--control-tls")) cfg.control_tls = f.control_tls;
    if (cmd.count("--control-cert")) cfg.control_cert = f.control_cert;
    if (cmd.count("--control-key")) cfg.control_key = f.control_key;
    if (cmd.count("--admin-socket")) cfg.admin_socket = f.admin_socket;
    if (!cfg.admin_socket) {
        cfg.admin_socket = porthole::config::default_admin_socket();
        // $XDG_RUNTIME_DIR/porthole is the relay's to make (systemd makes RuntimeDirectory=).
        if (!cfg.admin_socket->empty())
            ::mkdir(std::filesystem::path(*cfg.admin_socket).parent_path().c_str(), 0700);
    }
    if (cmd.count("--admin-addr")) {
        cfg.admin_addr = endpoint_flag("--admin-addr", f.admin_addr);
        cfg.admin_addr_at = "--admin-addr";
    }
    if (cmd.count("--admin-token-file")) {
        auto token =
            porthole::config::read_admin_token_file(f.admin_token_file, "--admin-token-file");
        if (!token) return tl::unexpected(token.error());
        cfg.admin_token = std::move(*token);
    }
    if (cmd.count("--metrics-addr"))
        cfg.metrics_addr = endpoint_flag("--metrics-addr", f.metrics_addr);
    if (cmd.count("--access-log")) {
        auto log = cfg.access_log.value_or(porthole::observe::access_log_settings{});
        log.path = f.access_log;
        cfg.access_log = std::move(log);
    }
    if (cmd.count("--access-log-format")) {
        if (!cfg.access_log)
            fail("--access-log-format needs --access-log PATH (or access_log in the config file)");
        cfg.access_log->format = f.access_log_format == "combined"
                                     ? porthole::observe::log_format::combined
                                     : porthole::observe::log_format::json;
    }
    if (auto ok = porthole::config::validate(cfg); !ok) return tl::unexpected(ok.error());
    return cfg;
}

// `porthole proxy`: one site for every host, one route, the members given; no control port.
porthole::config::server_config build_proxy_config(const CLI::App& cmd, const proxy_flags& f) {
    porthole::config::server_config cfg;
    cfg.control_enabled = false;
    cfg.json = f.json;
    if (f.threads > 0) cfg.threads = static_cast<std::uint32_t>(f.threads);
    cfg.http_addr = endpoint_flag("--listen", f.listen);
    porthole::config::route_config route;
    auto& up = route.upstream;
    for (const auto& u : f.upstream) {
        auto m = porthole::config::parse_member(u);
        if (!m) fail(fmt::format("upstream {}", m.error()));  // the error names the URL
        if (m->kind == porthole::config::upstream_member::scheme::tunnel ||
            m->kind == porthole::config::upstream_member::scheme::tcp)
            fail(fmt::format("upstream '{}': porthole proxy forwards HTTP to http://, https:// "
                             "and unix: members (tunnels need porthole server)",
                             u));
        up.members.push_back(*m);
    }
    auto policy = porthole::config::parse_lb_policy(f.lb_policy);
    if (!policy)
        fail(fmt::format("--lb-policy: '{}' is not one of round_robin, least_conn, random_two, "
                         "ip_hash, cookie",
                         f.lb_policy));
    up.policy = *policy;
    if (cmd.count("--health-path")) {
        if (!f.health_path.starts_with('/'))
            fail(fmt::format("--health-path: '{}' must start with '/'", f.health_path));
        up.health.path = f.health_path;
    }
    up.health.interval = std::chrono::seconds(f.health_interval);
    up.health.timeout = std::min(up.health.timeout, up.health.interval / 2);
    if (cmd.count("--cookie-name")) up.cookie_name = f.cookie_name;
    if (cmd.count("--ca-file")) up.ca_file = f.ca_file;
    if (f.upstream_timeout > 0) up.upstream_timeout = std::chrono::seconds(f.upstream_timeout);
    cfg.sites.sites.push_back(porthole::config::site_config{{"*"}, {std::move(route)}, 0, {}});
    return cfg;
}

porthole::client::agent_config build_client_config(const CLI::App& cmd,
                                                   porthole::protocol::tunnel_kind kind,
                                                   const client_flags& f) {
    porthole::client::agent_config cfg;
    set_servers(cfg, "--server", f.server);
    cfg.token = client_token(cmd, f.token, f.token_file, nullptr, cfg.server);
    apply_output(cmd, f.output, {}, cfg);
    apply_transport(f.transport, cfg);
    auto target = porthole::config::parse_target(f.target);
    if (!target) fail(fmt::format("TARGET '{}': {}", f.target, target.error()));
    porthole::client::tunnel_spec t;
    t.kind = kind;
    t.target = *target;
    if (!f.subdomain.empty()) {
        auto name = porthole::http::subdomain_from_user(f.subdomain);
        if (!name) fail("--subdomain: " + name.error());
        t.subdomain = std::move(*name);
    }
    if (!f.domain.empty()) {
        if (!f.subdomain.empty()) fail("--domain and --subdomain: a tunnel has one name; pick one");
        auto domain = porthole::http::custom_domain_from_user(f.domain);
        if (!domain) fail("--domain: " + domain.error());
        t.subdomain = std::move(*domain);  // a name with a dot is a custom domain to the relay
    }
    t.group = f.group;
    if (!t.group.empty() && t.subdomain.empty())
        fail("--group: a tunnel group shares a name; give it with --subdomain NAME");
    if (auto problem = porthole::config::group_without_token(t, cfg.server, !cfg.token.empty()))
        fail(*problem);
    t.host_header = f.host_header;
    t.remote_port = static_cast<std::uint16_t>(f.remote_port);
    for (const auto& r : f.routes) {
        auto route = porthole::config::parse_route(r);
        if (!route) fail("--route: " + route.error());
        t.routes.push_back(*route);
    }
    auto policies = porthole::config::policies_from_flags(f.policies, t.group);
    if (!policies) fail(policies.error());
    t.policies = std::move(*policies);
    cfg.tunnels.push_back(t);
    return cfg;
}

struct start_flags {
    std::vector<std::string> names;
    std::string config_file, server, token, token_file;
    bool all = false;
    transport_flags transport;
    output_flags output;
};

porthole::config::client_file load_client_file_or_fail(const std::string& given) {
    const std::string path = given.empty() ? porthole::config::default_client_file() : given;
    auto file = porthole::config::load_client_file(path);
    if (!file) fail(file.error());
    return *file;
}

// Precedence: flags, then environment, then the file, then defaults.
porthole::config::agent_config build_start_config(const CLI::App& cmd, const start_flags& f) {
    auto file = load_client_file_or_fail(f.config_file);
    porthole::config::agent_config cfg;
    apply_output(cmd, f.output, file.inspect, cfg);
    apply_transport(f.transport, cfg);
    const char* env_server = std::getenv("PORTHOLE_SERVER");
    if (cmd.count("--server")) {
        set_servers(cfg, "--server", f.server);
    } else if (env_server && *env_server) {
        set_servers(cfg, "PORTHOLE_SERVER", env_server);
    } else if (file.server) {
        cfg.server = file.server->front();
        cfg.servers = *file.server;
    }
    cfg.token = client_token(cmd, f.token, f.token_file, &file, cfg.server);

    std::string defined;
    for (const auto& t : file.tunnels) defined += (defined.empty() ? "" : ", ") + t.name;
    if (file.tunnels.empty()) fail("the config file defines no [tunnels.NAME] tables");
    if (f.all) {
        cfg.tunnels = file.tunnels;
    } else if (f.names.empty()) {
        fail(fmt::format("name the tunnels to start, or pass --all (defined: {})", defined));
    } else {
        for (const auto& name : f.names) {
            auto it = std::find_if(file.tunnels.begin(), file.tunnels.end(),
                                   [&](const auto& t) { return t.name == name; });
            if (it == file.tunnels.end())
                fail(fmt::format("no tunnel named '{}' in the config file (defined: {})", name,
                                 defined));
            cfg.tunnels.push_back(*it);
        }
    }
    for (const auto& t : cfg.tunnels)
        if (auto problem = porthole::config::group_without_token(t, cfg.server, !cfg.token.empty()))
            fail(*problem);
    return cfg;
}

void add_client_flags(CLI::App& cmd, client_flags& f, porthole::protocol::tunnel_kind kind) {
    using porthole::protocol::tunnel_kind;
    cmd.add_option("TARGET", f.target,
                   kind == tunnel_kind::http ? "local service: PORT, HOST:PORT or http://HOST:PORT"
                                             : "local service: PORT or HOST:PORT")
        ->required();
    cmd.add_option("--server", f.server,
                   "relay control address HOST:PORT; a cluster's relays as a list, tried in turn")
        ->envname("PORTHOLE_SERVER")
        ->capture_default_str();
    cmd.add_option("--token", f.token, std::string(token_help));
    cmd.add_option("--token-file", f.token_file, std::string(token_file_help))->type_name("FILE");
    add_output_flags(cmd, f.output);
    add_transport_flags(cmd, f.transport);
    if (kind != tunnel_kind::tcp) {
        cmd.add_option("--subdomain", f.subdomain, "ask for NAME.DOMAIN (default: a random name)");
        cmd.add_option("--domain", f.domain,
                       "serve a domain of your own (its DNS points at the relay), if the relay "
                       "lets your token use it (custom_domains); HTTPS by ACME on the relay")
            ->type_name("HOST");
        cmd.add_option("--group", f.group,
                       "join the tunnel group KEY: clients with the same token, --subdomain and "
                       "KEY share the name and the relay balances visitors over them")
            ->type_name("KEY");
    }
    if (kind == tunnel_kind::http)
        cmd.add_option("--route", f.routes,
                       "PATH=TARGET: send requests under PATH to another local service, e.g. "
                       "/api=8000; repeatable, first match wins, TARGET takes the rest");
    if (kind == tunnel_kind::http) {
        // The owner's policies: the relay enforces them before a visitor's request is sent on.
        cmd.add_option("--basic-auth", f.policies.basic_auth,
                       "USER:PASSWORD: visitors must log in (HTTP Basic); repeatable. The password "
                       "is hashed (bcrypt) here; only the hash reaches the relay")
            ->type_name("USER:PASSWORD");
        cmd.add_option("--allow-ip", f.policies.allow_ip,
                       "only visitors from this network (10.0.0.0/8, 2001:db8::/32); repeatable")
            ->type_name("CIDR");
        cmd.add_option("--deny-ip", f.policies.deny_ip,
                       "refuse visitors from this network; repeatable")
            ->type_name("CIDR");
        cmd.add_option("--rate-limit", f.policies.rate_limit,
                       "requests per visitor address: N/s, N/min or N/h (over it: 429)")
            ->type_name("N/PERIOD");
        cmd.add_flag("--https-only", f.policies.https_only,
                     "send plain-HTTP visitors to https:// (the relay needs an HTTPS listener)");
        cmd.add_option("--verify-webhook", f.policies.verify_webhook,
                       "PROVIDER:SECRET: only requests signed by github, stripe, slack, shopify "
                       "or twilio with this secret reach the service (else 401)")
            ->type_name("PROVIDER:SECRET");
        cmd.add_flag("--compress", f.policies.compress,
                     "the relay compresses text responses (zstd, br or gzip, as the visitor's "
                     "Accept-Encoding allows)");
        cmd.add_flag("--cache", f.policies.cache,
                     "the relay caches responses as their Cache-Control allows, and serves them "
                     "while this client is away (the relay needs [tunnel_policy] cache)");
    }
    if (kind == tunnel_kind::http)
        cmd.add_option("--host-header", f.host_header,
                       "Host header sent to the local service: preserve, rewrite (to TARGET's "
                       "host:port) or a literal value")
            ->capture_default_str();
    if (kind == tunnel_kind::tcp)
        cmd.add_option("--remote-port", f.remote_port,
                       "ask for this public port (default: one from the relay's range)")
            ->check(CLI::Range(1, 65535));
}

int write_man_pages(const CLI::App& app, const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        std::cerr << "porthole: error: " << dir << ": " << ec.message() << "\n";
        return 1;
    }
    for (const auto& page : porthole::cli::man_pages(app, PORTHOLE_VERSION)) {
        const auto path = std::filesystem::path(dir) / page.file_name;
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << page.text;
        out.close();
        if (!out) {
            std::cerr << "porthole: error: cannot write " << path.string() << "\n";
            return 1;
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // A peer that goes away mid-transfer must cost only its connection: splice() into a closed
    // socket raises SIGPIPE (socket writes pass MSG_NOSIGNAL, splice has no such flag).
    std::signal(SIGPIPE, SIG_IGN);
    CLI::App app{"porthole: expose a local service through a relay you host yourself.\n\n"
                 "  porthole server            run a relay (dev default: loopback, *.localhost)\n"
                 "  porthole http 3000         publish http://127.0.0.1:3000 at NAME.DOMAIN\n"
                 "  porthole tcp 5432          publish a raw TCP port at DOMAIN:PORT\n\n"
                 "Tokens: clients take --token-file FILE or PORTHOLE_TOKEN, relays --tokens-file "
                 "FILE;\na --token on the command line is visible to every local user.\n",
                 "porthole"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("porthole ") + PORTHOLE_VERSION,
                         "print the version and exit");
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
        ->capture_default_str();

    auto* version = app.add_subcommand("version", "print the version");
    std::vector<std::string> help_words;
    auto* help = app.add_subcommand(
        "help", "show this help, a command's help or a reference page: porthole help [TOPIC]");
    help->add_option("TOPIC", help_words,
                     "a command, or a topic: " + porthole::cli::help_topic_names());

    server_flags sf;
    auto* server = app.add_subcommand("server", "run a relay");
    server->add_option("--config", sf.config_file, "TOML file with the settings below")
        ->check(CLI::ExistingFile);
    server->add_option("--domain", sf.domain,
                       "domain whose subdomains name HTTP tunnels (default localhost)");
    server->add_option("--http-addr", sf.http_addr,
                       "public HTTP listener HOST:PORT (default 127.0.0.1:8080)");
    server->add_option("--control-addr", sf.control_addr,
                       "listener for clients HOST:PORT (default 127.0.0.1:7835)");
    server->add_option("--tcp-ports", sf.tcp_ports,
                       "LOW-HIGH range for TCP tunnels (default 20000-20999)");
    server->add_option("--token", sf.tokens,
                       "accepted client token; repeatable; sha256:HEX for a stored digest; every "
                       "local user can read it in the process list: prefer --tokens-file");
    server->add_option("--tokens-file", sf.tokens_file,
                       "file with one accepted token per line")
        ->check(CLI::ExistingFile);
    server->add_option("--lease-grace", sf.lease_grace,
                       "seconds a dropped client keeps its names and ports (default 60)")
        ->check(CLI::Range(1, 86400));
    server->add_option("--threads", sf.threads,
                       "event loops, one thread each (default: the cores it may use; the first "
                       "serves everything, the others site routes and tunnels that keep no state)")
        ->check(CLI::Range(1, 64));
    server->add_option("--shutdown-timeout", sf.shutdown_timeout,
                       "seconds to let open requests finish on SIGINT/SIGTERM (default 10)")
        ->check(CLI::Range(0, 3600));
    server->add_flag("--json", sf.json, "print the listening event as JSON");
    server->add_option("--header-timeout", sf.header_timeout,
                       "seconds a visitor has to send a complete request head, TLS handshake "
                       "included (default 30; slowloris defence)")
        ->check(CLI::Range(1, 3600));
    server->add_option("--idle-timeout", sf.idle_timeout,
                       "seconds an HTTP connection may sit idle between requests or reads "
                       "(default 300; upgraded connections such as WebSockets have none)")
        ->check(CLI::Range(1, 86400));
    server->add_option("--https-addr", sf.https_addr,
                       "public HTTPS listener HOST:PORT (needs --tls-cert/--tls-key, "
                       "--tls-self-signed or --acme-email)");
    server->add_option("--tls-cert", sf.tls_certs,
                       "PEM certificate chain for visitors (e.g. for *.DOMAIN); repeatable, chosen "
                       "by SNI, the first is the default");
    server->add_option("--tls-key", sf.tls_keys, "PEM private key of each --tls-cert, in order");
    server->add_option("--tls-self-signed", sf.tls_self_signed,
                       "keep a local CA in DIR and serve a certificate for DOMAIN and *.DOMAIN "
                       "signed by it (for development; prints how to trust it)");
    server->add_option("--acme-email", sf.acme_email,
                       "get certificates for DOMAIN, its tunnels and sites from an ACME CA (Let's "
                       "Encrypt by default), on demand; the account's contact address");
    server->add_option("--acme-ca", sf.acme_ca,
                       "the ACME CA: letsencrypt (default), letsencrypt-staging or a directory URL");
    server->add_option("--acme-ca-root", sf.acme_ca_root,
                       "an extra trusted root (PEM) for the ACME CA's own HTTPS (a private CA)")
        ->check(CLI::ExistingFile);
    server->add_option("--state-dir", sf.state_dir,
                       "where the ACME account and certificates are kept (default "
                       "$STATE_DIRECTORY or ~/.local/state/porthole)");
    server->add_flag("--redirect-https", sf.redirect_https,
                     "answer plain HTTP with a 308 redirect to https://");
    server->add_option("--control-tls", sf.control_tls,
                       "TLS for clients: auto (on unless the control address is loopback), on, off")
        ->check(CLI::IsMember({"auto", "on", "off"}));
    server->add_option("--control-cert", sf.control_cert,
                       "PEM certificate chain for the control port (default: self-signed at start, "
                       "clients pin its fingerprint)")
        ->check(CLI::ExistingFile);
    server->add_option("--control-key", sf.control_key, "PEM private key for --control-cert")
        ->check(CLI::ExistingFile);
    server->add_option("--access-log", sf.access_log,
                       "write one line per request to FILE, or '-' for standard output "
                       "(reopened on SIGUSR1)");
    server->add_option("--access-log-format", sf.access_log_format,
                       "json (default) or combined (Apache's, with porthole's fields after it)")
        ->check(CLI::IsMember({"json", "combined"}));
    server->add_option("--metrics-addr", sf.metrics_addr,
                       "serve Prometheus metrics at http://HOST:PORT/metrics");
    server->add_option("--admin-socket", sf.admin_socket,
                       "the admin API's unix socket, mode 0660 (default "
                       "$RUNTIME_DIRECTORY/admin.sock or $XDG_RUNTIME_DIR/porthole/admin.sock; "
                       "\"\" for none)");
    server->add_option("--admin-addr", sf.admin_addr,
                       "a TCP listener HOST:PORT for the admin API; needs --admin-token-file");
    server->add_option("--admin-token-file", sf.admin_token_file,
                       "file holding the bearer token of --admin-addr (32 characters or more)")
        ->check(CLI::ExistingFile);

    proxy_flags pf;
    auto* proxy = app.add_subcommand(
        "proxy", "run a reverse proxy in front of backends: porthole proxy URL... (no tunnels)");
    proxy->add_option("UPSTREAM", pf.upstream,
                      "backends: http://HOST:PORT, https://HOST:PORT or unix:/PATH; one or more")
        ->required();
    proxy->add_option("--listen", pf.listen, "HOST:PORT to serve HTTP on")->capture_default_str();
    proxy->add_option("--threads", pf.threads,
                      "event loops, one thread each, all serving (default: the cores it may use)")
        ->check(CLI::Range(1, 64));
    proxy->add_option("--lb-policy", pf.lb_policy,
                      "round_robin, least_conn, random_two, ip_hash or cookie")
        ->capture_default_str();
    proxy->add_option("--health-path", pf.health_path,
                      "check each backend with GET PATH; one that fails 3 checks gets no "
                      "requests until it passes 2");
    proxy->add_option("--health-interval", pf.health_interval, "seconds between health checks")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    proxy->add_option("--cookie-name", pf.cookie_name,
                      "the cookie of --lb-policy cookie (default porthole_upstream)");
    proxy->add_option("--ca-file", pf.ca_file,
                      "PEM CA that https:// backends are verified against (default: the system "
                      "store)")
        ->check(CLI::ExistingFile);
    proxy->add_option("--upstream-timeout", pf.upstream_timeout,
                      "seconds a backend has to start its response before the visitor gets 504 "
                      "(default: none)")
        ->check(CLI::Range(0, 86400));
    proxy->add_flag("--json", pf.json, "print the listening event as JSON");

    client_flags hf, tf;
    auto* http = app.add_subcommand("http", "publish a local HTTP service at NAME.DOMAIN");
    add_client_flags(*http, hf, porthole::protocol::tunnel_kind::http);
    auto* tcp = app.add_subcommand("tcp", "publish a local TCP service at DOMAIN:PORT");
    add_client_flags(*tcp, tf, porthole::protocol::tunnel_kind::tcp);
    client_flags lf;
    auto* tls = app.add_subcommand(
        "tls", "publish a local TLS service at NAME.DOMAIN on the relay's HTTPS port, routed by SNI "
               "without decrypting (the service keeps its own certificate)");
    add_client_flags(*tls, lf, porthole::protocol::tunnel_kind::tls);

    start_flags sf_start;
    auto* start = app.add_subcommand(
        "start", "open the tunnels of a config file ([tunnels.NAME] tables) in one client");
    start->add_option("NAME", sf_start.names, "tunnels to open");
    start->add_flag("--all", sf_start.all, "open every tunnel in the file");
    start->add_option("--config", sf_start.config_file,
                      "client config file (default ~/.config/porthole/porthole.toml)");
    start->add_option("--server", sf_start.server,
                      "relay control address HOST:PORT (env PORTHOLE_SERVER)");
    start->add_option("--token", sf_start.token, std::string(token_help));
    start->add_option("--token-file", sf_start.token_file, std::string(token_file_help))
        ->type_name("FILE");
    add_output_flags(*start, sf_start.output);
    add_transport_flags(*start, sf_start.transport);

    std::string check_file;
    auto* config_cmd = app.add_subcommand("config", "work with the client config file");
    config_cmd->require_subcommand(1);
    auto* check = config_cmd->add_subcommand("check", "validate the config file without connecting");
    check->add_option("--config", check_file,
                      "client config file (default ~/.config/porthole/porthole.toml)");
    std::string names_file;
    auto* names = config_cmd->add_subcommand("names", "print the tunnel names, one per line")
                      ->group("");  // hidden: for shell completion
    names->add_option("--config", names_file, "client config file");

    std::string verifier_token_file;
    auto* token_cmd = app.add_subcommand("token", "work with tokens");
    token_cmd->require_subcommand(1);
    auto* verifier_cmd = token_cmd->add_subcommand(
        "verifier",
        "print the verifier:HEX a relay's tokens file may hold instead of a token (reading it "
        "does not let anyone log in); the token comes from --token-file or standard input");
    verifier_cmd->add_option("--token-file", verifier_token_file, "file holding the token")
        ->type_name("FILE");

    porthole::cli::admin_flags admin_f;
    auto* admin_cmd = porthole::cli::add_admin_command(app, admin_f);

    std::string completion_shell;
    auto* completion = app.add_subcommand(
        "completion", "print a shell completion script: source <(porthole completion bash)");
    completion->add_option("SHELL", completion_shell, "bash or zsh")
        ->required()
        ->check(CLI::IsMember(porthole::cli::completion_shells));

    std::string manpage_dir;
    auto* manpage = app.add_subcommand(
        "manpage", "write the man pages porthole.1 and porthole-COMMAND.1 (roff) into DIR");
    manpage->add_option("DIR", manpage_dir, "directory to write them to (made if missing)")
        ->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::cerr << "porthole: error: " << e.what() << " (see porthole "
                  << (app.get_subcommands().empty() ? std::string("help")
                                                    : app.get_subcommands().front()->get_name() +
                                                          " --help")
                  << ")\n";
        return 2;
    }

    if (*version) {
        std::cout << "porthole " << PORTHOLE_VERSION << "\n";
        return 0;
    }
    if (*check) {
        auto file = load_client_file_or_fail(check_file);
        std::cout << fmt::format("ok: {} tunnel(s)", file.tunnels.size());
        for (const auto& t : file.tunnels) {
            std::cout << fmt::format("\n  {:<12} {} -> {}", t.name, porthole::protocol::name_of(t.kind),
                                     t.target.to_string());
            for (const auto& r : t.routes)
                std::cout << fmt::format("\n  {:<12}   {} -> {}", "", r.path, r.target.to_string());
        }
        std::cout << "\n";
        return 0;
    }
    if (*names) {
        for (const auto& t : load_client_file_or_fail(names_file).tunnels)
            std::cout << t.name << "\n";
        return 0;
    }
    if (*verifier_cmd) {
        std::string token;
        if (!verifier_token_file.empty()) {
            auto read = porthole::config::read_token_file(verifier_token_file);
            if (!read) {
                std::cerr << "porthole: error: " << read.error() << "\n";
                return 1;
            }
            token = read->token;
        } else {
            const std::string input(std::istreambuf_iterator<char>(std::cin), {});
            auto found = porthole::config::token_in_text(input, "standard input");
            if (!found) {
                std::cerr << "porthole: error: " << found.error() << "\n";
                return 1;
            }
            token = *found;
        }
        const auto v = porthole::protocol::verifier_of(porthole::protocol::key_of_token(token));
        std::cout << "verifier:" << porthole::protocol::to_hex(v) << "\n";
        return 0;
    }
    if (*help) return porthole::cli::run_help(app, help_words, std::cout, std::cerr);
    if (*admin_cmd) return porthole::cli::run_admin(*admin_cmd, admin_f);
    if (*completion) {
        std::cout << porthole::cli::completion_script(app, completion_shell);
        return 0;
    }
    if (*manpage) return write_man_pages(app, manpage_dir);
    try {
        porthole::core::init_logging(log_level);
        if (*server) {
            // Set when `porthole admin upgrade` started this process to replace a running relay,
            // which then hears of a config error too.
            const auto takeover = porthole::relay::handoff::takeover_channel();
            auto cfg = build_server_config(*server, sf);
            if (!cfg && takeover)
                (void)porthole::core::send_message(
                    *takeover, porthole::relay::handoff::failed_message(cfg.error()));
            if (!cfg) fail(cfg.error());
            if (server->count("--token"))
                if (auto w = porthole::config::command_line_token_warning(
                        cfg->control_addr, "--tokens-file FILE (or tokens_file in --config)");
                    !w.empty())
                    warn(w);
            return porthole::relay::run(
                std::move(*cfg), [server, &sf] { return build_server_config(*server, sf); },
                {std::vector<std::string>(argv, argv + argc), takeover});
        }
        if (*proxy) return porthole::relay::run(build_proxy_config(*proxy, pf), nullptr);
        if (*http)
            return porthole::client::run(
                build_client_config(*http, porthole::protocol::tunnel_kind::http, hf));
        if (*tcp)
            return porthole::client::run(
                build_client_config(*tcp, porthole::protocol::tunnel_kind::tcp, tf));
        if (*tls)
            return porthole::client::run(
                build_client_config(*tls, porthole::protocol::tunnel_kind::tls, lf));
        if (*start) return porthole::client::run(build_start_config(*start, sf_start));
    } catch (const std::exception& e) {
        std::cerr << "porthole: error: " << e.what() << "\n";
        return 1;
    }
    return 2;
}

#include "admin_command.hpp"

#include "admin/admin_client.hpp"
#include "admin/tables.hpp"
#include "config/client_config.hpp"
#include "config/endpoint.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <unistd.h>

namespace porthole::cli {
namespace {

using json = nlohmann::json;
constexpr int exit_refused = 1;
constexpr int exit_no_relay = 2;

struct target_or_exit {
    admin::admin_target target;
    int exit = 0;  // not 0: stop with it
};

// A usage problem: said on stderr, and the command stops as when no relay answered.
target_or_exit unusable(std::string_view message) {
    std::cerr << "porthole: error: " << message << "\n";
    target_or_exit out;
    out.exit = exit_no_relay;
    return out;
}

target_or_exit target_of(const admin_flags& f) {
    target_or_exit out;
    if (!f.socket.empty() && !f.addr.empty()) return unusable("give --socket or --addr, not both");
    if (!f.addr.empty()) {
        auto ep = config::parse_endpoint(f.addr);
        if (!ep) return unusable("--addr: " + ep.error());
        out.target.host = ep->host;
        out.target.port = ep->port;
        if (!f.token_file.empty()) {
            auto read = config::read_token_file(f.token_file);
            if (!read) return unusable(read.error());
            out.target.token = read->token;
        } else if (const char* env = std::getenv("PORTHOLE_ADMIN_TOKEN"); env && *env) {
            out.target.token = env;
        } else {
            return unusable("--addr needs the admin token: --token-file FILE or "
                            "PORTHOLE_ADMIN_TOKEN");
        }
        return out;
    }
    if (!f.socket.empty()) {
        out.target.socket_path = f.socket;
        return out;
    }
    const auto paths = admin::default_socket_paths();
    for (const auto& p : paths)
        if (::access(p.c_str(), F_OK) == 0) {
            out.target.socket_path = p;
            return out;
        }
    std::string tried;
    for (const auto& p : paths) tried += (tried.empty() ? "" : ", ") + p;
    return unusable(fmt::format("no admin socket found (tried {}): name one with --socket PATH, "
                                "or --addr HOST:PORT",
                                tried));
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Path segments the API reads back: letters, digits, '-', '.', ':' and '_' pass as they are.
std::string path_segment(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == ':' || c == '_')
            out += c;
        else
            out += fmt::format("%{:02X}", u);
    }
    return out;
}

}  // namespace

CLI::App* add_admin_command(CLI::App& app, admin_flags& f) {
    auto* admin = app.add_subcommand(
        "admin", "ask a running relay through its admin API: clients, tunnels, sites, config, "
                 "tokens; kick a client, release a lease, add or revoke tokens, reload, "
                 "upgrade");
    admin->require_subcommand(1);
    admin->add_option("--socket", f.socket,
                      "the relay's admin socket (default: the relay's default path, then "
                      "/run/porthole/admin.sock)");
    admin->add_option("--addr", f.addr, "the relay's TCP admin address HOST:PORT (admin_addr)");
    admin->add_option("--token-file", f.token_file,
                      "file holding the admin token for --addr (or PORTHOLE_ADMIN_TOKEN)")
        ->type_name("FILE");
    admin->add_flag("--json", f.json, "print the API's JSON document unchanged");
    const auto sub = [&](const char* name, const char* what) {
        auto* s = admin->add_subcommand(name, what);
        s->fallthrough();
        return s;
    };
    sub("clients", "the connected clients: id, address, agent, RTT, tunnels");
    sub("tunnels", "the tunnels served and the names and ports leased");
    sub("sites", "the configured sites and each member's health");
    sub("config", "the relay's effective config, secrets redacted");
    sub("cluster", "a relay of a cluster: Redis, the relays alive and their TCP ports, the link");
    auto* tokens = sub("tokens", "the accepted tokens; tokens add, tokens revoke DIGEST");
    tokens->require_subcommand(0, 1);
    auto* add = tokens->add_subcommand(
        "add", "make a token, keep its verifier in the relay's tokens_file, print it once");
    add->fallthrough();
    add->add_option("--label", f.label, "a note kept beside it in the tokens file");
    auto* revoke = tokens->add_subcommand(
        "revoke", "remove a token from the tokens file; its clients are disconnected at once");
    revoke->fallthrough();
    revoke->add_option("DIGEST", f.digest, "12 or more hex digits of its digest")->required();
    auto* cache = sub("cache", "each cache's size and counts; cache purge URL drops stored "
                               "responses");
    cache->require_subcommand(0, 1);
    auto* purge = cache->add_subcommand(
        "purge", "drop the stored responses of URL (https://host/path, or host/path for both "
                 "schemes) from every cache");
    purge->fallthrough();
    purge->add_option("URL", f.url, "the URL, or with --prefix every URL it starts")->required();
    purge->add_flag("--prefix", f.prefix, "drop every URL that starts with URL");
    sub("kick", "disconnect a client; it reconnects and gets its names back")
        ->add_option("ID", f.id, "8 or more hex digits of its id")
        ->required();
    sub("release", "free a leased name or port now")
        ->add_option("NAME", f.name, "NAME or tcp:PORT")
        ->required();
    sub("reload", "read the relay's config and tokens file again and apply them; a refused file "
                  "exits 1 naming FILE:LINE, the running config staying");
    auto* upgrade = sub("upgrade", "replace the running relay with a new program without "
                                   "dropping a visitor: it takes over the listening sockets, "
                                   "clients reconnect to it, the old one drains; on the socket only");
    upgrade->add_option("--binary", f.binary,
                        "the new program (default: the relay's own program file, e.g. "
                        "/usr/bin/porthole after a package upgrade)")
        ->type_name("PATH");
    upgrade->add_option("--wait", f.wait, "seconds to wait for the new relay to serve")
        ->check(CLI::Range(1, 600))
        ->capture_default_str();
    return admin;
}

int run_admin(const CLI::App& admin, const admin_flags& f) {
    auto t = target_of(f);
    if (t.exit != 0) return t.exit;
    const CLI::App* cmd = admin.get_subcommands().front();
    const std::string name = cmd->get_name();
    std::string method = "GET", path = "/api/" + name, body;
    if (name == "tokens" && !cmd->get_subcommands().empty()) {
        if (cmd->get_subcommands().front()->get_name() == "add") {
            method = "POST";
            body = json{{"label", f.label}}.dump();
        } else {
            method = "DELETE";
            path = "/api/tokens/" + path_segment(f.digest);
        }
    } else if (name == "cache" && !cmd->get_subcommands().empty()) {
        method = "DELETE";
        path = fmt::format("/api/cache?{}={}", f.prefix ? "prefix" : "url", path_segment(f.url));
    } else if (name == "kick") {
        method = "DELETE";
        path = "/api/clients/" + path_segment(f.id);
    } else if (name == "release") {
        method = "DELETE";
        path = "/api/leases/" + path_segment(f.name);
    } else if (name == "reload") {
        method = "POST";
        body = "{}";
    } else if (name == "upgrade") {
        method = "POST";
        json req{{"wait", f.wait}};
        if (!f.binary.empty())
            req["binary"] = std::filesystem::absolute(f.binary).lexically_normal().string();
        body = req.dump();
    }
    const auto timeout = std::chrono::seconds(name == "upgrade" ? f.wait + 10 : 30);
    auto answer = admin::call(t.target, method, path, body, timeout);
    if (!answer) {
        std::cerr << "porthole: error: " << answer.error() << "\n";
        return exit_no_relay;
    }
    const json doc = json::parse(answer->body, nullptr, false);
    if (answer->status >= 400) {
        const std::string why = doc.is_object() && doc.contains("error") && doc["error"].is_string()
                                    ? doc["error"].get<std::string>()
                                    : answer->body;
        std::cerr << fmt::format("porthole: error: the relay answered {}: {}\n", answer->status,
                                 why);
        return exit_refused;
    }
    if (f.json || name == "config" || doc.is_discarded()) {
        std::cout << answer->body;
        if (!answer->body.empty() && answer->body.back() != '\n') std::cout << "\n";
        return 0;
    }
    const auto now = unix_now();
    if (method == "GET") {
        if (name == "clients") std::cout << admin::clients_table(doc, now);
        if (name == "tunnels") std::cout << admin::tunnels_table(doc, now);
        if (name == "sites") std::cout << admin::sites_table(doc);
        if (name == "tokens") std::cout << admin::tokens_table(doc);
        if (name == "cache") std::cout << admin::caches_table(doc);
        if (name == "cluster") std::cout << admin::cluster_table(doc);
        return 0;
    }
    if (name == "cache")
        std::cout << fmt::format("purged {} stored response(s)\n", doc.value("purged", 0));
    else
    if (name == "kick")
        std::cout << fmt::format("closed {} ({}); its client reconnects and gets them back\n",
                                 doc.value("closed", "").substr(0, 8),
                                 doc.contains("tunnels") && !doc["tunnels"].empty()
                                     ? doc["tunnels"].dump()
                                     : std::string("no tunnels"));
    else if (name == "release")
        std::cout << fmt::format("released {}\n", doc.value("released", ""));
    else if (name == "reload")
        std::cout << fmt::format("reloaded (generation {}): {}\n", doc.value("generation", 0),
                                 doc.value("changes", ""));
    else if (name == "upgrade")
        std::cout << fmt::format("upgraded: pid {} ({}) serves; the old relay drains and exits\n",
                                 doc.value("pid", 0), doc.value("binary", ""));
    else if (method == "POST")
        std::cout << fmt::format("{}\n(shown once: give it to the client as --token-file or "
                                 "PORTHOLE_TOKEN; digest {}; the tokens file holds its verifier)\n",
                                 doc.value("token", ""), doc.value("digest", ""));
    else
        std::cout << fmt::format("revoked {}; {} session(s) closed\n", doc.value("revoked", ""),
                                 doc.value("sessions_closed", 0));
    return 0;
}

}  // namespace porthole::cli

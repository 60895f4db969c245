#include "acme/dns_publisher.hpp"

#include "config/endpoint.hpp"
#include "core/openssl_owned.hpp"
#include "net/connect.hpp"
#include "net/frame_io.hpp"

#include <fmt/format.h>
// <stdbool.h> first: without it ldns/common.h defines bool, true and false as macros.
#include <stdbool.h>  // NOLINT(modernize-deprecated-headers)
#include <ldns/ldns.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <cerrno>
#include <cstring>

#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace porthole::acme {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using core::owned;

namespace {

constexpr auto update_timeout = 10s;
constexpr auto hook_timeout = 120s;
constexpr std::uint32_t record_ttl = 60;
constexpr std::uint16_t tsig_fudge = 300;

std::string dname(const std::string& name) { return name.ends_with('.') ? name : name + "."; }

std::string status_text(ldns_status s) { return ldns_get_errorstr_by_id(s); }

using rr_list = owned<ldns_rr_list, ldns_rr_list_deep_free>;
using packet = owned<ldns_pkt, ldns_pkt_free>;

// RFC 2136 with TSIG (RFC 8945) over TCP to the zone's primary.
class rfc2136_publisher final : public dns_publisher {
public:
    rfc2136_publisher(config::rfc2136_config cfg, std::vector<tcp::endpoint> server)
        : cfg_(std::move(cfg)), server_(std::move(server)) {}

    asio::awaitable<tl::expected<void, std::string>> add(std::string name,
                                                         std::string value) override {
        co_return co_await update(name, value, true);
    }
    asio::awaitable<tl::expected<void, std::string>> remove(std::string name,
                                                            std::string value) override {
        co_return co_await update(name, value, false);
    }

private:
    asio::awaitable<tl::expected<void, std::string>> update(const std::string& name,
                                                            const std::string& value, bool add) {
        std::uint16_t id = 0;
        RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id);
        auto request = txt_update(cfg_, name, value, add, id);
        if (!request) co_return tl::unexpected(request.error());
        auto done = co_await net::within(exchange(request->wire), update_timeout);
        if (!done) co_return tl::unexpected(fmt::format("{}: no answer in time", cfg_.server));
        if (!*done) co_return tl::unexpected(fmt::format("{}: {}", cfg_.server, done->error()));
        auto checked = check_update_reply(cfg_, **done, *request);
        if (!checked) co_return tl::unexpected(fmt::format("{}: {}", cfg_.server, checked.error()));
        co_return tl::expected<void, std::string>();
    }

    asio::awaitable<tl::expected<std::vector<std::uint8_t>, std::string>> exchange(
        const std::vector<std::uint8_t>& wire) {
        auto socket = co_await net::connect(server_, std::chrono::seconds(5));
        if (!socket) co_return tl::unexpected(socket.error());
        // RFC 1035 section 4.2.2: over TCP, a message goes after its two-byte length.
        std::vector<std::uint8_t> framed(2 + wire.size());
        framed[0] = static_cast<std::uint8_t>(wire.size() >> 8);
        framed[1] = static_cast<std::uint8_t>(wire.size());
        if (!wire.empty()) std::memcpy(framed.data() + 2, wire.data(), wire.size());
        const auto use = asio::as_tuple(asio::use_awaitable);
        auto [wrote, n] = co_await asio::async_write(*socket, asio::buffer(framed), use);
        if (wrote) co_return tl::unexpected(wrote.message());
        std::array<std::uint8_t, 2> length{};
        auto [read_length, m] = co_await asio::async_read(*socket, asio::buffer(length), use);
        if (read_length) co_return tl::unexpected(read_length.message());
        std::vector<std::uint8_t> reply(static_cast<std::size_t>(length[0]) << 8 | length[1]);
        auto [read_reply, k] = co_await asio::async_read(*socket, asio::buffer(reply), use);
        if (read_reply) co_return tl::unexpected(read_reply.message());
        co_return reply;
    }

    config::rfc2136_config cfg_;
    std::vector<tcp::endpoint> server_;
};

// `dns_hook add|remove NAME VALUE`: exit status 0 is success; its output goes to the relay's.
class hook_publisher final : public dns_publisher {
public:
    explicit hook_publisher(std::string command) : command_(std::move(command)) {}

    asio::awaitable<tl::expected<void, std::string>> add(std::string name,
                                                         std::string value) override {
        co_return co_await run("add", name, value);
    }
    asio::awaitable<tl::expected<void, std::string>> remove(std::string name,
                                                            std::string value) override {
        co_return co_await run("remove", name, value);
    }

private:
    asio::awaitable<tl::expected<void, std::string>> run(const char* verb, const std::string& name,
                                                         const std::string& value) {
        std::vector<std::string> args{command_, verb, name, value};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
        pid_t pid = -1;
        const int rc =
            ::posix_spawn(&pid, command_.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0)
            co_return tl::unexpected(
                fmt::format("dns_hook {}: cannot run it: {}", command_, std::strerror(rc)));
        // A pidfd becomes readable when the child exits: waited for on the loop, not blocking it.
        const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
        std::string outcome;
        if (pidfd >= 0) {
            asio::posix::stream_descriptor exit(co_await asio::this_coro::executor, pidfd);
            auto waited =
                co_await net::within(exit.async_wait(asio::posix::stream_descriptor::wait_read,
                                                     asio::as_tuple(asio::use_awaitable)),
                                     hook_timeout);
            if (!waited) {
                ::kill(pid, SIGKILL);
                outcome = fmt::format("did not finish within {} s", hook_timeout.count());
            }
        }
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (outcome.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            outcome = WIFEXITED(status) ? fmt::format("exited with status {}", WEXITSTATUS(status))
                                        : fmt::format("was killed by signal {}", WTERMSIG(status));
        if (!outcome.empty())
            co_return tl::unexpected(
                fmt::format("dns_hook {} {} {}: {}", command_, verb, name, outcome));
        co_return tl::expected<void, std::string>();
    }

    std::string command_;
};

}  // namespace

tl::expected<signed_update, std::string> txt_update(const config::rfc2136_config& server,
                                                    const std::string& name,
                                                    const std::string& value, bool add,
                                                    std::uint16_t id) {
    if (value.size() > 255 || value.find_first_of("\"\\ \r\n") != std::string::npos)
        return tl::unexpected(std::string("a TXT value the relay would not send"));
    ldns_rr* rr = nullptr;
    const std::string text =
        fmt::format("{} {} IN TXT \"{}\"", dname(name), add ? record_ttl : 0, value);
    if (auto s = ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr); s != LDNS_STATUS_OK)
        return tl::unexpected(fmt::format("the record {}: {}", name, status_text(s)));
    // RFC 2136 section 2.5.4: deleting one RR is class NONE with its data and TTL 0.
    if (!add) ldns_rr_set_class(rr, LDNS_RR_CLASS_NONE);
    rr_list updates(ldns_rr_list_new());
    ldns_rr_list_push_rr(updates.get(), rr);
    ldns_rdf* zone = ldns_dname_new_frm_str(dname(server.zone).c_str());
    if (!zone) return tl::unexpected(fmt::format("the zone '{}' is not a DNS name", server.zone));
    packet p(ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, nullptr, updates.get(), nullptr));
    if (!p) return tl::unexpected(std::string("cannot build the update"));
    ldns_pkt_set_id(p.get(), id);
    ldns_pkt_set_rd(p.get(), false);
    const std::string algorithm = server.tsig_alg + ".";
    if (auto s =
            ldns_pkt_tsig_sign(p.get(), dname(server.tsig_name).c_str(), server.tsig_secret.c_str(),
                               tsig_fudge, algorithm.c_str(), nullptr);
        s != LDNS_STATUS_OK)
        return tl::unexpected(fmt::format("cannot sign the update with TSIG key {}: {}",
                                          server.tsig_name, status_text(s)));
    std::uint8_t* wire = nullptr;
    std::size_t size = 0;
    if (auto s = ldns_pkt2wire(&wire, p.get(), &size); s != LDNS_STATUS_OK)
        return tl::unexpected(fmt::format("cannot encode the update: {}", status_text(s)));
    signed_update out;
    out.wire.resize(size);
    if (size != 0) std::memcpy(out.wire.data(), wire, size);
    std::free(wire);
    const ldns_rdf* mac = ldns_rr_rdf(ldns_pkt_tsig(p.get()), 3);
    if (!mac) return tl::unexpected(std::string("the signed update has no MAC"));
    out.mac.resize(ldns_rdf_size(mac));
    if (!out.mac.empty()) std::memcpy(out.mac.data(), ldns_rdf_data(mac), out.mac.size());
    return out;
}

tl::expected<void, std::string> check_update_reply(const config::rfc2136_config& server,
                                                   const std::vector<std::uint8_t>& reply,
                                                   const signed_update& request) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, reply.data(), reply.size()) != LDNS_STATUS_OK)
        return tl::unexpected(std::string("a malformed DNS reply"));
    const packet p(raw);
    std::uint16_t request_id = 0;
    if (request.wire.size() >= 2)
        request_id = static_cast<std::uint16_t>(request.wire[0] << 8 | request.wire[1]);
    if (ldns_pkt_id(p.get()) != request_id)
        return tl::unexpected(std::string("a reply to another request"));
    const ldns_pkt_rcode rcode = ldns_pkt_get_rcode(p.get());
    const auto* known = ldns_lookup_by_id(ldns_rcodes, static_cast<int>(rcode));
    // A server that does not accept the key answers NOTAUTH without a MAC (RFC 8945 5.3.2).
    if (rcode == LDNS_RCODE_NOTAUTH)
        return tl::unexpected(fmt::format(
            "the server refused TSIG key {} (NOTAUTH: a wrong name, algorithm or secret, or "
            "clocks more than {} s apart)",
            server.tsig_name, tsig_fudge));
    if (!ldns_pkt_tsig(p.get()))
        return tl::unexpected(
            fmt::format("an unsigned reply ({})", known ? known->name : "an error"));
    const owned<ldns_rdf, ldns_rdf_deep_free> mac(
        ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, request.mac.size(), request.mac.data()));
    if (!ldns_pkt_tsig_verify(p.get(), reply.data(), reply.size(), dname(server.tsig_name).c_str(),
                              server.tsig_secret.c_str(), mac.get()))
        return tl::unexpected(std::string("the reply's TSIG signature does not verify"));
    if (rcode != LDNS_RCODE_NOERROR) {
        return tl::unexpected(fmt::format(
            "the server refused the update: {}{}", known ? known->name : "an error",
            rcode == LDNS_RCODE_REFUSED   ? " (does the key's ACL allow updates of the zone?)"
            : rcode == LDNS_RCODE_NOTZONE ? " (the name is not in the zone)"
                                          : ""));
    }
    return {};
}

tl::expected<std::unique_ptr<dns_publisher>, std::string> make_dns_publisher(
    const config::acme_dns_config& dns) {
    if (!dns.hook.empty()) {
        if (::access(dns.hook.c_str(), X_OK) != 0)
            return tl::unexpected(
                fmt::format("acme dns_hook {}: cannot run it: {}", dns.hook, std::strerror(errno)));
        return std::make_unique<hook_publisher>(dns.hook);
    }
    if (!dns.rfc2136) return tl::unexpected(std::string("acme: DNS-01 has nowhere to publish"));
    std::string server = dns.rfc2136->server;
    if (server.find(':') == std::string::npos ||
        (server.starts_with('[') && server.find("]:") == std::string::npos))
        server += ":53";
    auto at = config::parse_endpoint(server);
    if (!at) return tl::unexpected(fmt::format("acme dns server: {}", at.error()));
    boost::system::error_code ec;
    asio::io_context io;
    tcp::resolver resolver(io);
    auto found = resolver.resolve(at->host, std::to_string(at->port), ec);
    if (ec)
        return tl::unexpected(
            fmt::format("acme dns server {}: cannot resolve it: {}", server, ec.message()));
    std::vector<tcp::endpoint> addresses;
    for (const auto& e : found) addresses.push_back(e.endpoint());
    return std::make_unique<rfc2136_publisher>(*dns.rfc2136, std::move(addresses));
}

}  // namespace porthole::acme

#include "relay/handoff.hpp"

#include "core/fd_channel.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include <fcntl.h>
#include <unistd.h>

namespace porthole::relay::handoff {
namespace {

using nlohmann::json;

tl::expected<json, std::string> parse(std::string_view text) {
    auto doc = json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
        return tl::unexpected(std::string("not a JSON object"));
    return doc;
}

}  // namespace

std::string hex_of(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::optional<std::string> bytes_of_hex(std::string_view hex) {
    const auto value = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    if (hex.size() % 2 != 0) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = value(hex[i]), lo = value(hex[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
    }
    return out;
}

std::optional<int> takeover_channel() {
    const char* text = std::getenv("PORTHOLE_TAKEOVER_FD");
    if (!text) return std::nullopt;
    int fd = -1;
    const std::string_view v(text);
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), fd);
    ::unsetenv("PORTHOLE_TAKEOVER_FD");
    if (ec != std::errc() || end != v.data() + v.size() || fd < 3 || ::fcntl(fd, F_GETFD) < 0)
        return std::nullopt;
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

std::string control_message() { return json{{"control", true}}.dump(); }

std::string hello_message() { return json{{"hello", ::getpid()}}.dump(); }
std::string ready_message() { return json{{"ready", true}}.dump(); }
std::string failed_message(std::string_view error) {
    return json{{"error", std::string(error)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

tl::expected<child_message, std::string> parse_child_message(std::string_view text) {
    auto doc = parse(text);
    if (!doc) return tl::unexpected(doc.error());
    if (doc->contains("hello")) return child_message{child_message::kind::hello, {}};
    if (doc->contains("ready")) return child_message{child_message::kind::ready, {}};
    if (auto e = doc->find("error"); e != doc->end() && e->is_string())
        return child_message{child_message::kind::failed, e->get<std::string>()};
    return tl::unexpected(std::string("neither hello, ready nor error"));
}

tl::expected<void, std::string> send_state(int socket, const state& s) {
    // Sockets first, in as many messages as they need; the last message has the rest.
    std::size_t next = 0;
    do {
        const std::size_t end = std::min(s.listeners.size(), next + core::max_fds_per_message);
        json listeners = json::array();
        std::vector<int> fds;
        for (std::size_t i = next; i < end; ++i) {
            const auto& l = s.listeners[i];
            listeners.push_back({{"fd", fds.size()}, {"role", l.role}, {"where", l.where}});
            fds.push_back(l.fd);
        }
        json doc{{"listeners", std::move(listeners)}, {"more", end < s.listeners.size()}};
        if (end == s.listeners.size()) {
            json leases = json::array();
            for (const auto& l : s.leases)
                leases.push_back({{"kind", l.port ? "port" : "name"},
                                  {"key", l.key},
                                  {"holder", l.holder},
                                  {"remaining_ms", l.remaining.count()}});
            doc["leases"] = std::move(leases);
            if (!s.control_cert_pem.empty())
                doc["control_tls"] = {{"cert_pem", s.control_cert_pem},
                                      {"key_pem", s.control_key_pem}};
        }
        auto sent = core::send_message(socket, doc.dump(), fds);
        if (!sent) return sent;
        next = end;
    } while (next < s.listeners.size());
    return {};
}

tl::expected<state, std::string> receive_state(int socket, std::chrono::milliseconds timeout) {
    state out;
    inherited owned;  // closes what arrived if a later message is bad
    std::vector<listener> received;
    const auto fail = [&](std::string why) {
        owned = inherited(std::move(received));
        return tl::unexpected(std::move(why));
    };
    for (;;) {
        auto msg = core::receive_message(socket, timeout);
        if (!msg) return fail("no sockets from the running relay: " + msg.error());
        for (int fd : msg->fds) received.push_back({"", "", fd});
        const std::size_t base = received.size() - msg->fds.size();
        auto doc = parse(msg->text);
        if (!doc) return fail("a bad message from the running relay: " + doc.error());
        try {
            for (const auto& l : doc->at("listeners")) {
                const auto index = l.at("fd").get<std::size_t>();
                if (index >= msg->fds.size())
                    return fail("a listener names a socket the message does not carry");
                auto& r = received[base + index];
                r.role = l.at("role").get<std::string>();
                r.where = l.at("where").get<std::string>();
            }
            if (doc->value("more", false)) continue;
            for (const auto& l : doc->value("leases", json::array()))
                out.leases.push_back({l.at("kind").get<std::string>() == "port",
                                      l.at("key").get<std::string>(),
                                      l.at("holder").get<std::string>(),
                                      std::chrono::milliseconds(l.at("remaining_ms").get<long>())});
            if (auto tls = doc->find("control_tls"); tls != doc->end()) {
                out.control_cert_pem = tls->at("cert_pem").get<std::string>();
                out.control_key_pem = tls->at("key_pem").get<std::string>();
            }
        } catch (const json::exception& e) {
            return fail(fmt::format("a bad message from the running relay: {}", e.what()));
        }
        break;
    }
    out.listeners = std::move(received);
    return out;
}

inherited::~inherited() {
    for (auto& l : given_) close_one(l);
}

inherited& inherited::operator=(inherited&& other) noexcept {
    if (this != &other) {
        for (auto& l : given_) close_one(l);
        given_ = std::move(other.given_);
    }
    return *this;
}

std::optional<int> inherited::take(std::string_view role, std::string_view where) {
    for (auto& l : given_)
        if (l.fd >= 0 && l.role == role && l.where == where) return std::exchange(l.fd, -1);
    return std::nullopt;
}

std::size_t inherited::size() const {
    return static_cast<std::size_t>(
        std::count_if(given_.begin(), given_.end(), [](const listener& l) { return l.fd >= 0; }));
}

void inherited::close_all_but(std::string_view role) {
    for (auto& l : given_)
        if (l.role != role) close_one(l);
}

void inherited::close_one(listener& l) {
    if (l.fd >= 0) ::close(std::exchange(l.fd, -1));
}

}  // namespace porthole::relay::handoff

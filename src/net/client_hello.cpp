#include "net/client_hello.hpp"

#include <cctype>
#include <optional>
#include <string_view>

namespace porthole::net {
namespace {

// A bounds-checked cursor: every read past the end turns it invalid.
class cursor {
public:
    explicit cursor(std::span<const std::uint8_t> b) : b_(b) {}
    bool ok() const { return ok_; }
    std::size_t left() const { return ok_ ? b_.size() : 0; }
    unsigned u8() { return static_cast<unsigned>(take(1)); }
    unsigned u16() { return static_cast<unsigned>(take(2)); }
    unsigned u24() { return static_cast<unsigned>(take(3)); }
    void skip(std::size_t n) {
        if (!ok_ || b_.size() < n) {
            ok_ = false;
            return;
        }
        b_ = b_.subspan(n);
    }
    std::span<const std::uint8_t> sub(std::size_t n) {
        if (!ok_ || b_.size() < n) {
            ok_ = false;
            return {};
        }
        auto s = b_.first(n);
        b_ = b_.subspan(n);
        return s;
    }

private:
    std::uint32_t take(std::size_t n) {
        if (!ok_ || b_.size() < n) {
            ok_ = false;
            return 0;
        }
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v = (v << 8) | b_[i];
        b_ = b_.subspan(n);
        return v;
    }
    std::span<const std::uint8_t> b_;
    bool ok_ = true;
};

constexpr std::size_t record_header = 5;
constexpr std::size_t max_hello = 16 * 1024;

struct hello_extensions {
    std::optional<std::string> name;
    bool acme_tls = false;
    bool control = false;
    bool malformed = false;
};

// Whether the ALPN list offers `wanted`.
bool offers(cursor body, std::string_view wanted) {
    cursor list(body.sub(body.u16()));
    while (list.left() >= 1) {
        auto protocol = list.sub(list.u8());
        if (!list.ok()) return false;
        if (std::string_view(reinterpret_cast<const char*>(protocol.data()), protocol.size()) ==
            wanted)
            return true;
    }
    return false;
}

std::optional<std::string> host_name(cursor body) {
    cursor list(body.sub(body.u16()));
    while (list.left() >= 3) {
        const unsigned name_type = list.u8();
        auto name = list.sub(list.u16());
        if (!list.ok()) return std::nullopt;
        if (name_type != 0 || name.empty()) continue;
        std::string host;
        for (auto c : name) {
            if (c < 0x21 || c > 0x7e) return std::nullopt;
            host.push_back(static_cast<char>(std::tolower(c)));
        }
        return host;
    }
    return std::nullopt;
}

// server_name (extension 0, RFC 6066) and whether ALPN (16, RFC 7301) offers acme-tls/1 or
// porthole/1.
hello_extensions read_extensions(cursor extensions) {
    hello_extensions out;
    while (extensions.left() >= 4) {
        const unsigned type = extensions.u16();
        cursor body(extensions.sub(extensions.u16()));
        if (!extensions.ok()) return out;  // what came before stands
        if (type == 0 && !out.name) {
            out.name = host_name(body);
            if (!out.name) {
                out.malformed = true;
                return out;
            }
        } else if (type == 16) {
            out.acme_tls = offers(body, "acme-tls/1");
            out.control = offers(body, "porthole/1");
        }
    }
    return out;
}

}  // namespace

client_hello_sni find_sni(std::span<const std::uint8_t> bytes) {
    using status = client_hello_sni::status;
    if (bytes.empty()) return {status::need_more, {}};
    if (bytes[0] != 22) return {status::not_tls, {}};  // handshake record
    if (bytes.size() < record_header) return {status::need_more, {}};
    if (bytes[1] != 3) return {status::not_tls, {}};
    const std::size_t record_length = (std::size_t{bytes[3]} << 8) | bytes[4];
    if (record_length > max_hello) return {status::not_tls, {}};
    if (bytes.size() < record_header + record_length) return {status::need_more, {}};

    cursor c(bytes.subspan(record_header, record_length));
    if (c.u8() != 1) return {status::not_tls, {}};  // ClientHello
    const std::size_t hello_length = c.u24();
    if (!c.ok() || hello_length > c.left()) return {status::absent, {}};  // spans records: rare
    cursor hello(c.sub(hello_length));
    hello.skip(2 + 32);  // legacy_version, random
    hello.skip(hello.u8());  // session id
    hello.skip(hello.u16());  // cipher suites
    hello.skip(hello.u8());  // compression methods
    if (!hello.ok() || hello.left() < 2) return {status::absent, {}};
    cursor extensions(hello.sub(hello.u16()));
    if (!hello.ok()) return {status::absent, {}};
    auto found = read_extensions(extensions);
    if (found.malformed || !found.name) return {status::absent, {}};
    return {status::found, std::move(*found.name), found.acme_tls, found.control};
}

}  // namespace porthole::net

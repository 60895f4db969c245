#include "net/network_list.hpp"

#include "http/token_char.hpp"

#include <boost/asio/ip/address_v4.hpp>
#include <fmt/format.h>

#include <charconv>

namespace porthole::net {

namespace ip = boost::asio::ip;

ip::address unmapped(const ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        return ip::make_address_v4(ip::v4_mapped, a.to_v6());
    return a;
}

namespace {

bool prefix_matches(const std::uint8_t* a, const std::uint8_t* b, unsigned prefix) {
    const unsigned whole = prefix / 8;
    for (unsigned i = 0; i < whole; ++i)
        if (a[i] != b[i]) return false;
    const unsigned rest = prefix % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

tl::expected<network_list, std::string> network_list::parse(
    const std::vector<std::string>& entries) {
    network_list out;
    for (const auto& e : entries) {
        const auto slash = e.find('/');
        boost::system::error_code ec;
        const auto raw = ip::make_address(e.substr(0, slash), ec);
        if (ec) return tl::unexpected(fmt::format("'{}' is not an address or a network", e));
        const auto address = unmapped(raw);
        const unsigned max = raw.is_v4() ? 32 : 128;
        unsigned prefix = max;
        if (slash != std::string::npos) {
            const char* first = e.data() + slash + 1;
            const char* last = e.data() + e.size();
            auto [end, err] = std::from_chars(first, last, prefix);
            if (err != std::errc() || end != last || first == last || prefix > max)
                return tl::unexpected(fmt::format("'{}' has a bad prefix length", e));
        }
        if (raw.is_v6() && address.is_v4()) {  // ::ffff:a.b.c.d/N covers a.b.c.d/(N-96)
            if (prefix < 96)
                return tl::unexpected(fmt::format(
                    "'{}' reaches past the IPv4-mapped range; give a prefix of 96 or more", e));
            prefix -= 96;
        }
        network n{address.is_v4(), {}, prefix};
        if (n.v4) {
            const auto b = address.to_v4().to_bytes();
            std::copy(b.begin(), b.end(), n.bytes.begin());
        } else {
            n.bytes = address.to_v6().to_bytes();
        }
        out.networks_.push_back(n);
    }
    return out;
}

bool network_list::contains(const ip::address& raw) const {
    const auto a = unmapped(raw);
    std::array<std::uint8_t, 16> bytes{};
    if (a.is_v4()) {
        const auto b = a.to_v4().to_bytes();
        std::copy(b.begin(), b.end(), bytes.begin());
    } else {
        bytes = a.to_v6().to_bytes();
    }
    for (const auto& n : networks_)
        if (n.v4 == a.is_v4() && prefix_matches(n.bytes.data(), bytes.data(), n.prefix))
            return true;
    return false;
}

bool network_list::contains(std::string_view address) const {
    boost::system::error_code ec;
    const auto a = ip::make_address(std::string(address), ec);
    return !ec && contains(a);
}

std::string client_behind(const network_list& trusted, std::string_view chain,
                          std::string_view peer) {
    std::string_view best = peer;
    if (!trusted.contains(peer)) return std::string(peer);
    while (!chain.empty()) {
        const auto comma = chain.rfind(',');
        const std::string_view entry =
            http::trim_ows(comma == std::string_view::npos ? chain : chain.substr(comma + 1));
        chain = comma == std::string_view::npos ? std::string_view() : chain.substr(0, comma);
        if (entry.empty()) continue;
        boost::system::error_code ec;
        const auto a = ip::make_address(std::string(entry), ec);
        if (ec) break;
        best = entry;
        if (!trusted.contains(a)) break;
    }
    return std::string(best);
}

}  // namespace porthole::net

#pragma once
// A list of IP networks ("10.0.0.0/8", "fd00::/8") and whether an address falls in one: the
// relay's trusted_proxies. An IPv4-mapped IPv6 address ("::ffff:10.0.0.1") is matched as the
// IPv4 address it carries.
#include <boost/asio/ip/address.hpp>
#include <tl/expected.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::net {

class network_list {
public:
    network_list() = default;
    // From "ADDRESS/PREFIX" or "ADDRESS" entries; an error names the bad one.
    static tl::expected<network_list, std::string> parse(const std::vector<std::string>& entries);

    bool empty() const { return networks_.empty(); }
    bool contains(const boost::asio::ip::address& a) const;
    // The same for an address as text; false when it is not one.
    bool contains(std::string_view address) const;

private:
    struct network {
        bool v4;
        std::array<std::uint8_t, 16> bytes;  // v4: the first 4
        unsigned prefix;
    };
    std::vector<network> networks_;
};

// A v4-mapped IPv6 address as the IPv4 address it maps, so both spellings of a peer compare
// equal; any other address as it is.
boost::asio::ip::address unmapped(const boost::asio::ip::address& a);

// The visitor behind trusted proxies: walks the X-Forwarded-For chain (`chain`, every line of it
// joined by commas, then `peer`) from the right and returns the first address not in `trusted`,
// or the leftmost one when all are; an entry that is not an address ends the walk there (what
// lies left of it cannot be believed).
std::string client_behind(const network_list& trusted, std::string_view chain,
                          std::string_view peer);

}  // namespace porthole::net

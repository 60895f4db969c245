#pragma once
// Where DNS-01 puts its TXT records (_acme-challenge.NAME): an RFC 2136 dynamic update signed
// with TSIG, sent to the zone's primary (BIND, Knot, PowerDNS), or a command the operator gives
// (`dns_hook add|remove NAME VALUE`) for any provider's CLI. Both behind one interface.
#include "config/acme_config.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <tl/expected.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace porthole::acme {

class dns_publisher {
public:
    virtual ~dns_publisher() = default;
    // `name` is the record's full name (_acme-challenge.example.com), `value` the TXT text.
    virtual boost::asio::awaitable<tl::expected<void, std::string>> add(std::string name,
                                                                        std::string value) = 0;
    virtual boost::asio::awaitable<tl::expected<void, std::string>> remove(std::string name,
                                                                           std::string value) = 0;
};

// From [acme] dns: the server's address is resolved here (blocking, at start).
tl::expected<std::unique_ptr<dns_publisher>, std::string> make_dns_publisher(
    const config::acme_dns_config& dns);

// The wire bytes of an UPDATE of `zone` adding (or deleting) the TXT record `name` = `value`,
// TSIG-signed, with `id`; and the request's MAC, which the reply's signature covers. Pure.
struct signed_update {
    std::vector<std::uint8_t> wire;
    std::vector<std::uint8_t> mac;  // the TSIG MAC field as ldns keeps it
};
tl::expected<signed_update, std::string> txt_update(const config::rfc2136_config& server,
                                                    const std::string& name,
                                                    const std::string& value, bool add,
                                                    std::uint16_t id);
// A reply's verdict: NOERROR and a valid TSIG over it, else why not.
tl::expected<void, std::string> check_update_reply(const config::rfc2136_config& server,
                                                   const std::vector<std::uint8_t>& reply,
                                                   const signed_update& request);

}  // namespace porthole::acme

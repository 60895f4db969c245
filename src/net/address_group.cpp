#include "net/address_group.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>

namespace porthole::net {

std::string address_group(const std::string& ip) {
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(ip, ec);
    if (ec || !address.is_v6() || address.to_v6().is_v4_mapped()) return ip;
    auto bytes = address.to_v6().to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

}  // namespace porthole::net

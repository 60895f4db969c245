#pragma once
// What per-address limits count by: an IPv4 address itself, an IPv6 address by its /64, since
// one host commonly holds a whole /64 and could otherwise take a share per address.
#include <string>

namespace porthole::net {

// "203.0.113.7" -> itself; "2001:db8::1" -> "2001:db8::/64"; anything unparsable -> itself.
std::string address_group(const std::string& ip);

}  // namespace porthole::net

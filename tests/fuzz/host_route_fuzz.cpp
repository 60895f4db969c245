// Any Host value: the name found, if any, is a valid tunnel name.
#include "http/host_route.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view host(reinterpret_cast<const char*>(data), size);
    for (std::string_view domain : {"localhost", "example.com", "a.b.example.com"}) {
        auto name = porthole::http::tunnel_name_for_host(host, domain);
        if (name && !porthole::http::valid_name(*name)) std::abort();
    }
    (void)porthole::http::valid_domain(host);
    return 0;
}

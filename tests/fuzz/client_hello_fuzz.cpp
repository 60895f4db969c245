// Any first bytes of a visitor's connection on the HTTPS port: a verdict, never a crash, and a
// found name is printable and lowercase.
#include "net/client_hello.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto r = porthole::net::find_sni({data, size});
    if (r.what == porthole::net::client_hello_sni::status::found)
        for (char c : r.name)
            if (c < 0x21 || c > 0x7e || (c >= 'A' && c <= 'Z')) std::abort();
    return 0;
}

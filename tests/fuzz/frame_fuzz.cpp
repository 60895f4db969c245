// Any bytes as a frame body: decode must not crash, and what decodes must re-encode to itself.
#include "protocol/frame.hpp"

#include <cstdlib>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace porthole::protocol;
    if (size >= header_size) (void)decode_length(std::span<const std::uint8_t, header_size>(data, header_size));
    auto m = decode_body({data, size});
    if (!m) return 0;
    const std::string again = encode(*m);
    if (again.size() != size + header_size || std::memcmp(again.data() + header_size, data, size) != 0)
        std::abort();
    return 0;
}

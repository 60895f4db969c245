// Any bytes as what a visitor sends, through the relay's HTTP edge (tests/tools/relay_edge.hpp).
// What the edge forwards must read back as exactly the request it accepted: the forwarded head
// followed by the body bytes as framed is one complete request, with the same method, target and
// decoded body, no byte left over, that the edge accepts again. Anything else is a request that
// the next hop frames differently from the relay: smuggling.
#include "relay_edge.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace porthole::tests;
    using kind = edge_verdict::kind;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const edge_verdict first = pass_edge(in, std::numeric_limits<std::size_t>::max(), 4096);

    // Where a packet boundary falls must not change what reaches the tunnel. (A bad head or
    // chunk may be noticed later when it arrives in pieces; either way nothing is forwarded.)
    const std::size_t split = size == 0 ? 0 : data[0] % size;
    const edge_verdict split_up = pass_edge(in, split, 4096);
    auto sends = [](const edge_verdict& v) {
        return v.what == kind::forwarded || v.what == kind::body_incomplete;
    };
    if (sends(first) != sends(split_up)) __builtin_trap();
    if (sends(first) && (split_up.what != first.what || split_up.consumed != first.consumed ||
                         split_up.forwarded_head != first.forwarded_head ||
                         split_up.framed_body != first.framed_body))
        __builtin_trap();

    if (first.what != kind::forwarded) return 0;
    const std::string again_bytes = first.forwarded_head + first.framed_body;
    const edge_verdict again = pass_edge(again_bytes);
    if (again.what != kind::forwarded) __builtin_trap();
    if (again.consumed != again_bytes.size()) __builtin_trap();
    if (again.head.method != first.head.method) __builtin_trap();
    if (again.head.target != request_line_target(first.forwarded_head)) __builtin_trap();
    if (again.decoded_body != first.decoded_body) __builtin_trap();
    return 0;
}

#include "relay/handshake_gate.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace porthole::relay {
namespace {

TEST(HandshakeGate, EachAddressGetsItsShare) {
    handshake_gate gate(10, 2);
    auto a1 = gate.admit("10.0.0.1", [] {});
    auto a2 = gate.admit("10.0.0.1", [] {});
    EXPECT_TRUE(a1 && a2);
    EXPECT_FALSE(gate.admit("10.0.0.1", [] {}));
    EXPECT_TRUE(gate.admit("10.0.0.2", [] {}));
    a1.reset();  // a finished handshake gives its place back
    EXPECT_TRUE(gate.admit("10.0.0.1", [] {}));
}

TEST(HandshakeGate, AFullTableClosesItsOldestEntryOnce) {
    handshake_gate gate(3, 3);
    std::vector<std::string> evicted;
    std::vector<std::optional<handshake_gate::ticket>> held;
    for (std::string ip : {"a", "b", "c"})
        held.push_back(gate.admit(ip, [&evicted, ip] { evicted.push_back(ip); }));
    EXPECT_TRUE(evicted.empty());
    auto d = gate.admit("d", [&evicted] { evicted.push_back("d"); });
    ASSERT_TRUE(d);
    EXPECT_EQ(evicted, std::vector<std::string>{"a"});
    EXPECT_EQ(gate.size(), 3u);
    // "a" has not gone yet (its connection is still closing): the next newcomer evicts "b", not
    // "a" a second time, and the table never holds more than its size of live entries.
    auto e = gate.admit("e", [] {});
    EXPECT_EQ(evicted, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(gate.size(), 3u);
    EXPECT_EQ(gate.evictions(), 2u);
    held.clear();  // the evicted ones and "c" leave
    EXPECT_EQ(gate.size(), 2u);
}

TEST(HandshakeGate, AnEvictedAddressKeepsItsCountUntilItLeaves) {
    handshake_gate gate(1, 1);
    auto first = gate.admit("x", [] {});
    auto other = gate.admit("y", [] {});  // evicts x's entry
    ASSERT_TRUE(other);
    EXPECT_FALSE(gate.admit("x", [] {}));  // x's old connection still counts for x
    first.reset();
    EXPECT_TRUE(gate.admit("x", [] {}));
}

}  // namespace
}  // namespace porthole::relay

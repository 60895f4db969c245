// relay::visitor_table from several threads at once, as a relay's event loops use it: every open
// is counted, every close given back, whatever the interleaving.
#include "relay/visitor_table.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace porthole::relay {
namespace {

TEST(VisitorTable, LoopsOpeningAndClosingAtOnceLeaveExactCounts) {
    visitor_table table;
    constexpr int loops = 4, rounds = 20000;
    std::vector<std::thread> threads;
    for (int t = 0; t < loops; ++t)
        threads.emplace_back([&table, t] {
            for (int i = 0; i < rounds; ++i) {
                const std::string group = "10.0.0." + std::to_string(i % 7);
                table.open(group);
                if (i % 2 == 1 || t == 0) table.close(group);
            }
        });
    for (auto& t : threads) t.join();
    // Loop 0 closed all it opened; the others half: 3 loops x 10000 still open over 7 groups.
    std::uint32_t open = 0;
    for (int g = 0; g < 7; ++g) {
        const std::string group = "10.0.0." + std::to_string(g);
        open += table.open(group) - 1;
        table.close(group);
    }
    EXPECT_EQ(open, 3u * rounds / 2);
}

TEST(VisitorTable, AGroupWhoseLastConnectionClosedStartsAgainAtOne) {
    visitor_table table;
    EXPECT_EQ(table.open("a"), 1u);
    EXPECT_EQ(table.open("a"), 2u);
    table.close("a");
    table.close("a");
    EXPECT_EQ(table.open("a"), 1u);
    table.close("b");  // never opened: nothing happens
    EXPECT_EQ(table.open("b"), 1u);
}

}  // namespace
}  // namespace porthole::relay

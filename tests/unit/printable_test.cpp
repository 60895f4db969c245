#include "core/printable.hpp"
#include "core/token_bucket.hpp"

#include <gtest/gtest.h>

namespace porthole::core {
namespace {

using namespace std::chrono_literals;

TEST(Printable, KeepsPrintableAsciiAndEscapesTheRest) {
    EXPECT_EQ(printable("porthole/0.1 (linux)"), "porthole/0.1 (linux)");
    EXPECT_EQ(printable("a\nb"), "a\\x0ab");
    EXPECT_EQ(printable("\x1b[31mred"), "\\x1b[31mred");
    EXPECT_EQ(printable(std::string_view("\0\x7f", 2)), "\\x00\\x7f");
    EXPECT_EQ(printable("caf\xc3\xa9"), "caf\\xc3\\xa9");
    // a backslash is escaped too, so "\x0a" in the output always means a newline came
    EXPECT_EQ(printable("\\x0a"), "\\x5cx0a");
}

TEST(TokenBucket, BurstThenRate) {
    token_bucket b(10, 3);
    const auto t0 = token_bucket::clock::time_point{} + 1h;
    EXPECT_TRUE(b.take(t0));
    EXPECT_TRUE(b.take(t0));
    EXPECT_TRUE(b.take(t0));
    EXPECT_FALSE(b.take(t0));
    EXPECT_FALSE(b.take(t0 + 50ms));  // half a token
    EXPECT_TRUE(b.take(t0 + 100ms));
    EXPECT_TRUE(b.take(t0 + 10s));  // refills to the burst, no further
    EXPECT_TRUE(b.take(t0 + 10s));
    EXPECT_TRUE(b.take(t0 + 10s));
    EXPECT_FALSE(b.take(t0 + 10s));
}

TEST(LogLimiter, CountsWhatItHoldsBackAndSaysSoOnce) {
    log_limiter l(2);  // two lines a minute
    const auto t0 = token_bucket::clock::time_point{} + 1h;
    EXPECT_TRUE(l.allow(t0));
    EXPECT_EQ(l.suppressed_note(), "");
    EXPECT_TRUE(l.allow(t0));
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(l.allow(t0 + 1s));
    EXPECT_TRUE(l.allow(t0 + 31s));
    EXPECT_EQ(l.suppressed_note(), " (5 similar lines suppressed)");
    EXPECT_EQ(l.suppressed_note(), "");
}

}  // namespace
}  // namespace porthole::core

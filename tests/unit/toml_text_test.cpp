#include "config/toml_source.hpp"
#include "config/toml_text.hpp"

#include <gtest/gtest.h>

namespace porthole::config {
namespace {

std::string problem_of(std::string_view text) {
    auto p = check_toml_text(text);
    return p ? std::to_string(p->line) + ": " + p->message : "";
}

TEST(TomlText, TextBeyondAsciiIsRefusedWithItsLineAndTheEscapeToUse) {
    EXPECT_EQ(problem_of("a = 1\nb = \"Jos\xc3\xa9\"\n").substr(0, 10), "2: U+00E9:");
    EXPECT_NE(problem_of("# caf\xc3\xa9\n").find("\\u00E9"), std::string::npos);
    // What toml++ scans as a bare value, quotes and all, never reaches it (found by the fuzzer).
    EXPECT_EQ(problem_of("a =0[[[[\"\xd0\xba\" = 1\n").substr(0, 10), "1: U+043A:");
    EXPECT_EQ(problem_of("serv = 2\"1\xd2\x94\"\n").substr(0, 10), "1: U+0494:");
}

TEST(TomlText, EscapesCarryUnicodeIntoStrings) {
    const std::string text = "a = \"Jos\\u00e9 \\u0222\"\n\"k\\u00eb\" = 1\n";
    EXPECT_EQ(problem_of(text), "");
    auto t = parse_toml(text, "u.toml");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ((*t)["a"].value_or(std::string()), "José Ȣ");
    EXPECT_EQ((*t)["kë"].value_or(0), 1);
}

TEST(TomlText, InvalidUtf8IsRefusedWithItsLine) {
    EXPECT_EQ(problem_of("a = \"\xff\"\n"), "1: invalid UTF-8 (byte 0xff); save the file as UTF-8");
    EXPECT_EQ(problem_of("\n# \xc0\x80\n").substr(0, 18), "2: invalid UTF-8 (");    // overlong
    EXPECT_EQ(problem_of("a = '\xed\xa0\x80'").substr(0, 18), "1: invalid UTF-8 (");  // surrogate
    EXPECT_EQ(problem_of("a = '\xf4\x90\x80\x80'").substr(0, 18), "1: invalid UTF-8 (");
    EXPECT_EQ(problem_of("a = '\xe6\x9d'").substr(0, 18), "1: invalid UTF-8 (");  // truncated
}

}  // namespace
}  // namespace porthole::config

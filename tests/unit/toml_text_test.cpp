#include "config/toml_source.hpp"
#include "config/toml_text.hpp"

#include <gtest/gtest.h>

namespace porthole::config {
namespace {

std::string problem_of(std::string_view text) {
    auto p = check_toml_text(text);
    return p ? std::to_string(p->line) + ": " + p->message : "";
}

TEST(TomlText, UnicodeInStringsKeysAndCommentsReachesTheParserIntact) {
    const std::string text = "# café, Ȣ, пример, 東京 ✓\n"
                             "a = \"José Ȣ\"  # ещё\n"
                             "b = 'C:\\Users\\Zoë'\n"
                             "c = \"\"\"\nmulti Ȣ\n\"\"\"\n"
                             "d = '''Ȣ'''\n"
                             "\"ключ\" = \"значение\"\n"
                             "e = \"\"\"x\\\n   y Ȣ\"\"\"\n"
                             "f = \"\"\"q\"\"\"\"\n";
    EXPECT_EQ(problem_of(text), "");
    auto t = parse_toml(text, "u.toml");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ((*t)["a"].value_or(std::string()), "José Ȣ");
    EXPECT_EQ((*t)["b"].value_or(std::string()), "C:\\Users\\Zoë");
    EXPECT_EQ((*t)["d"].value_or(std::string()), "Ȣ");
    EXPECT_EQ((*t)["ключ"].value_or(std::string()), "значение");
    EXPECT_EQ((*t)["e"].value_or(std::string()), "xy Ȣ");
    EXPECT_EQ((*t)["f"].value_or(std::string()), "q\"");
}

TEST(TomlText, TextBeyondAsciiOutsideQuotesIsRefusedWithItsLine) {
    EXPECT_EQ(problem_of("a = 1\nb = \xc8\xa2\n").substr(0, 10), "2: U+0222 ");
    EXPECT_EQ(problem_of("\xc3\xa9 = 1\n").substr(0, 10), "1: U+00E9 ");
    EXPECT_EQ(problem_of("a = 1 \xc3\xa9\n").substr(0, 10), "1: U+00E9 ");
    // After a multi-line string that closes with extra quotes, the text is outside quotes again.
    EXPECT_EQ(problem_of("a = \"\"\"x\"\"\"\" \xc3\xa9\n").substr(0, 10), "1: U+00E9 ");
    EXPECT_EQ(problem_of("a = '''x''''' \xc3\xa9\n").substr(0, 10), "1: U+00E9 ");
    // A string closed by the end of its line does not hide what follows.
    EXPECT_EQ(problem_of("a = \"x\\\n\xc3\xa9\"\n").substr(0, 10), "2: U+00E9 ");
}

TEST(TomlText, InvalidUtf8IsRefusedWithItsLine) {
    EXPECT_EQ(problem_of("a = \"\xff\"\n"), "1: invalid UTF-8 (byte 0xff); save the file as UTF-8");
    EXPECT_EQ(problem_of("\n# \xc0\x80\n").substr(0, 18), "2: invalid UTF-8 (");    // overlong
    EXPECT_EQ(problem_of("a = '\xed\xa0\x80'").substr(0, 18), "1: invalid UTF-8 (");  // surrogate
    EXPECT_EQ(problem_of("a = '\xf4\x90\x80\x80'").substr(0, 18), "1: invalid UTF-8 (");
    EXPECT_EQ(problem_of("a = '\xe6\x9d'").substr(0, 18), "1: invalid UTF-8 (");  // truncated
    EXPECT_EQ(problem_of("# \xe6").substr(0, 18), "1: invalid UTF-8 (");
}

TEST(TomlText, WhatTheParserCannotTakeAfterABackslashIsRefused) {
    EXPECT_NE(problem_of("a = \"\"\"x\\\n  \xc3\xa9\"\"\"\n").find("line-ending backslash"),
              std::string::npos);
    EXPECT_NE(problem_of("a = \"\"\"\\\xc8\xa2\"\"\"\n").find("not an escape sequence"),
              std::string::npos);
    // In a one-line string the parser reports the bad escape itself.
    auto t = parse_toml("a = \"\\\xc8\xa2\"\n", "e.toml");
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().find("e.toml:1: "), std::string::npos) << t.error();
}

}  // namespace
}  // namespace porthole::config

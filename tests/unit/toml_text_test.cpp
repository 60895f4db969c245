#include "config/toml_source.hpp"
#include "config/toml_text.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <utility>

namespace porthole::config {
namespace {

const std::string sample = "José Ȣ пример 東京 😀";

std::string problem_of(std::string_view text) {
    auto ascii = to_ascii_toml(text);
    return ascii ? "" : std::to_string(ascii.error().line) + ": " + ascii.error().message;
}

bool is_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::ptrdiff_t lines(std::string_view text) { return std::count(text.begin(), text.end(), '\n'); }

// The table toml++ reads from the transcoded text, which must be ASCII with the same lines.
toml::table read(std::string_view text) {
    auto ascii = to_ascii_toml(text);
    if (!ascii) {
        ADD_FAILURE() << problem_of(text);
        return {};
    }
    EXPECT_TRUE(is_ascii(*ascii)) << *ascii;
    EXPECT_EQ(lines(*ascii), lines(text));
    try {
        return toml::parse(*ascii);
    } catch (const toml::parse_error& e) {
        ADD_FAILURE() << e.description() << " in\n" << *ascii;
        return {};
    }
}

std::string string_at(const toml::table& t, std::string_view key) {
    return t[key].value_or(std::string("(none)"));
}

// Each key of `text` holds its string once toml++ has read the transcoded text.
void expect_strings(std::string_view text,
                    std::initializer_list<std::pair<std::string_view, std::string>> want) {
    auto t = read(text);
    for (const auto& [key, value] : want) EXPECT_EQ(string_at(t, key), value) << key;
}

TEST(TomlText, AsciiTextIsKeptAsItIs) {
    const std::string text = "a = 'C:\\x' # \"q\"\nb = '''\n\"x\"'''\n";
    EXPECT_EQ(to_ascii_toml(text).value(), text);
    EXPECT_EQ(to_ascii_toml("\xef\xbb\xbf" "a = 1\n").value(), "a = 1\n");  // a byte order mark
}

TEST(TomlText, EveryStringFormCarriesUnicode) {
    auto t = read("a = \"" + sample + "\"\n"
                  "b = \"\"\"\n" + sample + "\nnext\"\"\"\n"
                  "c = '" + sample + "'\n"
                  "d = '''\n" + sample + "\nnext'''\n"
                  "e = [\"é\", 'ü', { f = \"ß\" }]\n");
    EXPECT_EQ(string_at(t, "a"), sample);
    EXPECT_EQ(string_at(t, "b"), sample + "\nnext");
    EXPECT_EQ(string_at(t, "c"), sample);
    EXPECT_EQ(string_at(t, "d"), sample + "\nnext");
    EXPECT_EQ(t["e"][0].value_or(std::string()), "é");
    EXPECT_EQ(t["e"][1].value_or(std::string()), "ü");
    EXPECT_EQ(t["e"][2]["f"].value_or(std::string()), "ß");
}

TEST(TomlText, EscapesInBasicStringsKeepTheirMeaning) {
    expect_strings("a = \"\\\"é\\\\\"\n"
                   "b = \"\"\"é\\\n    ü \\\"\"\" \"\"\"\n"
                   "c = \"\"\"\\\n  é\"\"\"\n"
                   "d = \"Jos\\u00e9 \\U0001F600 ☃\"\n",
                   {{"a", "\"é\\"}, {"b", "éü \"\"\" "}, {"c", "é"}, {"d", "José 😀 ☃"}});
}

TEST(TomlText, LiteralStringsKeepBackslashesAndQuotes) {
    expect_strings("a = 'C:\\Users\\Zoë\\ \"q\" \\u00e9'\n"
                   "b = '''\n"
                   "C:\\Zoë\\\n"
                   "\"\"\" ''x'' \\n'''\n"
                   "c = '\\'\n"
                   "d = '\"'\n",
                   {{"a", "C:\\Users\\Zoë\\ \"q\" \\u00e9"},
                    {"b", "C:\\Zoë\\\n\"\"\" ''x'' \\n"},
                    {"c", "\\"},
                    {"d", "\""}});
}

TEST(TomlText, MultiLineStringsMayEndWithQuotes) {
    expect_strings("a = '''\né said 'hi'''''\n"
                   "b = '''é''''\n"
                   "c = '''\"é\"'''\n"
                   "d = \"\"\"é\"\"\"\"\"\n"
                   "e = '''\r\nü'''\r\n"
                   "f = ''''''\n",
                   {{"a", "é said 'hi''"},
                    {"b", "é'"},
                    {"c", "\"é\""},
                    {"d", "é\"\""},
                    {"e", "ü"},
                    {"f", ""}});
}

TEST(TomlText, QuotedKeysCarryUnicode) {
    auto t = read("\"ключ\" = \"значение\"\n"
                  "'東京' = 1\n"
                  "a.\"é\".'ü' = 2\n"
                  "[\"café\".'Zoë']\n"
                  "\"😀\" = 3\n");
    EXPECT_EQ(string_at(t, "ключ"), "значение");
    EXPECT_EQ(t["東京"].value_or(0), 1);
    EXPECT_EQ(t["a"]["é"]["ü"].value_or(0), 2);
    EXPECT_EQ(t["café"]["Zoë"]["😀"].value_or(0), 3);
}

TEST(TomlText, CommentsMayHoldAnyText) {
    auto t = read("# " + sample + "\n"
                  "a = \"x\" # ещё \"é\n"
                  "b = [ # 東京 '\n"
                  "  1, # ü\n"
                  "]\n"
                  "c = 'x#' #é\n");
    EXPECT_EQ(string_at(t, "a"), "x");
    EXPECT_EQ(t["b"][0].value_or(0), 1);
    EXPECT_EQ(string_at(t, "c"), "x#");
}

TEST(TomlText, TextBeyondAsciiOutsideQuotesIsRefusedWithItsLine) {
    EXPECT_EQ(problem_of("a = 1\nb = \xc8\xa2\n").substr(0, 10), "2: U+0222 ");
    EXPECT_EQ(problem_of("\xc3\xa9 = 1\n").substr(0, 10), "1: U+00E9 ");
    EXPECT_EQ(problem_of("a = 1\xc2\xa0\n").substr(0, 10), "1: U+00A0 ");  // no-break space
    EXPECT_NE(problem_of("a = \xc3\xa9\n").find("outside quotes; TOML takes text beyond ASCII"),
              std::string::npos);
    // After a multi-line string that closes with extra quotes, the text is outside quotes again.
    EXPECT_EQ(problem_of("a = \"\"\"x\"\"\"\" \xc3\xa9\n").substr(0, 10), "1: U+00E9 ");
    EXPECT_EQ(problem_of("a = '''x''''' \xc3\xa9\n").substr(0, 10), "1: U+00E9 ");
    // A string closed by the end of its line does not hide what follows.
    EXPECT_EQ(problem_of("a = \"x\\\n\xc3\xa9\"\n").substr(0, 10), "2: U+00E9 ");
    EXPECT_EQ(problem_of("a = 'x\n\xc3\xa9'\n").substr(0, 10), "2: U+00E9 ");
    EXPECT_EQ(problem_of("a = '''\n\n'''\n\xf0\x9f\x98\x80\n").substr(0, 11), "4: U+1F600 ");
}

TEST(TomlText, ABackslashBeforeTextBeyondAsciiIsRefused) {
    EXPECT_NE(problem_of("a = \"\\\xc8\xa2\"\n").find("1: a backslash before"), std::string::npos);
    EXPECT_NE(problem_of("a = \"\"\"\n\\\xc8\xa2\"\"\"\n").find("2: a backslash before"),
              std::string::npos);
}

TEST(TomlText, MalformedTextReachesTheParserAsAscii) {
    // toml++ scans these as bare values, quotes and all (found by the fuzzer): it gets escapes.
    for (std::string_view text : {"a =0[[[[\"\xd0\xba\"", "a =0[[[[\"\xd0\xba\" = 1\n",
                                  "serv = 2\"1\xd2\x94\"\n", "a = '''\xd0\xba",
                                  "a = \"\"\"\xd0\xba"}) {
        auto ascii = to_ascii_toml(text);
        ASSERT_TRUE(ascii) << ascii.error().message;
        EXPECT_TRUE(is_ascii(*ascii)) << *ascii;
        auto t = parse_toml(text, "m.toml");
        ASSERT_FALSE(t);
        EXPECT_EQ(t.error().substr(0, 9), "m.toml:1:") << t.error();
    }
}

TEST(TomlText, AStringRightAfterAStringStaysAnError) {
    // A rewritten quote must not join the closing quotes before it into a longer delimiter.
    for (std::string_view text : {"a = '''é''''''\n", "a = '''é'''\"\n", "a = \"\"\"é\"\"\"''\n",
                                  "a = 'é'''\n", "a = \"é\"'x'\n"}) {
        auto t = parse_toml(text, "s.toml");
        EXPECT_FALSE(t) << text << " read as " << *t;
    }
}

TEST(TomlText, ParserErrorsKeepTheirLines) {
    auto t = parse_toml("# café\n\"ключ\" = '''\nZoë\n東京'''\n# ü\nx = \n", "u.toml");
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().substr(0, 9), "u.toml:6:") << t.error();
    t = parse_toml("a = \"é\nb = 1\n", "u.toml");  // an unterminated string
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().substr(0, 9), "u.toml:1:") << t.error();
}

TEST(TomlText, InvalidUtf8IsRefusedWithItsLine) {
    EXPECT_EQ(problem_of("a = \"\xff\"\n"), "1: invalid UTF-8 (byte 0xff); save the file as UTF-8");
    EXPECT_EQ(problem_of("\n# \xc0\x80\n").substr(0, 18), "2: invalid UTF-8 (");    // overlong
    EXPECT_EQ(problem_of("a = '\xed\xa0\x80'").substr(0, 18), "1: invalid UTF-8 (");  // surrogate
    EXPECT_EQ(problem_of("a = '\xf4\x90\x80\x80'").substr(0, 18), "1: invalid UTF-8 (");
    EXPECT_EQ(problem_of("a = '\xe6\x9d'").substr(0, 18), "1: invalid UTF-8 (");  // truncated
    EXPECT_EQ(problem_of("# \xe6").substr(0, 18), "1: invalid UTF-8 (");
    EXPECT_EQ(problem_of("a = 1\n\xa9").substr(0, 18), "2: invalid UTF-8 (");  // continuation
    EXPECT_EQ(problem_of("a = '''\n\n\xe9'''").substr(0, 18), "3: invalid UTF-8 (");
}

}  // namespace
}  // namespace porthole::config

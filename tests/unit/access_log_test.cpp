#include "observe/access_log.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace porthole::observe;

namespace {

request_record sample_record() {
    request_record r;
    r.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1746093845123));
    r.visitor = "203.0.113.7";
    r.tls = true;
    r.host = "shop.example.com";
    r.method = "POST";
    r.target = "/api/orders?id=42&sig=secret";
    r.status = 201;
    r.bytes_in = 734;
    r.bytes_out = 312;
    r.duration = std::chrono::microseconds(4210);
    r.site = "shop.example.com";
    r.route = "/api";
    r.upstream = "http://10.0.0.5:8080";
    r.user_agent = "curl/7.88.1";
    return r;
}

std::string line_of(const request_record& r, access_log_settings s) {
    std::string out;
    append_log_line(out, r, s);
    return out;
}

}  // namespace

TEST(AccessLog, JsonLineParsesAndDropsQueryValues) {
    const std::string line = line_of(sample_record(), {"-", log_format::json});
    ASSERT_EQ(line.back(), '\n');
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["time"], "2025-05-01T10:04:05.123Z");
    EXPECT_EQ(j["visitor"], "203.0.113.7");
    EXPECT_EQ(j["path"], "/api/orders?id&sig");
    EXPECT_EQ(j["status"], 201);
    EXPECT_EQ(j["bytes_in"], 734);
    EXPECT_EQ(j["site"], "shop.example.com");
    EXPECT_EQ(j["upstream"], "http://10.0.0.5:8080");
    EXPECT_TRUE(j["policy"].is_null());
    EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 4.21);
    EXPECT_EQ(line.find("secret"), std::string::npos);
}

TEST(AccessLog, HostileBytesStayInsideOneValidJsonLine) {
    request_record r = sample_record();
    r.user_agent = "x\"\n\x01\xff";
    r.target = "/a\"b";
    const std::string line = line_of(r, {"-", log_format::json});
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["path"], "/a\"b");
    EXPECT_EQ(j["user_agent"].get<std::string>().substr(0, 3), "x\"\n");
}

TEST(AccessLog, CombinedStartsAsApacheDoes) {
    const std::string line =
        line_of(sample_record(), {"-", log_format::combined, query_logging::full});
    EXPECT_EQ(line,
              "203.0.113.7 - - [01/May/2025:10:04:05 +0000] \"POST /api/orders?id=42&sig=secret "
              "HTTP/1.1\" 201 312 \"-\" \"curl/7.88.1\" 734 0.004 shop.example.com "
              "site=shop.example.com upstream=http://10.0.0.5:8080 rid=- policy=-\n");
}

TEST(AccessLog, QueryModes) {
    std::string out;
    append_target(out, "/cb?code=1&state=x&flag", query_logging::names);
    EXPECT_EQ(out, "/cb?code&state&flag");
    out.clear();
    append_target(out, "/cb?code=1", query_logging::drop);
    EXPECT_EQ(out, "/cb");
    out.clear();
    append_target(out, "/plain", query_logging::names);
    EXPECT_EQ(out, "/plain");
}

TEST(AccessLog, AnonymizedAddresses) {
    EXPECT_EQ(anonymized("203.0.113.7"), "203.0.113.0");
    EXPECT_EQ(anonymized("2001:db8:1:2::7"), "2001:db8:1::");
    EXPECT_EQ(anonymized("not an address"), "not an address");
}

TEST(AccessLog, WritesEveryLineAndReopensAfterARename) {
    const auto dir = std::filesystem::temp_directory_path() / "porthole-access-log-test";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const auto path = (dir / "access.log").string();
    {
        auto log = access_log::open({path, log_format::json});
        ASSERT_TRUE(log) << log.error();
        for (int i = 0; i < 1000; ++i) (*log)->add(sample_record());
        (*log)->flush();
        // Wait for the writer, bounded.
        for (int i = 0; i < 500 && std::filesystem::file_size(path) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        std::filesystem::rename(path, path + ".1");
        (*log)->reopen();
        for (int i = 0; i < 500 && !std::filesystem::exists(path); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        (*log)->add(sample_record());
    }  // the destructor writes what is buffered
    const auto count_lines = [](const std::string& p) {
        std::ifstream in(p);
        std::string line;
        int n = 0;
        while (std::getline(in, line)) {
            EXPECT_TRUE(nlohmann::json::accept(line)) << line;
            ++n;
        }
        return n;
    };
    EXPECT_EQ(count_lines(path + ".1"), 1000);
    EXPECT_EQ(count_lines(path), 1);
    std::filesystem::remove_all(dir);
}

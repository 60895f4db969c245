#include "config/server_config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace porthole::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ServerConfig : public testing::Test {
protected:
    void SetUp() override {
        static std::atomic<int> counter{0};
        const auto* info = testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::path(testing::TempDir()) /
               ("porthole_server_config_" + std::to_string(::getpid()) + "_" +
                std::to_string(counter++) + "_" + info->name());
        fs::create_directories(dir_);
    }

    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::string write(const std::string& name, std::string_view content) {
        const fs::path path = dir_ / name;
        std::ofstream out(path, std::ios::binary);
        out << content;
        EXPECT_TRUE(out.good()) << path;
        return path.string();
    }

    std::string missing(const std::string& name) const { return (dir_ / name).string(); }

    static void expect_contains(const std::string& text, const std::string& part) {
        EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
    }

    server_config cfg;

    fs::path dir_;
};

TEST_F(ServerConfig, DefaultsAreValid) {
    EXPECT_EQ(cfg.domain, "localhost");
    EXPECT_EQ(cfg.http_addr, (endpoint{"127.0.0.1", 8080}));
    EXPECT_EQ(cfg.control_addr, (endpoint{"127.0.0.1", 7835}));
    EXPECT_EQ(cfg.tcp_ports.low, 20000);
    EXPECT_EQ(cfg.tcp_ports.high, 20999);
    EXPECT_TRUE(cfg.tokens.empty());
    EXPECT_EQ(cfg.lease_grace, 60s);
    EXPECT_TRUE(validate(cfg));
}

TEST_F(ServerConfig, LoadAppliesEveryKey) {
    const std::string tokens = write("tokens.txt", "from-file\n");
    const std::string digest = protocol::to_hex(protocol::key_of_token("beta"));
    std::string toml = "# relay settings\n";
    toml += "domain = \"tunnel.example.com\"\n";
    toml += "http_addr = \"0.0.0.0:80\"\n";
    toml += "control_addr = \"[::1]:7000\"\n";
    toml += "tcp_ports = \"30000-30009\"\n";
    toml += "tokens = [\"alpha\", \"sha256:" + digest + "\"]\n";
    toml += "tokens_file = \"" + tokens + "\"\n";
    toml += "lease_grace = 5\n";
    toml += "shutdown_timeout = 3\n";
    toml += "header_timeout = 7\n";
    toml += "idle_timeout = 86400\n";
    const std::string path = write("server.toml", toml);
    auto r = load_server_file(path, cfg);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(cfg.domain, "tunnel.example.com");
    EXPECT_EQ(cfg.http_addr, (endpoint{"0.0.0.0", 80}));
    EXPECT_EQ(cfg.control_addr, (endpoint{"::1", 7000}));
    EXPECT_EQ(cfg.tcp_ports.low, 30000);
    EXPECT_EQ(cfg.tcp_ports.high, 30009);
    ASSERT_EQ(cfg.tokens.size(), 3u);
    EXPECT_EQ(cfg.tokens[0], protocol::verifier_of(protocol::key_of_token("alpha")));
    EXPECT_EQ(cfg.tokens[1], protocol::verifier_of(protocol::key_of_token("beta")));
    EXPECT_EQ(cfg.tokens[2], protocol::verifier_of(protocol::key_of_token("from-file")));
    EXPECT_EQ(cfg.lease_grace, 5s);
    EXPECT_EQ(cfg.shutdown_timeout, 3s);
    EXPECT_EQ(cfg.header_timeout, 7s);
    EXPECT_EQ(cfg.idle_timeout, 86400s);
}

TEST_F(ServerConfig, LoadKeepsUnmentionedSettings) {
    const std::string path = write("server.toml", "lease_grace = 120\n");
    auto r = load_server_file(path, cfg);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(cfg.lease_grace, 120s);
    EXPECT_EQ(cfg.domain, "localhost");
    EXPECT_EQ(cfg.http_addr, (endpoint{"127.0.0.1", 8080}));
    EXPECT_EQ(cfg.control_addr, (endpoint{"127.0.0.1", 7835}));
    EXPECT_TRUE(cfg.tokens.empty());
}

TEST_F(ServerConfig, LoadEmptyFile) {
    const std::string path = write("server.toml", "");
    auto r = load_server_file(path, cfg);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(cfg.domain, "localhost");
}

TEST_F(ServerConfig, LoadAppendsTokens) {
    cfg.tokens.push_back(protocol::verifier_of(protocol::key_of_token("existing")));
    const std::string path = write("server.toml", "tokens = [\"new\"]\n");
    auto r = load_server_file(path, cfg);
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(cfg.tokens.size(), 2u);
    EXPECT_EQ(cfg.tokens[0], protocol::verifier_of(protocol::key_of_token("existing")));
    EXPECT_EQ(cfg.tokens[1], protocol::verifier_of(protocol::key_of_token("new")));
}

TEST_F(ServerConfig, ClusterTableIsReadAndItsErrorsNameTheKey) {
    const std::string secret = write("cluster.key", std::string(64, 'k') + "\n");
    fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
    const std::string path = write(
        "relay.toml", "cluster = { redis = \"redis://127.0.0.1:6390/2\", node_id = \"relay-a\", "
                      "advertise = \"10.0.0.1:7837\", secret_file = \"cluster.key\" }\n");
    auto r = load_server_file(path, cfg);
    ASSERT_TRUE(r) << r.error();
    ASSERT_TRUE(cfg.cluster);
    EXPECT_EQ(cfg.cluster->node_id, "relay-a");
    EXPECT_EQ(cfg.cluster->advertise.to_string(), "10.0.0.1:7837");
    EXPECT_EQ(cfg.cluster->link_addr.to_string(), "0.0.0.0:7837");  // advertise's port
    EXPECT_EQ(cfg.cluster->secret, std::string(64, 'k'));  // relative to the file
    const auto refused = [&](const std::string& table, const std::string& part) {
        server_config fresh;
        auto e = load_server_file(write("bad.toml", "cluster = " + table + "\n"), fresh);
        ASSERT_FALSE(e) << table;
        expect_contains(e.error(), part);
        EXPECT_EQ(e.error().find(std::string(64, 'k')), std::string::npos);  // never the secret
    };
    const std::string rest = "advertise = \"h:1\", secret_file = \"cluster.key\"";
    refused("{ redis = \"http://x\", node_id = \"a\", " + rest + " }", "cluster.redis");
    refused("{ redis = \"redis://h\", node_id = \"Relay_A\", " + rest + " }", "node_id");
    refused("{ redis = \"redis://h\", " + rest + " }", "cluster needs node_id");
    refused("{ redis = \"redis://h\", node_id = \"a\", advertise = \"h:1\", "
            "secret_file = \"nope.key\" }",
            "nope.key");
    refused("{ redis = \"redis://h\", node_id = \"a\", " + rest + ", nodeid = \"b\" }",
            "did you mean 'node_id'");
    write("short.key", "too-short\n");
    fs::permissions(dir_ / "short.key", fs::perms::owner_read | fs::perms::owner_write);
    refused("{ redis = \"redis://h\", node_id = \"a\", advertise = \"h:1\", "
            "secret_file = \"short.key\" }",
            "at least 32");
    fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
    refused("{ redis = \"redis://h\", node_id = \"a\", " + rest + " }", "chmod 600");
}

TEST_F(ServerConfig, UnknownKeyNamesFileLineAndKey) {
    const std::string path = write("server.toml",
                                   "domain = \"example.com\"\n"
                                   "\n"
                                   "colour = \"blue\"\n");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path + ":3");
    expect_contains(r.error(), "colour");
}

TEST_F(ServerConfig, UnknownTableNamesKey) {
    const std::string path = write("server.toml", "lease_grace = 5\n[extra]\nx = 1\n");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path + ":");
    expect_contains(r.error(), "extra");
}

TEST_F(ServerConfig, WrongTypeNamesKeyAndLine) {
    const std::string path = write("server.toml",
                                   "domain = \"example.com\"\n"
                                   "tcp_ports = 5\n");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path + ":2");
    expect_contains(r.error(), "tcp_ports");
}

TEST_F(ServerConfig, WrongTypesForOtherKeys) {
    struct bad {
        const char* key;
        const char* toml;
    };
    for (const bad& b : {bad{"domain", "domain = 1\n"}, bad{"http_addr", "http_addr = 8080\n"},
                         bad{"lease_grace", "lease_grace = \"5\"\n"},
                         bad{"tokens", "tokens = \"abc\"\n"}, bad{"tokens", "tokens = [1]\n"},
                         bad{"idle_timeout", "idle_timeout = 1.5\n"}}) {
        server_config fresh;
        const std::string path = write("server.toml", std::string("\n") + b.toml);
        auto r = load_server_file(path, fresh);
        ASSERT_FALSE(r) << b.toml;
        expect_contains(r.error(), path + ":2");
        expect_contains(r.error(), b.key);
    }
}

TEST_F(ServerConfig, BadEndpointNamesLine) {
    const std::string path = write("server.toml",
                                   "domain = \"example.com\"\n"
                                   "lease_grace = 5\n"
                                   "control_addr = \"nonsense\"\n");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path + ":3");
    expect_contains(r.error(), "control_addr");
    expect_contains(r.error(), "nonsense");
}

TEST_F(ServerConfig, BadValuesNameLine) {
    for (const char* toml : {"domain = \"bad_domain!\"\n", "tcp_ports = \"5-1\"\n",
                             "http_addr = \"host:99999\"\n", "lease_grace = 0\n",
                             "header_timeout = 86401\n", "tokens = [\"sha256:1234\"]\n"}) {
        server_config fresh;
        const std::string path = write("server.toml", std::string("# comment\n") + toml);
        auto r = load_server_file(path, fresh);
        ASSERT_FALSE(r) << toml;
        expect_contains(r.error(), path + ":2");
    }
}

TEST_F(ServerConfig, BadTokenInMultiLineArrayNamesItsLine) {
    const std::string path = write("server.toml",
                                   "tokens = [\n"
                                   "  \"good\",\n"
                                   "  \"sha256:zz\",\n"
                                   "]\n");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path + ":3");
    expect_contains(r.error(), "sha256");
}

TEST_F(ServerConfig, SyntaxErrorNamesFileAndLine) {
    const std::string path = write("server.toml",
                                   "domain = \"example.com\"\n"
                                   "lease_grace = 5\n"
                                   "http_addr = \"127.0.0.1:80\n");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path + ":3");
}

TEST_F(ServerConfig, SyntaxErrorMissingValue) {
    const std::string path = write("server.toml", "\n\ndomain =\n");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path + ":3");
}

TEST_F(ServerConfig, MissingFileNamesFile) {
    const std::string path = missing("absent.toml");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path);
    expect_contains(r.error(), "cannot open");
}

TEST_F(ServerConfig, MissingTokensFileFromConfig) {
    const std::string tokens = missing("absent-tokens.txt");
    const std::string path = write("server.toml", "tokens_file = \"" + tokens + "\"\n");
    auto r = load_server_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), tokens);
}

TEST_F(ServerConfig, TokensFileSkipsCommentsAndBlankLines) {
    const std::string digest = protocol::to_hex(protocol::key_of_token("hashed"));
    const std::string path = write("tokens.txt",
                                   "# tokens for the relay\n"
                                   "\n"
                                   "first\n"
                                   "   \t\n"
                                   "  # indented comment\n"
                                   "  second  \n"
                                   "sha256:" + digest + "\n"
                                   "crlf\r\n"
                                   "last-without-newline");
    auto r = load_tokens_file(path, cfg);
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(cfg.tokens.size(), 5u);
    EXPECT_EQ(cfg.tokens[0], protocol::verifier_of(protocol::key_of_token("first")));
    EXPECT_EQ(cfg.tokens[1], protocol::verifier_of(protocol::key_of_token("second")));
    EXPECT_EQ(cfg.tokens[2], protocol::verifier_of(protocol::key_of_token("hashed")));
    EXPECT_EQ(cfg.tokens[3], protocol::verifier_of(protocol::key_of_token("crlf")));
    EXPECT_EQ(cfg.tokens[4], protocol::verifier_of(protocol::key_of_token("last-without-newline")));
}

TEST_F(ServerConfig, TokensFileAppends) {
    cfg.tokens.push_back(protocol::verifier_of(protocol::key_of_token("existing")));
    const std::string path = write("tokens.txt", "added\n");
    ASSERT_TRUE(load_tokens_file(path, cfg));
    ASSERT_EQ(cfg.tokens.size(), 2u);
    EXPECT_EQ(cfg.tokens[1], protocol::verifier_of(protocol::key_of_token("added")));
}

TEST_F(ServerConfig, TokensFileEmpty) {
    const std::string path = write("tokens.txt", "# nothing yet\n\n");
    auto r = load_tokens_file(path, cfg);
    ASSERT_TRUE(r) << r.error();
    EXPECT_TRUE(cfg.tokens.empty());
}

TEST_F(ServerConfig, TokensFileBadEntryNamesFileAndLine) {
    const std::string path = write("tokens.txt",
                                   "# header\n"
                                   "ok-token\n"
                                   "\n"
                                   "sha256:not-hex\n"
                                   "another\n");
    auto r = load_tokens_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path + ":4");
    expect_contains(r.error(), "sha256");
}

TEST_F(ServerConfig, TokensFileMissing) {
    const std::string path = missing("absent-tokens.txt");
    auto r = load_tokens_file(path, cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), path);
}

TEST_F(ServerConfig, ValidateRefusesPublicControlWithoutTokens) {
    cfg.control_addr = {"0.0.0.0", 7835};
    auto r = validate(cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), "token");
    expect_contains(r.error(), "0.0.0.0:7835");

    cfg.control_addr = {"::", 7835};
    EXPECT_FALSE(validate(cfg));
    cfg.control_addr = {"192.168.1.20", 7835};
    EXPECT_FALSE(validate(cfg));
}

TEST_F(ServerConfig, ValidateAcceptsLoopbackControlWithoutTokens) {
    for (const char* host : {"127.0.0.1", "::1", "localhost", "127.0.0.2"}) {
        cfg.control_addr = {host, 7835};
        auto r = validate(cfg);
        EXPECT_TRUE(r) << host << ": " << r.error();
    }
}

TEST_F(ServerConfig, ValidateAcceptsPublicControlWithToken) {
    cfg.control_addr = {"0.0.0.0", 7835};
    cfg.tokens.push_back(protocol::verifier_of(protocol::key_of_token("secret")));
    auto r = validate(cfg);
    EXPECT_TRUE(r) << r.error();
}

TEST_F(ServerConfig, ValidatePublicHttpAddrNeedsNoToken) {
    cfg.http_addr = {"0.0.0.0", 80};
    auto r = validate(cfg);
    EXPECT_TRUE(r) << r.error();
}

TEST_F(ServerConfig, ValidateRefusesBadDomain) {
    cfg.domain = "not a domain";
    auto r = validate(cfg);
    ASSERT_FALSE(r);
    expect_contains(r.error(), "not a domain");
}

}  // namespace
}  // namespace porthole::config

namespace porthole::config {
namespace {

TEST(ServerConfigLimits, LimitsAndReservedNamesLoad) {
    const std::string path = testing::TempDir() + "/limits.toml";
    server_config cfg;
    auto ok = load_server_text("max_tunnels_per_client = 2\nmax_connections_per_ip = 3\n"
                               "max_connections_per_tunnel = 4\nmax_pending_streams = 5\n"
                               "reserved_names = [\"billing\"]\n",
                               path, cfg);
    ASSERT_TRUE(ok) << ok.error();
    EXPECT_EQ(cfg.max_tunnels_per_client, 2u);
    EXPECT_EQ(cfg.max_connections_per_ip, 3u);
    EXPECT_EQ(cfg.max_connections_per_tunnel, 4u);
    EXPECT_EQ(cfg.max_pending_streams, 5u);
    EXPECT_EQ(cfg.reserved_names, std::vector<std::string>{"billing"});
}

TEST(ServerConfigLimits, OutOfRangeLimitNamesKeyAndLine) {
    server_config cfg;
    auto ok = load_server_text("domain = \"example.com\"\nmax_connections_per_ip = 0\n", "l.toml", cfg);
    ASSERT_FALSE(ok);
    EXPECT_NE(ok.error().find("l.toml:2"), std::string::npos) << ok.error();
    EXPECT_NE(ok.error().find("max_connections_per_ip"), std::string::npos) << ok.error();
}

TEST(ServerConfigAcme, CustomDomainsAndAcmeTablesLoad) {
    server_config cfg;
    auto ok = load_server_text(
        "custom_domains = { \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\""
        " = [\"*.customer.com\", \"app.example.org\"] }\n"
        "[acme]\nemail = \"ops@example.com\"\nca = \"letsencrypt-staging\"\n"
        "dns_hook = \"/usr/local/bin/dns\"\n",
        "r.toml", cfg);
    ASSERT_TRUE(ok) << ok.error();
    ASSERT_EQ(cfg.custom_domains.size(), 1u);
    EXPECT_EQ(cfg.custom_domains[0].second,
              (std::vector<std::string>{"*.customer.com", "app.example.org"}));
    ASSERT_TRUE(cfg.acme);
    EXPECT_EQ(cfg.acme->ca, letsencrypt_staging_directory);
    // dns_hook puts dns-01 first among the challenges.
    EXPECT_EQ(cfg.acme->challenges.front(), "dns-01");
    server_config bad;
    auto refused = load_server_text("custom_domains = { \"tok\" = [\"nodot\"] }\n", "r.toml", bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("r.toml:1"), std::string::npos) << refused.error();
    refused = load_server_text("[acme]\nrenew_after = 1.5\n", "r.toml", bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("r.toml:2: acme.renew_after"), std::string::npos);
}

}  // namespace
}  // namespace porthole::config

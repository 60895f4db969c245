#include "config/client_config.hpp"
#include "config/owner_policies.hpp"
#include "config/policy_config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sys/stat.h>
#include <unistd.h>

namespace porthole::config {
namespace {

TEST(ClientConfig, ServerMayListTheRelaysOfACluster) {
    auto file = load_client_text("server = \"a.example.com:7835,b.example.com:7835\"\n", "p.toml");
    ASSERT_TRUE(file) << file.error();
    ASSERT_TRUE(file->server);
    ASSERT_EQ(file->server->size(), 2u);
    EXPECT_EQ((*file->server)[1].host, "b.example.com");
    auto bad = load_client_text("server = \"a.example.com:7835,nonsense\"\n", "p.toml");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("p.toml:1: server:"), std::string::npos) << bad.error();
}

TEST(ClientConfig, ReadsRoutesAndInspectorSettings) {
    auto file = load_client_text(R"(
server = "relay.example.com:7835"
inspect = true
inspect_addr = "127.0.0.1:4041"
inspect_body_limit = "1MiB"
inspect_memory = 1048576

[tunnels.web]
type = "http"
target = 3000
routes = [
  { path = "/api", target = 8000 },
  { path = "/static", target = "127.0.0.2:9000" },
]
)",
                                 "p.toml");
    ASSERT_TRUE(file) << file.error();
    EXPECT_EQ(file->inspect.addr->port, 4041);
    EXPECT_EQ(file->inspect.body_limit, 1024u * 1024);
    EXPECT_EQ(file->inspect.memory, 1048576u);
    ASSERT_EQ(file->tunnels.size(), 1u);
    const auto& routes = file->tunnels[0].routes;
    ASSERT_EQ(routes.size(), 2u);
    EXPECT_EQ(routes[0].path, "/api");
    EXPECT_EQ(routes[0].target.port, 8000);
    EXPECT_EQ(routes[1].target.host, "127.0.0.2");
}

TEST(ClientConfig, CacheAsksTheRelayForItsTunnelCacheAlongsidePolicies) {
    auto file = load_client_text(R"([tunnels.blog]
type = "http"
target = 8000
cache = true
[[tunnels.blog.policies]]
type = "https_only"
)",
                                 "p.toml");
    ASSERT_TRUE(file) << file.error();
    const std::string& text = file->tunnels[0].policies;
    const auto read = load_owner_policies(text, "sent", {});
    ASSERT_TRUE(read) << read.error() << "\n" << text;
    EXPECT_TRUE(read->cache);
    ASSERT_EQ(read->policies.size(), 1u);
    // The flag makes the same text; a relay that forbids it says so.
    owner_policy_flags flags;
    flags.cache = true;
    const auto from_flag = policies_from_flags(flags, "");
    ASSERT_TRUE(from_flag);
    EXPECT_TRUE(load_owner_policies(*from_flag, "sent", {})->cache);
    const auto forbidden = load_owner_policies(*from_flag, "sent", {"cache"});
    ASSERT_FALSE(forbidden);
    EXPECT_NE(forbidden.error().find("does not let a tunnel's owner turn its cache on"),
              std::string::npos);
    const auto tcp = load_client_text("[tunnels.db]\ntype = \"tcp\"\ntarget = 5432\ncache = true\n",
                                      "p.toml");
    ASSERT_FALSE(tcp);
    EXPECT_NE(tcp.error().find("p.toml:4: 'cache' does not apply to a tcp tunnel"),
              std::string::npos)
        << tcp.error();
    EXPECT_FALSE(load_client_text("[tunnels.w]\ntype = \"http\"\ntarget = 1\ncache = 1\n", "p.toml"));
}

TEST(ClientConfig, ArrayOfTablesRoutesWorkToo) {
    auto file = load_client_text(R"([tunnels.web]
type = "http"
target = 3000
[[tunnels.web.routes]]
path = "/api"
target = 8000
)",
                                 "p.toml");
    ASSERT_TRUE(file) << file.error();
    ASSERT_EQ(file->tunnels[0].routes.size(), 1u);
}

TEST(ClientConfig, BadRoutesNameFileLineAndFix) {
    auto bad_path = load_client_text("[tunnels.web]\ntype = \"http\"\ntarget = 3000\n"
                                     "routes = [{ path = \"api\", target = 8000 }]\n",
                                     "p.toml");
    ASSERT_FALSE(bad_path);
    EXPECT_NE(bad_path.error().find("p.toml:4"), std::string::npos) << bad_path.error();
    EXPECT_NE(bad_path.error().find("must start with '/'"), std::string::npos);

    auto missing = load_client_text("[tunnels.web]\ntype = \"http\"\ntarget = 3000\n"
                                    "routes = [{ path = \"/api\" }]\n",
                                    "p.toml");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().find("needs both path and target"), std::string::npos);

    auto on_tcp = load_client_text("[tunnels.db]\ntype = \"tcp\"\ntarget = 5432\n"
                                   "routes = [{ path = \"/api\", target = 1 }]\n",
                                   "p.toml");
    ASSERT_FALSE(on_tcp);
    EXPECT_NE(on_tcp.error().find("'routes' does not apply to a tcp tunnel (only http tunnels read HTTP)"),
              std::string::npos)
        << on_tcp.error();
}

TEST(ClientConfig, BadInspectorValuesAreNamed) {
    auto size = load_client_text("inspect_memory = \"lots\"\n", "p.toml");
    ASSERT_FALSE(size);
    EXPECT_NE(size.error().find("p.toml:1: inspect_memory"), std::string::npos) << size.error();
    auto flag = load_client_text("inspect = \"no\"\n", "p.toml");
    ASSERT_FALSE(flag);
    EXPECT_NE(flag.error().find("must be true or false"), std::string::npos);
}

TEST(ClientConfig, MisspeltKeysGetASuggestion) {
    auto top = load_client_text("inspect_adr = \"127.0.0.1:4041\"\n", "p.toml");
    ASSERT_FALSE(top);
    EXPECT_NE(top.error().find("p.toml:1: unknown key 'inspect_adr'; did you mean 'inspect_addr'?"),
              std::string::npos)
        << top.error();
    auto tunnel = load_client_text("[tunnels.w]\ntype = \"http\"\ntarget = 1\nsubdomian = \"x\"\n",
                                   "p.toml");
    ASSERT_FALSE(tunnel);
    EXPECT_NE(tunnel.error().find("did you mean 'subdomain'?"), std::string::npos) << tunnel.error();
    auto far = load_client_text("colour = 1\n", "p.toml");
    ASSERT_FALSE(far);
    EXPECT_NE(far.error().find("(known: server, token,"), std::string::npos) << far.error();
}

TEST(ClientConfig, ParsesSizes) {
    EXPECT_EQ(*parse_size("100"), 100u);
    EXPECT_EQ(*parse_size("64KiB"), 65536u);
    EXPECT_EQ(*parse_size("2 MB"), 2000000u);
    EXPECT_EQ(*parse_size("1GiB"), 1u << 30);
    EXPECT_FALSE(parse_size("KiB"));
    EXPECT_FALSE(parse_size("12 parsecs"));
    EXPECT_FALSE(parse_size("-1"));
}

TEST(ClientConfig, ParsesRouteFlags) {
    auto r = parse_route("/api=8000");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->path, "/api");
    EXPECT_EQ(r->target.port, 8000);
    EXPECT_FALSE(parse_route("/api"));
    EXPECT_FALSE(parse_route("api=8000"));
    EXPECT_FALSE(parse_route("/api=notaport"));
}

}  // namespace
}  // namespace porthole::config

namespace porthole::config {
namespace {

TEST(ClientConfig, TextBeyondAsciiOutsideQuotesIsRefusedBeforeTheParserSeesIt) {
    auto bad = load_client_text("server = \"x:1\"\ntoken = 21\xd2\x94\n", "p.toml");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("p.toml:2: U+0494 outside quotes"), std::string::npos)
        << bad.error();
}

TEST(ClientConfig, Utf8CommentsAndStringsAreRead) {
    auto cfg = load_client_text("# Zoë's laptop\nserver = \"x:1\"\ntoken = 'jeton-été'\n",
                                "p.toml");
    ASSERT_TRUE(cfg) << cfg.error();
    ASSERT_TRUE(cfg->token);
    EXPECT_EQ(*cfg->token, "jeton-été");
    cfg = load_client_text("server = \"x:1\"\ntoken = \"jeton-\\u00e9t\\u00e9\"\n", "p.toml");
    ASSERT_TRUE(cfg) << cfg.error();
    EXPECT_EQ(*cfg->token, "jeton-été");
}

}  // namespace
}  // namespace porthole::config

namespace porthole::config {
namespace {

TEST(TokenFile, TakesTheFirstLineThatIsNotBlankOrAComment) {
    EXPECT_EQ(token_in_text("s3cret\n", "t").value(), "s3cret");
    EXPECT_EQ(token_in_text("# for relay.example.com\n\n \t s3cret \r\nnext\n", "t").value(),
              "s3cret");
    EXPECT_EQ(token_in_text("no newline at the end", "t").value(), "no newline at the end");
    for (const char* empty : {"", "\n\n", "# only a comment\n   \r\n"}) {
        auto none = token_in_text(empty, "/etc/porthole/token");
        ASSERT_FALSE(none) << empty;
        EXPECT_EQ(none.error().rfind("/etc/porthole/token: ", 0), 0u) << none.error();
    }
}

TEST(TokenFile, ErrorsNameTheFileAndNeverItsContents) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("porthole-token-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = (dir / "token").string();
    std::ofstream(path) << "# a comment\nkept-private\n";
    ::chmod(path.c_str(), 0600);
    auto read = read_token_file(path);
    ASSERT_TRUE(read) << read.error();
    EXPECT_EQ(read->token, "kept-private");
    EXPECT_EQ(read->warning, "");

    ::chmod(path.c_str(), 0644);
    read = read_token_file(path);
    ASSERT_TRUE(read) << read.error();
    EXPECT_NE(read->warning.find("chmod 600 " + path), std::string::npos) << read->warning;
    EXPECT_EQ(read->warning.find("kept-private"), std::string::npos);

    for (const auto& bad : {(dir / "missing").string(), dir.string()}) {
        auto error = read_token_file(bad);
        ASSERT_FALSE(error) << bad;
        EXPECT_EQ(error.error().rfind(bad + ": cannot read the token file: ", 0), 0u)
            << error.error();
    }
    std::filesystem::remove_all(dir);
}

TEST(TokenFile, OthersMayReadWhenGroupOrWorldBitsAreSet) {
    EXPECT_FALSE(others_may_read(0600));
    EXPECT_FALSE(others_may_read(0400));
    EXPECT_FALSE(others_may_read(0620));
    EXPECT_TRUE(others_may_read(0640));
    EXPECT_TRUE(others_may_read(0604));
    EXPECT_TRUE(others_may_read(0644));
}

TEST(TokenFile, CommandLineTokenWarnsOnlyOffLoopback) {
    for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "localhost"})
        EXPECT_EQ(command_line_token_warning({host, 7835}, "--token-file FILE"), "") << host;
    for (const char* host : {"relay.example.com", "0.0.0.0", "::", "192.0.2.1"}) {
        const auto w = command_line_token_warning({host, 7835}, "--token-file FILE");
        EXPECT_NE(w.find("--token is visible to every user"), std::string::npos) << host;
        EXPECT_NE(w.find("use --token-file FILE instead"), std::string::npos) << w;
    }
}

TEST(ClientConfig, TokenFileKeyIsTakenFromTheConfigFilesDirectory) {
    auto file =
        load_client_text("token_file = \"relay.token\"\n", "/home/me/.config/porthole/p.toml");
    ASSERT_TRUE(file) << file.error();
    EXPECT_EQ(file->token_file, "/home/me/.config/porthole/relay.token");
    EXPECT_FALSE(file->token);
    file = load_client_text("token_file = \"/run/secrets/token\"\n", "/etc/p.toml");
    ASSERT_TRUE(file) << file.error();
    EXPECT_EQ(file->token_file, "/run/secrets/token");

    auto both = load_client_text("token = \"t\"\ntoken_file = \"/run/secrets/token\"\n", "p.toml");
    ASSERT_FALSE(both);
    EXPECT_EQ(both.error(), "p.toml:2: give token or token_file, not both");
    EXPECT_FALSE(load_client_text("token_file = \"\"\n", "p.toml"));
}

}  // namespace
}  // namespace porthole::config

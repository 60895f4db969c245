#include "http/path_route.hpp"

#include <gtest/gtest.h>

namespace porthole::http {
namespace {

TEST(PathRoute, MatchesWholeSegmentsOnly) {
    EXPECT_TRUE(path_matches("/api", "/api"));
    EXPECT_TRUE(path_matches("/api", "/api/v1/users"));
    EXPECT_TRUE(path_matches("/api", "/api?x=1"));
    EXPECT_FALSE(path_matches("/api", "/apix"));
    EXPECT_FALSE(path_matches("/api", "/"));
    EXPECT_TRUE(path_matches("/api/", "/api/v1"));
    EXPECT_FALSE(path_matches("/api/", "/api"));
    EXPECT_TRUE(path_matches("/", "/anything"));
}

TEST(PathRoute, RoutesAbsoluteFormByItsPath) {
    EXPECT_TRUE(path_matches("/api", "http://example.com/api/x"));
    EXPECT_FALSE(path_matches("/api", "http://example.com/other"));
    EXPECT_TRUE(path_matches("/", "http://example.com"));
}

TEST(PathRoute, FirstMatchWins) {
    const std::vector<std::string> routes{"/api/admin", "/api", "/static"};
    EXPECT_EQ(match_path(routes, "/api/admin/x"), 0u);
    EXPECT_EQ(match_path(routes, "/api/users"), 1u);
    EXPECT_EQ(match_path(routes, "/static/app.js"), 2u);
    EXPECT_EQ(match_path(routes, "/index.html"), 3u);
}

TEST(PathRoute, ValidatesPrefixes) {
    EXPECT_TRUE(valid_path_prefix("/api"));
    EXPECT_FALSE(valid_path_prefix("api"));
    EXPECT_FALSE(valid_path_prefix("/a?b"));
    EXPECT_FALSE(valid_path_prefix("/a b"));
    EXPECT_FALSE(valid_path_prefix(""));
}

}  // namespace
}  // namespace porthole::http

// The route table: which site a Host reaches (exact, longest wildcard, catch-all) and which of
// its routes a target takes (first whole-segment prefix match, a path-less route last).
#include "route/route_table.hpp"

#include <gtest/gtest.h>

namespace porthole::route {
namespace {

std::shared_ptr<route> make_route(std::string path) {
    auto r = std::make_shared<route>();
    r->path = std::move(path);
    return r;
}

site make_site(std::vector<std::string> hosts, std::vector<std::string> paths = {""}) {
    site s{std::move(hosts), {}};
    for (auto& p : paths) s.routes.push_back(make_route(std::move(p)));
    return s;
}

TEST(NormalizeHost, DropsPortCaseAndTrailingDot) {
    EXPECT_EQ(normalize_host("Shop.Example.COM:8443"), "shop.example.com");
    EXPECT_EQ(normalize_host("shop.example.com."), "shop.example.com");
    EXPECT_EQ(normalize_host("[::1]:80"), "::1");
    EXPECT_EQ(normalize_host("[fd00::5]"), "fd00::5");
    EXPECT_EQ(normalize_host("127.0.0.1:8080"), "127.0.0.1");
    EXPECT_EQ(normalize_host(""), "");
}

TEST(RouteTable, ExactBeforeWildcardBeforeCatchAll) {
    route_table t;
    t.add(make_site({"*"}));
    t.add(make_site({"*.example.com"}));
    t.add(make_site({"*.shop.example.com"}));
    t.add(make_site({"shop.example.com", "www.shop.example.com"}));
    const auto& s = t.sites();
    EXPECT_EQ(t.find_site("shop.example.com"), s[3].get());
    EXPECT_EQ(t.find_site("WWW.Shop.Example.com:443"), s[3].get());
    EXPECT_EQ(t.find_site("eu.shop.example.com"), s[2].get());     // the longest wildcard
    EXPECT_EQ(t.find_site("a.b.shop.example.com"), s[2].get());    // any depth below it
    EXPECT_EQ(t.find_site("blog.example.com"), s[1].get());
    EXPECT_EQ(t.find_site("example.com"), s[0].get());             // a wildcard takes no apex
    EXPECT_EQ(t.find_site("xshop.example.com"), s[1].get());       // a label, not a suffix
    EXPECT_EQ(t.find_site("other.test"), s[0].get());
}

TEST(RouteTable, NoSiteWithoutCatchAll) {
    route_table t;
    EXPECT_TRUE(t.empty());
    EXPECT_EQ(t.find_site("shop.example.com"), nullptr);
    t.add(make_site({"*.example.com"}));
    EXPECT_EQ(t.find_site("example.com"), nullptr);
    EXPECT_EQ(t.find_site("example.com.evil.test"), nullptr);
    bool found = true;
    EXPECT_EQ(t.match("nobody.test", "/", &found), nullptr);
    EXPECT_FALSE(found);
}

TEST(RouteTable, FirstWholeSegmentPrefixThenThePathlessRoute) {
    route_table t;
    t.add(make_site({"shop.test"}, {"/api/v2", "/api", ""}));
    const auto& routes = t.sites()[0]->routes;
    EXPECT_EQ(t.match("shop.test", "/api/v2/orders"), routes[0].get());
    EXPECT_EQ(t.match("shop.test", "/api/v2"), routes[0].get());
    EXPECT_EQ(t.match("shop.test", "/api/v2?x=1"), routes[0].get());
    EXPECT_EQ(t.match("shop.test", "/api/v20"), routes[1].get());
    EXPECT_EQ(t.match("shop.test", "/api"), routes[1].get());
    EXPECT_EQ(t.match("shop.test", "/apix"), routes[2].get());
    EXPECT_EQ(t.match("shop.test", "/"), routes[2].get());
}

TEST(RouteTable, ASiteWithoutAMatchingRouteSaysTheSiteWasFound) {
    route_table t;
    t.add(make_site({"shop.test"}, {"/api"}));
    bool found = false;
    EXPECT_EQ(t.match("shop.test", "/other", &found), nullptr);
    EXPECT_TRUE(found);
    EXPECT_NE(t.match("shop.test", "/api/x", &found), nullptr);
}

}  // namespace
}  // namespace porthole::route

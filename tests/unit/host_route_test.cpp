#include "http/host_route.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace porthole::http {
namespace {

using std::nullopt;

TEST(TunnelNameForHost, StripsPortAndDomain) {
    EXPECT_EQ(tunnel_name_for_host("abc.localhost:8080", "localhost"), "abc");
}

TEST(TunnelNameForHost, WithoutPort) {
    EXPECT_EQ(tunnel_name_for_host("abc.localhost", "localhost"), "abc");
}

TEST(TunnelNameForHost, LowercasesHost) {
    EXPECT_EQ(tunnel_name_for_host("ABC.LocalHost:8080", "localhost"), "abc");
    EXPECT_EQ(tunnel_name_for_host("My-App.Example.COM", "example.com"), "my-app");
}

TEST(TunnelNameForHost, DomainComparedCaseInsensitively) {
    EXPECT_EQ(tunnel_name_for_host("abc.example.com", "Example.COM"), "abc");
}

TEST(TunnelNameForHost, AcceptsTrailingDot) {
    EXPECT_EQ(tunnel_name_for_host("abc.localhost.", "localhost"), "abc");
    EXPECT_EQ(tunnel_name_for_host("abc.localhost.:8080", "localhost"), "abc");
}

TEST(TunnelNameForHost, MultiLabelDomain) {
    EXPECT_EQ(tunnel_name_for_host("app1.tunnel.example.com:443", "tunnel.example.com"), "app1");
    EXPECT_EQ(tunnel_name_for_host("tunnel.example.com", "tunnel.example.com"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("a.b.tunnel.example.com", "tunnel.example.com"), nullopt);
}

TEST(TunnelNameForHost, RejectsWrongDomain) {
    EXPECT_EQ(tunnel_name_for_host("abc.example.com", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("abc.localhost.com", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("localhost.abc", "localhost"), nullopt);
}

TEST(TunnelNameForHost, RejectsBareDomain) {
    EXPECT_EQ(tunnel_name_for_host("localhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("localhost:8080", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host(".localhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("localhost.", "localhost"), nullopt);
}

TEST(TunnelNameForHost, RejectsTwoLabelsDeep) {
    EXPECT_EQ(tunnel_name_for_host("a.b.localhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("a.b.localhost:8080", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("abc..localhost", "localhost"), nullopt);
}

TEST(TunnelNameForHost, RejectsSuffixTrick) {
    EXPECT_EQ(tunnel_name_for_host("abc.evillocalhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("abclocalhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("abc.evillocalhost:8080", "localhost"), nullopt);
}

TEST(TunnelNameForHost, RejectsNonNumericPort) {
    EXPECT_EQ(tunnel_name_for_host("abc.localhost:http", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("abc.localhost:80a", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("abc.localhost:-1", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("abc.localhost:80 ", "localhost"), nullopt);
}

TEST(TunnelNameForHost, RejectsInvalidLabelCharacters) {
    EXPECT_EQ(tunnel_name_for_host("ab_c.localhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("ab c.localhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("-abc.localhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("abc-.localhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("ab*c.localhost", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("\xc3\xa4pp.localhost", "localhost"), nullopt);
}

TEST(TunnelNameForHost, RejectsEmptyAndAddressLiterals) {
    EXPECT_EQ(tunnel_name_for_host("", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host(":8080", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("127.0.0.1:8080", "localhost"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("[::1]:8080", "localhost"), nullopt);
}

TEST(TunnelNameForHost, LabelLengthLimit) {
    const std::string label63(63, 'a');
    const std::string label64(64, 'a');
    EXPECT_EQ(tunnel_name_for_host(label63 + ".localhost:8080", "localhost"), label63);
    EXPECT_EQ(tunnel_name_for_host(label64 + ".localhost:8080", "localhost"), nullopt);
}

TEST(TunnelNameForHost, RejectsOverlongHost) {
    const std::string domain = std::string(63, 'd') + "." + std::string(63, 'e') + "." +
                               std::string(63, 'f') + ".com";
    const std::string host = std::string(60, 'a') + "." + domain;
    ASSERT_GT(host.size(), 255u);
    EXPECT_EQ(tunnel_name_for_host(host, domain), nullopt);
}

TEST(ValidName, AcceptsLowercaseLabels) {
    EXPECT_TRUE(valid_name("a"));
    EXPECT_TRUE(valid_name("abc"));
    EXPECT_TRUE(valid_name("my-app-2"));
    EXPECT_TRUE(valid_name("1abc"));
    EXPECT_TRUE(valid_name("a--b"));
    EXPECT_TRUE(valid_name("0"));
}

TEST(ValidName, LengthLimit) {
    EXPECT_TRUE(valid_name(std::string(63, 'a')));
    EXPECT_FALSE(valid_name(std::string(64, 'a')));
    EXPECT_FALSE(valid_name(""));
}

TEST(ValidName, RejectsLeadingOrTrailingHyphen) {
    EXPECT_FALSE(valid_name("-abc"));
    EXPECT_FALSE(valid_name("abc-"));
    EXPECT_FALSE(valid_name("-"));
}

TEST(ValidName, RejectsUppercaseAndOtherCharacters) {
    EXPECT_FALSE(valid_name("Abc"));
    EXPECT_FALSE(valid_name("ABC"));
    EXPECT_FALSE(valid_name("a.b"));
    EXPECT_FALSE(valid_name("a_b"));
    EXPECT_FALSE(valid_name("a b"));
    EXPECT_FALSE(valid_name("a/b"));
    EXPECT_FALSE(valid_name(std::string("a\0b", 3)));
    EXPECT_FALSE(valid_name("\xc3\xa4"));
}

TEST(ValidName, AnAceLabelMustBeAValidALabel) {
    EXPECT_TRUE(valid_name("xn--caf-dma"));  // café
    EXPECT_TRUE(valid_name("xn--55qx5d"));
    EXPECT_FALSE(valid_name("xn--a"));
    EXPECT_FALSE(valid_name("xn--abc"));
    EXPECT_FALSE(valid_name("xn--ss-"));
    EXPECT_FALSE(valid_name("xn--"));
    EXPECT_NE(name_problem("xn--a").value_or("").find("not a valid IDNA A-label"), std::string::npos);
    EXPECT_EQ(name_problem("xn--caf-dma"), std::nullopt);
    EXPECT_EQ(tunnel_name_for_host("xn--a.example.com", "example.com"), nullopt);
    EXPECT_EQ(tunnel_name_for_host("XN--CAF-DMA.example.com", "example.com"), "xn--caf-dma");
    EXPECT_TRUE(valid_domain("xn--caf-dma.example"));
    EXPECT_FALSE(valid_domain("xn--a.example"));
}

TEST(SubdomainFromUser, UnicodeBecomesItsALabelAndAsciiStaysAsItIs) {
    EXPECT_EQ(subdomain_from_user("café").value_or(""), "xn--caf-dma");
    EXPECT_EQ(subdomain_from_user("Café").value_or(""), "xn--caf-dma");  // mapped to lowercase
    EXPECT_EQ(subdomain_from_user("shop").value_or(""), "shop");
    EXPECT_EQ(subdomain_from_user("xn--caf-dma").value_or(""), "xn--caf-dma");
    EXPECT_FALSE(subdomain_from_user("Shop"));  // ASCII is taken exactly as typed
    EXPECT_FALSE(subdomain_from_user("xn--a"));
    EXPECT_NE(subdomain_from_user("ä-").error().find("hyphen"), std::string::npos);
    EXPECT_NE(subdomain_from_user("café.shop").error().find("one DNS label"), std::string::npos);
    EXPECT_FALSE(subdomain_from_user("a\xff"));
}

TEST(ValidDomain, AcceptsDnsNames) {
    EXPECT_TRUE(valid_domain("localhost"));
    EXPECT_TRUE(valid_domain("example.com"));
    EXPECT_TRUE(valid_domain("tunnel.example.co.uk"));
    EXPECT_TRUE(valid_domain("Example.COM"));
    EXPECT_TRUE(valid_domain("x-1.y-2"));
}

TEST(ValidDomain, LabelLengthLimit) {
    EXPECT_TRUE(valid_domain(std::string(63, 'a') + ".com"));
    EXPECT_FALSE(valid_domain(std::string(64, 'a') + ".com"));
    EXPECT_FALSE(valid_domain("example." + std::string(64, 'c')));
}

TEST(ValidDomain, TotalLengthLimit) {
    const std::string three = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + ".";
    EXPECT_TRUE(valid_domain(three + std::string(61, 'd')));
    EXPECT_EQ((three + std::string(61, 'd')).size(), 253u);
    EXPECT_FALSE(valid_domain(three + std::string(62, 'd')));
}

TEST(ValidDomain, RejectsEmptyLabelsAndBadCharacters) {
    EXPECT_FALSE(valid_domain(""));
    EXPECT_FALSE(valid_domain("."));
    EXPECT_FALSE(valid_domain(".example.com"));
    EXPECT_FALSE(valid_domain("example.com."));
    EXPECT_FALSE(valid_domain("example..com"));
    EXPECT_FALSE(valid_domain("-example.com"));
    EXPECT_FALSE(valid_domain("example-.com"));
    EXPECT_FALSE(valid_domain("exa_mple.com"));
    EXPECT_FALSE(valid_domain("example.com:8080"));
    EXPECT_FALSE(valid_domain("*.example.com"));
}

TEST(RandomName, HasTheDocumentedShape) {
    for (int i = 0; i < 500; ++i) {
        const std::string name = random_name();
        ASSERT_EQ(name.size(), 8u) << name;
        ASSERT_TRUE(name[0] >= 'a' && name[0] <= 'z') << name;
        for (char c : name) ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) << name;
        ASSERT_TRUE(valid_name(name)) << name;
    }
}

TEST(RandomName, VariesBetweenCalls) {
    std::set<std::string> names;
    for (int i = 0; i < 100; ++i) names.insert(random_name());
    EXPECT_GT(names.size(), 95u);
}

}  // namespace
}  // namespace porthole::http

namespace porthole::http {
namespace {

TEST(ValidNameIdna, DoubleHyphenInPlacesThreeAndFourIsForPunycodeOnly) {
    EXPECT_FALSE(valid_name("ab--cd"));
    EXPECT_TRUE(valid_name("xn--80ak6aa92e"));
    EXPECT_TRUE(valid_name("a--b"));  // "--" elsewhere is fine
}

TEST(CustomDomain, BareHostLowercasesAndDropsThePort) {
    EXPECT_EQ(bare_host("App.Customer.COM:8443"), "app.customer.com");
    EXPECT_EQ(bare_host("app.customer.com."), "app.customer.com");
    EXPECT_EQ(bare_host("app.customer.com:x"), std::nullopt);
    EXPECT_EQ(bare_host("bad_host.com"), std::nullopt);
}

TEST(CustomDomain, FromUserNeedsTwoLabels) {
    EXPECT_EQ(custom_domain_from_user("App.Example.com"), "app.example.com");
    EXPECT_FALSE(custom_domain_from_user("myapp"));
    EXPECT_FALSE(custom_domain_from_user("a..b"));
    EXPECT_FALSE(custom_domain_from_user("-a.example.com"));
}

TEST(CustomDomain, PatternsMatchExactlyOrUnderTheSuffix) {
    EXPECT_TRUE(custom_domain_allowed("app.example.com", "app.example.com"));
    EXPECT_FALSE(custom_domain_allowed("app.example.com", "x.app.example.com"));
    EXPECT_TRUE(custom_domain_allowed("*.customer.com", "shop.customer.com"));
    EXPECT_TRUE(custom_domain_allowed("*.customer.com", "a.b.customer.com"));
    EXPECT_FALSE(custom_domain_allowed("*.customer.com", "customer.com"));
    EXPECT_FALSE(custom_domain_allowed("*.customer.com", "evilcustomer.com"));
}

}  // namespace
}  // namespace porthole::http

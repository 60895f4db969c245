#include "observe/label_slots.hpp"
#include "observe/prom_text.hpp"
#include "observe/relay_counters.hpp"
#include "relay/relay_metrics.hpp"

#include <gtest/gtest.h>

#include <array>

using namespace porthole;

TEST(PromText, HelpAndTypeOnceThenSamples) {
    observe::prom_text t;
    t.family("porthole_x_total", "counter", "Things \\ counted\non two lines.");
    t.sample("porthole_x_total", {{"tunnel", "a\"b\\c\nd"}}, std::uint64_t{3});
    t.sample("porthole_x_total", {}, 1.5);
    EXPECT_EQ(t.text(),
              "# HELP porthole_x_total Things \\\\ counted\\non two lines.\n"
              "# TYPE porthole_x_total counter\n"
              "porthole_x_total{tunnel=\"a\\\"b\\\\c\\nd\"} 3\n"
              "porthole_x_total 1.5\n");
}

TEST(PromText, HistogramBucketsAreCumulativeAndInfEqualsCount) {
    observe::prom_text t;
    const std::array<double, 3> bounds{0.001, 0.25, 2.5};
    const std::array<std::uint64_t, 4> counts{2, 0, 5, 1};
    t.histogram("h_seconds", {{"kind", "site"}}, bounds, counts, 4.25);
    EXPECT_EQ(t.text(),
              "h_seconds_bucket{kind=\"site\",le=\"0.001\"} 2\n"
              "h_seconds_bucket{kind=\"site\",le=\"0.25\"} 2\n"
              "h_seconds_bucket{kind=\"site\",le=\"2.5\"} 7\n"
              "h_seconds_bucket{kind=\"site\",le=\"+Inf\"} 8\n"
              "h_seconds_sum{kind=\"site\"} 4.25\n"
              "h_seconds_count{kind=\"site\"} 8\n");
}

TEST(DurationHistogram, BoundsAreInclusive) {
    observe::duration_histogram h;
    h.add(std::chrono::microseconds(1000));     // exactly 1 ms: the first bucket
    h.add(std::chrono::microseconds(1001));     // just over
    h.add(std::chrono::seconds(100));           // over the last bound
    EXPECT_EQ(h.counts[0], 1u);
    EXPECT_EQ(h.counts[1], 1u);
    EXPECT_EQ(h.counts.back(), 1u);
    EXPECT_EQ(h.count(), 3u);
    EXPECT_EQ(h.sum_us, 100002001u);
}

TEST(LabelSlots, NamesPastTheCapShareOtherAndFreedSlotsComeBackFresh) {
    observe::label_slots slots(2);
    const auto a = slots.acquire("a");
    const auto b = slots.acquire("b");
    EXPECT_TRUE(a.fresh);
    EXPECT_NE(a.slot, b.slot);
    const auto c = slots.acquire("c");
    EXPECT_EQ(c.slot, slots.other_slot());
    EXPECT_EQ(slots.name(c.slot), "_other");
    EXPECT_EQ(slots.acquire("a").slot, a.slot);  // twice held now
    slots.release("a");
    EXPECT_EQ(slots.name(a.slot), "a");  // one use left
    slots.release("a");
    EXPECT_EQ(slots.name(a.slot), "");
    const auto d = slots.acquire("d");
    EXPECT_EQ(d.slot, a.slot);
    EXPECT_TRUE(d.fresh);
    EXPECT_EQ(slots.name(d.slot), "d");
}

TEST(LabelSlots, ACapOfZeroCountsEveryNameAsOther) {
    observe::label_slots slots(0);
    EXPECT_EQ(slots.acquire("a").slot, slots.other_slot());
    EXPECT_EQ(slots.slots(), 1u);
}

TEST(Refusals, PolicyTypesThatRefuseHaveAReason) {
    EXPECT_EQ(observe::policy_refusal("basic_auth"), observe::refusal::basic_auth);
    EXPECT_EQ(observe::policy_refusal("respond"), observe::refusal::respond);
    EXPECT_FALSE(observe::policy_refusal("headers"));
    EXPECT_FALSE(observe::policy_refusal("no_tunnel"));  // a reason, but not a policy's
}

TEST(RelayMetrics, EveryClassOfAHeldTunnelAndEachSiteIsWritten) {
    observe::label_slots labels(1);
    observe::relay_counters counters(labels.slots(), 1);
    const auto slot = labels.acquire("shop").slot;
    ++counters.tunnels[slot].by_class[2];
    counters.tunnels[slot].duration.add(std::chrono::microseconds(500));
    counters.refused(observe::refusal::basic_auth);
    relay::relay_gauges g;
    g.sessions = 2;
    g.upstream.push_back({"example.com", "http://127.0.0.1:1", true});
    const std::array<std::string, 1> sites{"example.com"};
    const std::string text =
        relay::write_metrics(counters, labels, sites, g, observe::process_stats{}, 0);
    EXPECT_NE(text.find("porthole_requests_total{tunnel=\"shop\",code_class=\"2xx\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("porthole_requests_total{tunnel=\"shop\",code_class=\"5xx\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("porthole_requests_total{tunnel=\"_other\",code_class=\"2xx\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("porthole_requests_total{site=\"example.com\",code_class=\"4xx\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("porthole_request_duration_seconds_bucket{kind=\"tunnel\",le=\"0.001\"} 1"),
              std::string::npos);
    EXPECT_NE(text.find("porthole_refusals_total{reason=\"basic_auth\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("porthole_sessions 2\n"), std::string::npos);
    EXPECT_NE(text.find("porthole_upstream_healthy{site=\"example.com\",member=\"http://127.0.0.1:1\"} 1"),
              std::string::npos);
    // Each family's HELP appears once.
    std::size_t helps = 0;
    for (std::size_t at = 0; (at = text.find("# HELP porthole_requests_total ", at)) !=
                             std::string::npos;
         ++at)
        ++helps;
    EXPECT_EQ(helps, 1u);
}

#include "relay/reload_plan.hpp"

TEST(ReloadPlan, StartOnlyKeysNeedARestartAndTokensAndSitesAreCounted) {
    config::server_config old;
    old.tokens = {protocol::verifier{1}, protocol::verifier{2}};
    old.sites.sites.push_back(config::site_config{{"a.test"}, {}, 0, {}, {}});
    config::server_config next = old;
    EXPECT_FALSE(relay::plan_reload(old, next).refused());
    next.tokens = {protocol::verifier{2}, protocol::verifier{3}};
    next.sites.sites.push_back(config::site_config{{"b.test"}, {}, 0, {}, {}});
    next.max_connections_per_ip = 7;  // a limit: applied in place
    auto p = relay::plan_reload(old, next);
    EXPECT_FALSE(p.refused());
    ASSERT_EQ(p.tokens_removed.size(), 1u);
    EXPECT_EQ(p.tokens_removed[0], protocol::verifier{1});
    EXPECT_EQ(p.tokens_added, 1u);
    EXPECT_EQ(p.sites_added, 1u);
    EXPECT_EQ(p.sites_kept, 1u);
    next.domain = "other.test";
    next.http_addr.port = 81;
    p = relay::plan_reload(old, next);
    ASSERT_TRUE(p.refused());
    EXPECT_EQ(relay::restart_message(p),
              "domain, http_addr changed: restart the relay to apply them, or run porthole admin "
              "upgrade, which does without refusing a visitor (the running config stays)");
}

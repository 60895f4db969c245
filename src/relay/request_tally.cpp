#include "relay/request_tally.hpp"

#include "observe/access_log.hpp"

namespace porthole::relay {

request_tally::request_tally(relay_context& ctx, watched_socket& visitor,
                             const net::io_buffer& in, bool tls)
    : ctx_(ctx), visitor_(visitor), in_(in), start_(clock::now()),
      in_at_start_(visitor.bytes_in - in.size()), out_at_start_(visitor.bytes_out) {
    visitor.answered = 0;
    record.tls = tls;
}

void request_tally::head(const http::message_head& h) {
    head_done_ = true;
    head_ = &h;
    record.method = h.method;
    record.target = h.target;
    record.version = h.version;
    if (!ctx_.access_log) return;
    if (const std::string* v = h.find("host")) record.host = *v;
    if (const std::string* v = h.find("referer")) record.referer = *v;
    if (const std::string* v = h.find("user-agent")) record.user_agent = *v;
    if (const std::string* v = h.find("x-request-id"); v && v->size() <= 64)
        record.request_id = *v;
}

void request_tally::site(const route::site& s) {
    site_ = &s;
    record.site = s.hosts.front();
}

void request_tally::routed(const route::route& r, std::string_view site, std::string_view tunnel) {
    route_ = &r;
    tunnel_ = !tunnel.empty();
    record.site = site;
    record.tunnel = tunnel;
    record.route = r.path.empty() ? std::string_view("/") : std::string_view(r.path);
}

request_tally::~request_tally() {
    // A kept-alive connection that closed between requests made none.
    if (!head_done_ && visitor_.answered == 0) return;
    if (record.status == 0) record.status = visitor_.answered;
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - start_);
    auto& counters = ctx_.counters;
    observe::request_counts& counts =
        route_ && tunnel_ ? counters.tunnels[route_->metric_slot]
        : route_          ? counters.sites[route_->metric_slot]
        : site_           ? counters.sites[site_->metric_slot]
                          : counters.unrouted;
    counts.add(record.status, took);
    record.bytes_in = visitor_.bytes_in - in_.size() - in_at_start_;  // not a pipelined next one
    record.bytes_out = visitor_.bytes_out - out_at_start_;
    counters.bytes_in += record.bytes_in;
    counters.bytes_out += record.bytes_out;
    if (refusal_) {
        counters.refused(*refusal_);
        remember(observe::event_kind::refusal, observe::name_of(*refusal_));
    }
    if (failure_) {
        counters.failed(*failure_);
        remember(observe::event_kind::error,
                 observe::upstream_failure_names[static_cast<std::size_t>(*failure_)]);
    }
    if (!ctx_.access_log) return;
    record.duration = took;
    record.time = std::chrono::time_point_cast<std::chrono::system_clock::duration>(
        std::chrono::system_clock::now() - took);
    if (refusal_) record.refusal = observe::name_of(*refusal_);
    ctx_.access_log->add(record);
}

void request_tally::remember(observe::event_kind kind, std::string_view reason) {
    const std::string* host = head_ ? head_->find("host") : nullptr;
    ctx_.recent.add({.kind = kind,
                     .reason = reason,
                     .status = record.status,
                     .visitor = record.visitor,
                     .host = host ? std::string_view(*host) : std::string_view(),
                     .method = record.method,
                     .target = record.target,
                     .tunnel = record.tunnel,
                     .site = record.site},
                    noted_);
}

}  // namespace porthole::relay

#include "relay/policy_notice.hpp"

#include <boost/beast/core/string.hpp>

#include <fmt/format.h>

namespace porthole::relay {
namespace {

// Frames a session's queue may hold before notices wait for the next quiet moment: a notice
// never pushes a session that is slow to read toward being closed for it.
constexpr std::size_t notice_queue_room = session_queue_limit / 8;

// Cuts `text` at the last line end that fits a frame's string.
std::string_view fitted(std::string_view text) {
    if (text.size() <= protocol::max_string) return text;
    const auto end = text.substr(0, protocol::max_string).rfind("\r\n");
    return end == std::string_view::npos ? std::string_view() : text.substr(0, end + 2);
}

}  // namespace

protocol::policy_answered policy_notice(std::uint32_t tunnel_id, std::string_view policy,
                                        unsigned status, std::string_view visitor,
                                        const http::message_head& request,
                                        std::string_view response) {
    std::string head = fmt::format("{} {} HTTP/1.{}\r\n", request.method, request.target,
                                   request.version == 10 ? 0 : 1);
    for (const auto& f : request.fields) {
        const bool credentials = boost::beast::iequals(f.name, "authorization") ||
                                 boost::beast::iequals(f.name, "proxy-authorization");
        head.append(f.name).append(": ").append(credentials ? "[redacted]" : f.value).append("\r\n");
    }
    head.append("\r\n");
    const auto split = response.find("\r\n\r\n");
    const std::string_view response_head =
        split == std::string_view::npos ? response : response.substr(0, split + 4);
    const std::string_view body =
        split == std::string_view::npos ? std::string_view() : response.substr(split + 4);
    return protocol::policy_answered{tunnel_id,
                                     static_cast<std::uint16_t>(status),
                                     std::string(policy),
                                     std::string(visitor),
                                     std::string(fitted(head)),
                                     std::string(fitted(response_head)),
                                     std::string(body.substr(0, protocol::max_string))};
}

namespace {

// The first member of `name` whose session hears notices, when its budget and queue allow one
// now: `make(tunnel_id)` makes the notice only then.
template <typename Make>
void deliver(tunnel_registry& registry, const std::string& name, Make&& make) {
    tunnel_group* group = registry.local(protocol::tunnel_kind::http, name);
    if (!group) return;
    for (const auto& t : group->members) {
        const auto s = t->owner.lock();
        if (!s || s->closed || s->version < 4) continue;
        if (s->out.pending_bytes() > notice_queue_room ||
            !t->policy_notices.take(core::token_bucket::clock::now()))
            return;
        s->send(make(t->id));
        return;
    }
}

}  // namespace

void notify_policy_answer(tunnel_registry& registry, const std::string& name,
                          std::string_view policy, unsigned status, std::string_view visitor,
                          const http::message_head& request, std::string_view response) {
    deliver(registry, name, [&](std::uint32_t id) {
        return policy_notice(id, policy, status, visitor, request, response);
    });
}

void send_policy_notice(tunnel_registry& registry, const std::string& name,
                        protocol::policy_answered notice) {
    deliver(registry, name, [&](std::uint32_t id) {
        notice.tunnel_id = id;
        return std::move(notice);
    });
}

}  // namespace porthole::relay

#pragma once
// Tells a tunnel's client that a policy of the relay answered one of its visitors itself
// (POLICY_ANSWERED, protocol version 4), so the client's inspector and request events show the
// request although it never reached the client. Bounded: a flood of refused visitors costs the
// client's session at most a few frames a second and never fills its queue.
#include "http/message_head.hpp"
#include "protocol/frame.hpp"
#include "relay/tunnel_registry.hpp"

#include <string>
#include <string_view>

namespace porthole::relay {

// The frame: the request head as the relay read it (Authorization and Proxy-Authorization
// values redacted: a visitor's failed credentials are not the tunnel owner's to read), the
// response as sent.
protocol::policy_answered policy_notice(std::uint32_t tunnel_id, std::string_view policy,
                                        unsigned status, std::string_view visitor,
                                        const http::message_head& request,
                                        std::string_view response);

// Sends the notice to a connected client of tunnel `name` whose session speaks version 4, when
// that tunnel's notice budget allows and the session's queue has room; otherwise drops it.
void notify_policy_answer(tunnel_registry& registry, const std::string& name,
                          std::string_view policy, unsigned status, std::string_view visitor,
                          const http::message_head& request, std::string_view response);
// The same for a notice another event loop made (its tunnel id is set here).
void send_policy_notice(tunnel_registry& registry, const std::string& name,
                        protocol::policy_answered notice);

}  // namespace porthole::relay

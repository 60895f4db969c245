#pragma once
// The admin API's endpoints: a request's method, path and JSON body in, a status and a JSON
// document out, read from and done through relay_control (docs/design-operations.md#admin-api).
#include "admin/relay_control.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace porthole::admin {

struct api_request {
    std::string_view method;  // "GET"
    std::string_view path;  // "/api/clients", without the query
    std::string_view body;
    std::string_view limit;  // ?limit=, "" when not given
    std::string who;  // "uid 1000 (pid 4242)" or "127.0.0.1:51234", for log lines
    std::string_view url{};     // ?url= (DELETE /api/cache)
    std::string_view prefix{};  // ?prefix= (DELETE /api/cache)
};

struct api_answer {
    int status = 200;
    std::string body;  // a JSON document and a newline
};

// Lists stop at this many entries unless ?limit= says fewer.
inline constexpr std::size_t list_limit = 1000;

api_answer handle(relay_control& relay, const api_request& req);

// "2025-05-01T10:02:11Z".
std::string rfc3339(unix_seconds t);

// One refusal or relay-made error as a JSON document, without a newline: an item of
// GET /api/recent and the data of a `refusal` or `error` server-sent event.
std::string event_json(const observe::recent_event& e);

}  // namespace porthole::admin

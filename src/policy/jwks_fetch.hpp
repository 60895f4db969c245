#pragma once
// The key rings of jwt policies with a jwks_url: the URL's JWK Set is fetched when the relay
// starts and again every jwks_refresh, over HTTP or HTTPS (verified against the system's CAs, as
// an https backend is). A failed fetch keeps the keys the ring has and is tried again sooner,
// backing off from 1 s to the refresh interval. One ring per URL, shared by every jwt policy that
// names it (each tunnel's too), so a URL is fetched once however many routes use it. The
// fetches run on the first event loop; every loop builds its routes with the same rings.
#include "config/policy_config.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <tl/expected.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::policy {

class jwks_fetcher;
class key_ring;  // policy/key_ring.hpp

class jwks_sources {
public:
    jwks_sources();
    ~jwks_sources();
    jwks_sources(const jwks_sources&) = delete;
    jwks_sources& operator=(const jwks_sources&) = delete;

    // A ring for each jwks_url of `configs` not seen before. Its host is resolved here
    // (blocking, at start, as a backend's is): a name that does not resolve stops the start.
    // Policies naming one URL with different jwks_refresh share the shortest.
    tl::expected<void, std::string> add(const std::vector<config::policy_config>& configs);
    // The ring of a URL given to add(), else an empty one (its requests get 401 "no keys").
    std::shared_ptr<const key_ring> ring(const std::string& url) const;
    // The first fetch of each URL now, then each refresh, on `ex`, until stop().
    void start(const boost::asio::any_io_executor& ex);
    void stop();

private:
    // add() runs on the first loop (start, reload), ring() on any loop building its routes.
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<jwks_fetcher>> fetchers_;
};

// The body of a complete HTTP/1.1 response to a JWK Set request, read from `bytes` (all that
// arrived; `eof`: the server has closed): nullopt while more bytes are needed, an error for a
// status other than 200, a malformed response or a body over `max_body` bytes.
tl::expected<std::optional<std::string>, std::string> fetched_body(std::string_view bytes, bool eof,
                                                                   std::size_t max_body);

}  // namespace porthole::policy

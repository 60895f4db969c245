#pragma once
// One HTTPS exchange with the ACME server: a connection per request (a handful
// per order), the CA's TLS verified against the system store plus `ca_root`,
// with SNI; the answer read whole (bounded), with the headers RFC 8555 uses.
// Every URL must be on the directory's origin: its host is resolved once, at
// start, as a backend's is (the relay runs no resolver thread).
#include "config/site_config.hpp"
#include "upstream/backend_connect.hpp"

#include <boost/asio/awaitable.hpp>
#include <tl/expected.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::acme {

struct ca_origin {
    config::upstream_member origin;  // https://HOST:PORT of the directory
    std::vector<boost::asio::ip::tcp::endpoint> addresses;
    upstream::backend_tls tls;
};

// From the directory URL; blocking (a name lookup).
tl::expected<ca_origin, std::string> make_ca_origin(const std::string& directory_url,
                                                    const std::string& ca_root);

struct ca_reply {
    int status = 0;
    std::string nonce{};  // Replay-Nonce
    std::string location{};
    std::string content_type{};
    long retry_after = 0;  // seconds, from Retry-After (delta form); 0 when absent
    std::string body{};
};

// How the ACME client reaches its CA: over HTTPS in the relay, recorded answers in tests.
class ca_transport {
public:
    virtual ~ca_transport() = default;
    // GET `url` (`post` false, `body` empty) or POST `body` as application/jose+json.
    virtual boost::asio::awaitable<tl::expected<ca_reply, std::string>> exchange(
        const std::string& url, const std::string& body, bool post) = 0;
};
// The relay's: exchange() below, to `ca`.
std::unique_ptr<ca_transport> https_transport(ca_origin ca);

// GET `url` (empty `body` and `jose` false) or POST `body` as
// application/jose+json.
boost::asio::awaitable<tl::expected<ca_reply, std::string>> exchange(ca_origin& ca,
                                                                     const std::string& url,
                                                                     const std::string& body,
                                                                     bool post);

// The target of `url` if it is on the CA's origin (same scheme, host and port),
// else nullopt.
std::optional<std::string> target_on(const ca_origin& ca, std::string_view url);

// The status line and headers of `bytes` read so far, with the body once whole
// (`eof`: the server has closed); nullopt while more bytes are needed. Pure,
// for tests.
tl::expected<std::optional<ca_reply>, std::string> read_reply(std::string_view bytes, bool eof);

}  // namespace porthole::acme

#include "acme/acme_http.hpp"

#include "config/policy_config.hpp"
#include "http/whole_response.hpp"
#include "net/tls.hpp"
#include "upstream/one_request.hpp"

#include <fmt/format.h>
#include <boost/beast/core/string.hpp>

#include <charconv>

namespace porthole::acme {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {
constexpr std::size_t max_body = 1024 * 1024;  // a certificate chain is a few KiB
constexpr auto connect_timeout = 10s;
}  // namespace

tl::expected<ca_origin, std::string> make_ca_origin(const std::string& directory_url,
                                                    const std::string& ca_root) {
    const auto parts = config::split_url(directory_url);
    if (!parts) return tl::unexpected(fmt::format("acme ca {}", parts.error()));
    auto origin = config::parse_member(parts->first);
    if (!origin || origin->kind != config::upstream_member::scheme::https)
        return tl::unexpected(
            fmt::format("acme ca '{}' is not an https:// directory URL", directory_url));
    auto addresses = upstream::resolve_member(*origin);
    if (!addresses)
        return tl::unexpected(fmt::format("acme ca {}: {}", directory_url, addresses.error()));
    auto ctx = net::make_client_tls({});
    if (!ctx) return tl::unexpected(ctx.error());
    if (!ca_root.empty()) {
        boost::system::error_code ec;
        ctx->load_verify_file(ca_root, ec);
        if (ec)
            return tl::unexpected(
                fmt::format("acme ca_root {}: cannot load it: {}", ca_root, ec.message()));
    }
    return ca_origin{
        std::move(*origin), std::move(*addresses),
        upstream::backend_tls{ca_root, std::make_shared<asio::ssl::context>(std::move(*ctx))}};
}

std::optional<std::string> target_on(const ca_origin& ca, std::string_view url) {
    const auto parts = config::split_url(url);
    if (!parts) return std::nullopt;
    const auto origin = config::parse_member(parts->first);
    if (!origin || origin->kind != ca.origin.kind || origin->port != ca.origin.port ||
        !boost::beast::iequals(origin->host, ca.origin.host))
        return std::nullopt;
    return parts->second.empty() ? std::string("/") : parts->second;
}

namespace {
ca_reply reply_of(http::whole_response got) {
    const auto& head = got.head;
    ca_reply out;
    out.status = static_cast<int>(head.status);
    const auto text = [&](const char* name) {
        const std::string* v = head.find(name);
        return v ? *v : std::string();
    };
    out.nonce = text("replay-nonce");
    out.location = text("location");
    out.content_type = text("content-type");
    const std::string retry = text("retry-after");
    long seconds = 0;
    if (!retry.empty() &&
        std::from_chars(retry.data(), retry.data() + retry.size(), seconds).ec == std::errc())
        out.retry_after = std::clamp(seconds, 0L, 86400L);
    out.body = std::move(got.body);
    return out;
}
}  // namespace

tl::expected<std::optional<ca_reply>, std::string> read_reply(std::string_view bytes, bool eof) {
    auto got = http::read_whole_response(bytes, eof, max_body);
    if (!got) return tl::unexpected(got.error());
    if (!*got) return std::optional<ca_reply>();
    return std::optional<ca_reply>(reply_of(std::move(**got)));
}

asio::awaitable<tl::expected<ca_reply, std::string>> exchange(ca_origin& ca, const std::string& url,
                                                              const std::string& body, bool post) {
    const auto target = target_on(ca, url);
    if (!target)
        co_return tl::unexpected(fmt::format("the CA sent a URL off its own origin: {}", url));
    upstream::one_request_spec spec;
    spec.method = post ? "POST" : "GET";
    spec.target = *target;
    spec.headers = "Accept: application/json, application/pem-certificate-chain\r\n";
    if (post) spec.headers += "Content-Type: application/jose+json\r\n";
    spec.body = body;
    spec.max_body = max_body;
    auto got =
        co_await upstream::one_request(ca.origin, ca.addresses, &ca.tls, spec, connect_timeout);
    if (!got) co_return tl::unexpected(got.error());
    co_return reply_of(std::move(*got));
}

namespace {
class https_ca_transport final : public ca_transport {
public:
    explicit https_ca_transport(ca_origin ca) : ca_(std::move(ca)) {}
    asio::awaitable<tl::expected<ca_reply, std::string>> exchange(const std::string& url,
                                                                  const std::string& body,
                                                                  bool post) override {
        co_return co_await acme::exchange(ca_, url, body, post);
    }

private:
    ca_origin ca_;
};
}  // namespace

std::unique_ptr<ca_transport> https_transport(ca_origin ca) {
    return std::make_unique<https_ca_transport>(std::move(ca));
}

}  // namespace porthole::acme

#pragma once
// compress: responses of listed media types compressed on their way to the visitor (zstd, br or
// gzip, as Accept-Encoding and the route's preference agree), as their bytes arrive. The step
// only marks the request; the edge gives the forwarding core a response_compressor, which judges
// the response's head and encodes its body. docs/policies.md has the rules.
#include "config/policy_config.hpp"
#include "http/accept_encoding.hpp"
#include "http/content_encoder.hpp"
#include "http/response_transform.hpp"
#include "policy/policy.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::policy {

class compression final : public policy {
public:
    explicit compression(const config::compress_settings& s);
    // Lets every request through; the last compress step of a chain is the one that counts.
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "compress"; }

    const std::vector<http::content_coding>& offered() const { return offered_; }
    int level(http::content_coding c) const;
    std::uint64_t min_length() const { return s_.min_length; }
    // Whether a Content-Type value's media type is one of `types`.
    bool listed(std::string_view content_type) const;

private:
    config::compress_settings s_;
    std::vector<http::content_coding> offered_;
};

// What the request says about compressing its response, read once from its head.
struct compress_request {
    std::optional<http::content_coding> coding;  // what Accept-Encoding and the route agree on
    bool allowed = true;  // not HEAD, no Range, no Cache-Control: no-transform, no upgrade
};
compress_request read_request(const compression& policy, const http::message_head& request,
                              bool upgrade);

// What to do with one final response: pure, from its status, its raw head and the length its
// framing announces.
struct compress_plan {
    std::optional<http::content_coding> coding;  // nullopt: the body goes as it is
    bool vary = false;  // add Vary: Accept-Encoding (a listed type whose Vary does not say it)
};
compress_plan plan_response(const compression& policy, const compress_request& request,
                            unsigned status, std::string_view head,
                            std::optional<std::uint64_t> content_length);

// The head edits of `plan` for the response head `head`: Vary, and when compressing
// Content-Encoding, a weakened ETag, no Accept-Ranges. The forwarding core does the framing.
void edit_for(const compress_plan& plan, std::string_view head, http::header_edits& edits);

// One exchange's view of a compress policy, given to the forwarding core.
class response_compressor final : public http::response_transform {
public:
    response_compressor(const compression& policy, const http::message_head& request, bool upgrade)
        : policy_(policy), request_(read_request(policy, request, upgrade)) {}
    http::content_encoder* begin(const http::framer<false>& response, std::string_view head,
                                 http::header_edits& edits) override;

private:
    const compression& policy_;
    compress_request request_;
    http::encoder_handle encoder_;
};

}  // namespace porthole::policy

#include "policy/compress.hpp"

#include <boost/beast/core/string.hpp>

#include <array>

namespace porthole::policy {

namespace beast = boost::beast;

namespace {

// The media type of a Content-Type value, without parameters or the spaces around it.
std::string_view media_type(std::string_view value) {
    value = value.substr(0, value.find(';'));
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    return value;
}

bool compressible_status(unsigned status) {
    // No content (204, 205, 304), or a part of one (206): nothing to compress.
    return status >= 200 && status != 204 && status != 205 && status != 206 && status != 304;
}

}  // namespace

compression::compression(const config::compress_settings& s) : s_(s) {
    for (const auto& name : s_.encodings)
        if (auto c = http::coding_named(name)) offered_.push_back(*c);
}

std::optional<answer> compression::on_request(request_context& r) {
    r.compress = this;
    return std::nullopt;
}

int compression::level(http::content_coding c) const {
    switch (c) {
        case http::content_coding::gzip: return s_.gzip_level;
        case http::content_coding::br: return s_.br_level;
        case http::content_coding::zstd: return s_.zstd_level;
    }
    return 1;
}

bool compression::listed(std::string_view content_type) const {
    const std::string_view type = media_type(content_type);
    const std::size_t slash = type.find('/');
    if (slash == std::string_view::npos) return false;
    for (const auto& t : s_.types) {
        if (t.size() == slash + 2 && t.ends_with("/*")) {
            if (beast::iequals(type.substr(0, slash + 1), std::string_view(t).substr(0, slash + 1)))
                return true;
        } else if (beast::iequals(type, t)) {
            return true;
        }
    }
    return false;
}

compress_request read_request(const compression& policy, const http::message_head& request,
                              bool upgrade) {
    compress_request out;
    out.allowed = request.method != "HEAD" && !upgrade;
    std::array<std::string_view, 16> accepted;
    std::size_t fields = 0;
    for (const auto& f : request.fields) {
        if (beast::iequals(f.name, "accept-encoding")) {
            if (fields < accepted.size()) accepted[fields++] = f.value;
        } else if (beast::iequals(f.name, "range")) {
            out.allowed = false;  // the parts asked for are of the content as it is
        } else if (beast::iequals(f.name, "cache-control") &&
                   http::has_token(f.value, "no-transform")) {
            out.allowed = false;
        }
    }
    if (out.allowed)
        out.coding = http::negotiate(std::span(accepted.data(), fields), policy.offered());
    return out;
}

compress_plan plan_response(const compression& policy, const compress_request& request,
                            unsigned status, std::string_view head,
                            std::optional<std::uint64_t> content_length) {
    std::string_view content_type;
    bool encoded = false, partial = false, no_transform = false, varies = false,
         other_transfer_coding = false;
    http::for_each_field(head, [&](std::string_view name, std::string_view value) {
        if (beast::iequals(name, "content-type")) content_type = value;
        else if (beast::iequals(name, "content-encoding")) encoded = true;
        else if (beast::iequals(name, "content-range")) partial = true;
        else if (beast::iequals(name, "cache-control"))
            no_transform = no_transform || http::has_token(value, "no-transform");
        else if (beast::iequals(name, "vary"))
            varies = varies || http::has_token(value, "accept-encoding") ||
                     http::has_token(value, "*");
        else if (beast::iequals(name, "transfer-encoding"))
            other_transfer_coding = !beast::iequals(value, "chunked");
    });
    compress_plan plan;
    if (content_type.empty() || encoded || !policy.listed(content_type)) return plan;
    plan.vary = !varies;
    if (!request.allowed || !request.coding || !compressible_status(status) || partial ||
        no_transform || other_transfer_coding ||
        (content_length && *content_length < policy.min_length()))
        return plan;
    plan.coding = request.coding;
    return plan;
}

void edit_for(const compress_plan& plan, std::string_view head, http::header_edits& edits) {
    if (plan.vary) edits.add.push_back({"Vary", "Accept-Encoding"});
    if (!plan.coding) return;
    edits.add.push_back({"Content-Encoding", std::string(http::coding_name(*plan.coding))});
    // The ranges of the content as it is are not ranges of the compressed one.
    edits.remove.emplace_back("accept-ranges");
    // A strong validator names these exact bytes; the compressed ones are only equivalent.
    std::string_view etag;
    http::for_each_field(head, [&](std::string_view name, std::string_view value) {
        if (beast::iequals(name, "etag") && etag.empty()) etag = value;
    });
    if (etag.empty() || etag.starts_with("W/")) return;
    edits.remove.emplace_back("etag");
    if (etag.starts_with('"')) edits.add.push_back({"ETag", "W/" + std::string(etag)});
}

http::content_encoder* response_compressor::begin(const http::framer<false>& response,
                                                  std::string_view head,
                                                  http::header_edits& edits) {
    encoder_.reset();
    const auto length = response.content_length();
    const compress_plan plan =
        plan_response(policy_, request_, response.head().status, head,
                      length ? std::optional<std::uint64_t>(*length) : std::nullopt);
    compress_plan made = plan;
    if (plan.coding) {
        encoder_ = http::make_encoder(*plan.coding, policy_.level(*plan.coding));
        if (!encoder_) made.coding.reset();  // no memory for one: sent as it is
    }
    edit_for(made, head, edits);
    return encoder_.get();
}

}  // namespace porthole::policy

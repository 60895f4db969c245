// Any answer from an ACME server: each parser reads it without crashing, and
// what it accepts keeps its promises (https URLs, base64url tokens); the HTTP
// reader stays within its bounds.
#include "acme/acme_http.hpp"
#include "acme/acme_messages.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace porthole::acme;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto https = [](const std::string& url) { return url.starts_with("https://"); };
    if (auto d = parse_directory(text))
        if (!https(d->new_nonce) || !https(d->new_account) || !https(d->new_order)) std::abort();
    if (auto o = parse_order(text)) {
        if (!https(o->finalize)) std::abort();
        for (const auto& a : o->authorizations)
            if (!https(a)) std::abort();
        if (o->status == "valid" && !https(o->certificate)) std::abort();
    }
    if (auto a = parse_authorization(text))
        for (const auto& c : a->challenges)
            if (!https(c.url) || !std::all_of(c.token.begin(), c.token.end(), [](char ch) {
                    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
                }))
                std::abort();
    if (auto p = parse_problem(text)) (void)p->text();
    for (const bool eof : {false, true})
        if (auto r = read_reply(text, eof); r && *r && (*r)->body.size() > size) std::abort();
    return 0;
}

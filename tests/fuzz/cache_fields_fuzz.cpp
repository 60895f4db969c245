// Any response and request fields (the input's lines, "Name: value") through the cache's rules:
// Cache-Control, dates, Vary and Range never fault; what is judged storable has a lifetime the
// rules can compute; an answer made from a stored response stays inside its body and its head
// is well formed. The disk tier's reader takes any bytes (their CRC made right, so that the
// fuzzer reaches the header's parser) and reads back what its writer wrote.
#include "cache/disk_store.hpp"
#include "cache/freshness.hpp"
#include "cache/stored_response.hpp"
#include "http/token_char.hpp"

#include <zlib.h>

#include <algorithm>

#include <cstdlib>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace porthole;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<http::field> fields;
    for (std::string_view rest = input; !rest.empty();) {
        const auto eol = rest.find('\n');
        const std::string_view line = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string value(line.substr(colon + 1));
        if (value.find_first_of("\r\n") != std::string::npos) continue;
        fields.push_back({std::string(line.substr(0, colon)), std::move(value)});
    }
    http::message_head request;
    request.method = "GET";
    request.target = "/";
    request.fields = fields;

    cache::freshness_rules rules;
    rules.default_ttl = size % 3 == 0 ? 0 : 60;
    const auto asked = cache::facts_of(request);
    for (const unsigned status : {200u, 203u, 301u, 404u, 500u}) {
        const auto facts = cache::facts_of(status, fields);
        (void)cache::refusal_to_store("GET", asked, facts, rules);
        const auto lifetime = cache::freshness_lifetime(facts, rules);
        const auto age = cache::current_age(facts, 1000, 1001, 1002);
        (void)cache::judge(facts, asked, lifetime, age);
        (void)cache::usable_on_error(facts, asked, age);
    }

    cache::stored_response stored;
    stored.status = 200;
    stored.fields = cache::storable_fields(fields, 784111777);
    stored.facts = cache::facts_of(200, stored.fields);
    stored.body.assign(size % 97, 'x');
    stored.vary_values = cache::vary_values(stored.facts.vary, request);
    if (!cache::vary_matches(stored, request)) std::abort();  // the request it was chosen by
    const auto shape = cache::shape_answer(stored, request);
    if (shape.first > stored.body.size() || shape.length > stored.body.size() - shape.first)
        std::abort();
    const std::string head = cache::answer_head(stored, shape, {3, "porthole; hit", false, 11});
    if (!head.ends_with("\r\n\r\n")) std::abort();
    cache::refresh(stored, fields, 1, 2, rules);

    // A file as the disk tier would find it, its CRC right for its bytes.
    if (size >= 24 && input.starts_with("PHCACHE1")) {
        std::string file(input);
        const auto crc = static_cast<std::uint32_t>(
            crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(file.data() + 24),
                    file.size() - 24));
        for (int i = 0; i < 4; ++i) file[20 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
        if (const auto d = cache::disk_store::decode(file)) {
            const auto h = cache::answer_head(*d->stored, cache::shape_answer(*d->stored, request),
                                              {0, "porthole; hit", false, 11});
            if (!h.ends_with("\r\n\r\n")) std::abort();
        }
    }
    const bool sound = std::all_of(stored.fields.begin(), stored.fields.end(), [](const auto& f) {
        return !f.name.empty() && std::all_of(f.name.begin(), f.name.end(), http::token_char) &&
               f.value.find('\0') == std::string::npos;
    });
    const auto again = cache::disk_store::decode(cache::disk_store::encode("http://a/", stored));
    if (sound && (!again || again->stored->body != stored.body ||
                  again->stored->fields.size() != stored.fields.size()))
        std::abort();
    return 0;
}

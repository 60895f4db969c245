#pragma once
// Accept-Encoding (RFC 9110 section 12.5.3) against the content codings a route offers, in the
// route's order of preference. Pure: fuzzed, since the field is the visitor's.
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace porthole::http {

enum class content_coding : std::uint8_t { gzip, br, zstd };

// "gzip", "br", "zstd": the token of Content-Encoding and Accept-Encoding.
std::string_view coding_name(content_coding c);
std::optional<content_coding> coding_named(std::string_view name);  // exact, lowercase

// The coding to send for a request whose Accept-Encoding field values are `accepted` (every
// field of the name, in order; none: the field is absent): the offered coding with the highest
// weight above 0, ties going to the earlier in `offered`; nullopt (send the content as it is)
// when the field is absent or empty, no offered coding is acceptable, or the visitor weighs
// identity (or "*", when identity is not named) above every acceptable one. Codings are matched case-insensitively ("x-gzip" is
// gzip); a coding not named takes the weight of "*", else is not acceptable. An element whose
// weight is malformed is ignored.
std::optional<content_coding> negotiate(std::span<const std::string_view> accepted,
                                        std::span<const content_coding> offered);

}  // namespace porthole::http

#include "net/proxy_protocol.hpp"

#include "net/network_list.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <utility>

namespace porthole::net {
namespace {

namespace ip = boost::asio::ip;

constexpr std::string_view v1_signature = "PROXY ";
constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t v2_fixed_size = 16;  // signature, version and command, family, length
constexpr std::size_t v4_block = 2 * 4 + 2 * 2;
constexpr std::size_t v6_block = 2 * 16 + 2 * 2;

proxy_parse fail(std::string& error, std::string_view why) {
    error.assign(why);
    return proxy_parse::invalid;
}

// Whether `have`, which may be cut short, can still turn out to begin with `prefix`.
bool may_start_with(std::string_view have, std::string_view prefix) {
    const auto n = std::min(have.size(), prefix.size());
    return have.substr(0, n) == prefix.substr(0, n);
}

unsigned byte_at(std::string_view b, std::size_t at) {
    return static_cast<unsigned char>(b[at]);
}

// Digits at the front of `s`, consumed: no sign, no leading zero but in "0" itself (the spec
// forbids them, lest they read as octal), at most `max`.
std::optional<unsigned> take_decimal(std::string_view& s, unsigned max) {
    std::size_t n = 0;
    unsigned value = 0;
    for (; n < s.size() && s[n] >= '0' && s[n] <= '9'; ++n) {
        value = value * 10 + static_cast<unsigned>(s[n] - '0');
        if (value > max) return std::nullopt;
    }
    if (n == 0 || (n > 1 && s[0] == '0')) return std::nullopt;
    s.remove_prefix(n);
    return value;
}

std::optional<unsigned short> parse_port(std::string_view s) {
    const auto port = take_decimal(s, 65535);
    if (!port || !s.empty()) return std::nullopt;
    return static_cast<unsigned short>(*port);
}

std::optional<ip::address> parse_v4(std::string_view s) {
    ip::address_v4::bytes_type bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i > 0) {
            if (s.empty() || s.front() != '.') return std::nullopt;
            s.remove_prefix(1);
        }
        const auto part = take_decimal(s, 255);
        if (!part) return std::nullopt;
        bytes[i] = static_cast<unsigned char>(*part);
    }
    if (!s.empty()) return std::nullopt;
    return ip::address_v4(bytes);
}

std::optional<ip::address> parse_v6(std::string_view s) {
    char text[INET6_ADDRSTRLEN];
    // inet_pton would stop at a NUL and accept what came before it
    if (s.size() >= sizeof text || s.find('\0') != std::string_view::npos) return std::nullopt;
    s.copy(text, s.size());
    text[s.size()] = '\0';
    ip::address_v6::bytes_type bytes{};
    if (::inet_pton(AF_INET6, text, bytes.data()) != 1) return std::nullopt;
    return ip::address_v6(bytes);
}

// The line between "PROXY " and CRLF; `size` is the whole header's.
proxy_parse parse_v1_line(std::string_view line, std::size_t size, proxy_header& out,
                          std::string& error) {
    const auto family = line.substr(0, line.find(' '));
    if (family == "UNKNOWN") {  // the rest of the line may be anything and means nothing
        out = proxy_header{.local = true, .size = size};
        return proxy_parse::done;
    }
    const bool v4 = family == "TCP4";
    if (!v4 && family != "TCP6") return fail(error, "PROXY v1: unknown protocol family");

    std::array<std::string_view, 5> field;  // family, source, destination, their ports
    std::size_t count = 0;
    for (std::size_t start = 0; start != std::string_view::npos;) {
        if (count == field.size()) return fail(error, "PROXY v1: wrong number of fields");
        const auto space = line.find(' ', start);
        field[count++] = line.substr(start, space - start);
        start = space == std::string_view::npos ? space : space + 1;
    }
    if (count != field.size()) return fail(error, "PROXY v1: wrong number of fields");

    const auto source = v4 ? parse_v4(field[1]) : parse_v6(field[1]);
    if (!source) return fail(error, "PROXY v1: bad source address");
    const auto destination = v4 ? parse_v4(field[2]) : parse_v6(field[2]);
    if (!destination) return fail(error, "PROXY v1: bad destination address");
    const auto source_port = parse_port(field[3]);
    if (!source_port) return fail(error, "PROXY v1: bad source port");
    const auto destination_port = parse_port(field[4]);
    if (!destination_port) return fail(error, "PROXY v1: bad destination port");
    out = proxy_header{.source = {*source, *source_port},
                       .destination = {*destination, *destination_port},
                       .size = size};
    return proxy_parse::done;
}

// `bytes` begins with "PROXY ".
proxy_parse parse_v1(std::string_view bytes, proxy_header& out, std::string& error) {
    const auto window = bytes.substr(0, proxy_v1_max_size);
    const auto end = window.find_first_of("\r\n", v1_signature.size());
    if (end != std::string_view::npos && window[end] == '\n')
        return fail(error, "PROXY v1: LF without CR");
    if (end != std::string_view::npos && end + 1 < window.size()) {
        if (window[end + 1] != '\n') return fail(error, "PROXY v1: CR without LF");
        const auto line = window.substr(v1_signature.size(), end - v1_signature.size());
        return parse_v1_line(line, end + 2, out, error);
    }
    if (window.size() == proxy_v1_max_size) return fail(error, "PROXY v1: no CRLF in 107 bytes");
    // Reject a wrong family now rather than after up to 107 bytes of it.
    const auto family = window.substr(v1_signature.size(), end - v1_signature.size());
    if (!may_start_with(family, "TCP4 ") && !may_start_with(family, "TCP6 ") &&
        !may_start_with(family, "UNKNOWN"))
        return fail(error, "PROXY v1: unknown protocol family");
    return proxy_parse::need_more;
}

template <std::size_t N>
std::array<unsigned char, N> bytes_at(std::string_view b, std::size_t at) {
    std::array<unsigned char, N> bytes{};
    for (std::size_t i = 0; i < N; ++i) bytes[i] = static_cast<unsigned char>(b[at + i]);
    return bytes;
}

unsigned short port_at(std::string_view b, std::size_t at) {
    return static_cast<unsigned short>(byte_at(b, at) << 8 | byte_at(b, at + 1));
}

// `bytes` begins with the 12-byte signature.
proxy_parse parse_v2(std::string_view bytes, proxy_header& out, std::string& error) {
    if (bytes.size() < 13) return proxy_parse::need_more;
    if (byte_at(bytes, 12) >> 4 != 2) return fail(error, "PROXY v2: unsupported version");
    const unsigned command = byte_at(bytes, 12) & 0xf;  // 0 LOCAL, 1 PROXY
    if (command > 1) return fail(error, "PROXY v2: unsupported command");
    if (bytes.size() < 14) return proxy_parse::need_more;
    const unsigned family = byte_at(bytes, 13) >> 4;       // UNSPEC, INET, INET6, UNIX
    const unsigned transport = byte_at(bytes, 13) & 0xf;  // UNSPEC, STREAM, DGRAM
    if (family > 3) return fail(error, "PROXY v2: unsupported address family");
    if (transport > 2) return fail(error, "PROXY v2: unsupported transport protocol");
    if (bytes.size() < v2_fixed_size) return proxy_parse::need_more;
    const std::size_t length = byte_at(bytes, 14) << 8 | byte_at(bytes, 15);
    if (length > proxy_v2_max_length) return fail(error, "PROXY v2: length over 4096 bytes");
    // The spec lets a receiver treat the valid combinations it doesn't carry as UNSPEC.
    const bool tcp = command == 1 && transport == 1 && (family == 1 || family == 2);
    if (tcp && family == 1 && length < v4_block)
        return fail(error, "PROXY v2: address block too short for IPv4");
    if (tcp && family == 2 && length < v6_block)
        return fail(error, "PROXY v2: address block too short for IPv6");
    if (bytes.size() < v2_fixed_size + length) return proxy_parse::need_more;

    proxy_header header{.local = !tcp, .size = v2_fixed_size + length};
    const auto block = bytes.substr(v2_fixed_size);  // addresses, then TLVs we skip
    if (tcp && family == 1) {
        header.source = {ip::address_v4(bytes_at<4>(block, 0)), port_at(block, 8)};
        header.destination = {ip::address_v4(bytes_at<4>(block, 4)), port_at(block, 10)};
    } else if (tcp) {
        header.source = {ip::address_v6(bytes_at<16>(block, 0)), port_at(block, 32)};
        header.destination = {ip::address_v6(bytes_at<16>(block, 16)), port_at(block, 34)};
    }
    out = header;
    return proxy_parse::done;
}

ip::address as_v6(const ip::address& a) {
    if (a.is_v6()) return a;
    return ip::make_address_v6(ip::v4_mapped, a.to_v4());
}

// Both in one family, as both header formats need.
std::pair<ip::address, ip::address> one_family(const ip::address& a, const ip::address& b) {
    auto first = unmapped(a), second = unmapped(b);
    if (first.is_v4() == second.is_v4()) return {first, second};
    return {as_v6(first), as_v6(second)};
}

// From the bytes, not address::to_string, which would add a "%scope" the spec has no room for.
void append_text(std::string& out, const ip::address& a) {
    char text[INET6_ADDRSTRLEN];
    if (a.is_v4()) {
        const auto bytes = a.to_v4().to_bytes();
        ::inet_ntop(AF_INET, bytes.data(), text, sizeof text);
    } else {
        const auto bytes = a.to_v6().to_bytes();
        ::inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
    }
    out += text;
}

void append_decimal(std::string& out, unsigned short port) {
    char digits[5];
    out.append(digits, std::to_chars(digits, digits + sizeof digits, port).ptr);
}

void append_bytes(std::string& out, const ip::address& a) {
    if (a.is_v4()) {
        for (auto b : a.to_v4().to_bytes()) out += static_cast<char>(b);
    } else {
        for (auto b : a.to_v6().to_bytes()) out += static_cast<char>(b);
    }
}

void append_big_endian(std::string& out, unsigned short n) {
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
}

}  // namespace

proxy_parse parse_proxy_header(std::string_view bytes, proxy_header& out, std::string& error) {
    if (may_start_with(bytes, v2_signature)) {
        if (bytes.size() < v2_signature.size()) return proxy_parse::need_more;
        return parse_v2(bytes, out, error);
    }
    if (may_start_with(bytes, v1_signature)) {
        if (bytes.size() < v1_signature.size()) return proxy_parse::need_more;
        return parse_v1(bytes, out, error);
    }
    return fail(error, "not a PROXY protocol header");
}

std::string proxy_v1_header(const ip::tcp::endpoint& src, const ip::tcp::endpoint& dst) {
    const auto [source, destination] = one_family(src.address(), dst.address());
    std::string line;
    line.reserve(proxy_v1_max_size);
    line += source.is_v4() ? "PROXY TCP4 " : "PROXY TCP6 ";
    append_text(line, source);
    line += ' ';
    append_text(line, destination);
    line += ' ';
    append_decimal(line, src.port());
    line += ' ';
    append_decimal(line, dst.port());
    line += "\r\n";
    return line;
}

std::string proxy_v2_header(const ip::tcp::endpoint& src, const ip::tcp::endpoint& dst) {
    const auto [source, destination] = one_family(src.address(), dst.address());
    const bool v4 = source.is_v4();
    std::string header(v2_signature);
    header.reserve(v2_fixed_size + v6_block);
    header += '\x21';  // version 2, PROXY
    header += v4 ? '\x11' : '\x21';  // TCP over IPv4, over IPv6
    append_big_endian(header, static_cast<unsigned short>(v4 ? v4_block : v6_block));
    append_bytes(header, source);
    append_bytes(header, destination);
    append_big_endian(header, src.port());
    append_big_endian(header, dst.port());
    return header;
}

std::string_view proxy_local_header(int version) {
    // v2: the signature, version 2 with the LOCAL command, AF_UNSPEC, no address bytes.
    static constexpr char v2[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    if (version == 1) return "PROXY UNKNOWN\r\n";
    return {v2, sizeof v2 - 1};
}

}  // namespace porthole::net

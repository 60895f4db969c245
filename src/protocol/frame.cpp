#include "protocol/frame.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace porthole::protocol {
namespace {

class writer {
public:
    explicit writer(frame_type t) {
        out_.resize(header_size);
        out_.push_back(static_cast<char>(t));
    }
    void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u16(std::uint16_t v) { be(v, 2); }
    void u32(std::uint32_t v) { be(v, 4); }
    void u64(std::uint64_t v) { be(v, 8); }
    template <std::size_t N>
    void fixed(const std::array<std::uint8_t, N>& a) {
        out_.append(reinterpret_cast<const char*>(a.data()), N);
    }
    void str(std::string_view s) {
        s = s.substr(0, max_string);
        u16(static_cast<std::uint16_t>(s.size()));
        out_.append(s);
    }
    std::string finish() && {
        const auto n = static_cast<std::uint32_t>(out_.size() - header_size);
        for (int i = 0; i < 4; ++i) out_[i] = static_cast<char>(n >> (24 - 8 * i));
        return std::move(out_);
    }

private:
    void be(std::uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<char>(v >> (8 * i)));
    }
    std::string out_;
};

class reader {
public:
    explicit reader(std::span<const std::uint8_t> in) : in_(in) {}
    bool ok() const { return ok_; }
    bool done() const { return ok_ && in_.empty(); }
    std::uint8_t u8() { return static_cast<std::uint8_t>(be(1)); }
    std::uint16_t u16() { return static_cast<std::uint16_t>(be(2)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(be(4)); }
    std::uint64_t u64() { return be(8); }
    template <std::size_t N>
    std::array<std::uint8_t, N> fixed() {
        std::array<std::uint8_t, N> a{};
        if (!take(N)) return a;
        std::copy_n(in_.begin(), N, a.begin());
        in_ = in_.subspan(N);
        return a;
    }
    std::string str() {
        const std::size_t n = u16();
        if (n > max_string) ok_ = false;
        if (!take(n)) return {};
        std::string s(reinterpret_cast<const char*>(in_.data()), n);
        in_ = in_.subspan(n);
        return s;
    }

private:
    bool take(std::size_t n) {
        if (ok_ && in_.size() >= n) return true;
        ok_ = false;
        return false;
    }
    std::uint64_t be(std::size_t n) {
        if (!take(n)) return 0;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v = (v << 8) | in_[i];
        in_ = in_.subspan(n);
        return v;
    }
    std::span<const std::uint8_t> in_;
    bool ok_ = true;
};

// One overload per message: the type tag and the fields in wire order, shared by encode and decode.
template <class Io> void fields(Io& io, hello& m) {
    io(m.min_version); io(m.max_version); io(m.client_id); io(m.agent);
}
template <class Io> void fields(Io& io, challenge& m) { io(m.version); io(m.nonce); }
template <class Io> void fields(Io& io, auth& m) { io(m.proof); }
template <class Io> void fields(Io& io, welcome& m) {
    io(m.session_id); io(m.heartbeat_ms); io(m.pool_size); io(m.open_data_key);
}
template <class Io> void fields(Io& io, error& m) { io(m.code); io(m.message); }
template <class Io> void fields(Io& io, open_tunnel& m) {
    io(m.request_id); io(m.kind); io(m.name); io(m.port); io(m.target); io(m.host_header);
}
template <class Io> void fields(Io& io, tunnel_opened& m) {
    io(m.request_id); io(m.tunnel_id); io(m.url);
}
template <class Io> void fields(Io& io, tunnel_refused& m) {
    io(m.request_id); io(m.code); io(m.message);
}
template <class Io> void fields(Io& io, pool_want& m) { io(m.count); }
template <class Io> void fields(Io& io, ping& m) { io(m.opaque); }
template <class Io> void fields(Io& io, pong& m) { io(m.opaque); }
template <class Io> void fields(Io& io, goaway& m) { io(m.reason); }
template <class Io> void fields(Io& io, data_hello& m) { io(m.session_id); }
template <class Io> void fields(Io& io, data_challenge& m) { io(m.nonce); }
template <class Io> void fields(Io& io, data_auth& m) { io(m.proof); }
template <class Io> void fields(Io& io, stream_start& m) { io(m.tunnel_id); io(m.visitor); }
template <class Io> void fields(Io&, stream_ready&) {}
template <class Io> void fields(Io& io, stream_failed& m) { io(m.message); }
template <class Io> void fields(Io& io, link_open& m) {
    io(m.kind); io(m.name); io(m.port); io(m.visitor);
}
template <class Io> void fields(Io& io, link_ready& m) { io(m.host_header); io(m.target); }
template <class Io> void fields(Io& io, policy_answered& m) {
    io(m.tunnel_id); io(m.status); io(m.policy); io(m.visitor); io(m.request_head);
    io(m.response_head); io(m.response_body);
}

constexpr frame_type type_of(const message& m) {
    constexpr frame_type types[] = {
        frame_type::hello,          frame_type::challenge,    frame_type::auth,
        frame_type::welcome,        frame_type::error,        frame_type::open_tunnel,
        frame_type::tunnel_opened,  frame_type::tunnel_refused, frame_type::pool_want,
        frame_type::ping,           frame_type::pong,         frame_type::goaway,
        frame_type::data_hello,     frame_type::stream_start, frame_type::stream_ready,
        frame_type::stream_failed,  frame_type::data_challenge, frame_type::data_auth,
        frame_type::policy_answered, frame_type::link_open,  frame_type::link_ready,
    };
    static_assert(std::size(types) == std::variant_size_v<message>);
    return types[m.index()];
}

struct encoder {
    writer& w;
    void operator()(std::uint8_t v) { w.u8(v); }
    void operator()(std::uint16_t v) { w.u16(v); }
    void operator()(std::uint32_t v) { w.u32(v); }
    void operator()(std::uint64_t v) { w.u64(v); }
    void operator()(error_code v) { w.u16(static_cast<std::uint16_t>(v)); }
    void operator()(tunnel_kind v) { w.u8(static_cast<std::uint8_t>(v)); }
    void operator()(const std::string& v) { w.str(v); }
    template <std::size_t N> void operator()(const std::array<std::uint8_t, N>& v) { w.fixed(v); }
};

struct decoder {
    reader& r;
    void operator()(std::uint8_t& v) { v = r.u8(); }
    void operator()(std::uint16_t& v) { v = r.u16(); }
    void operator()(std::uint32_t& v) { v = r.u32(); }
    void operator()(std::uint64_t& v) { v = r.u64(); }
    void operator()(error_code& v) { v = static_cast<error_code>(r.u16()); }
    void operator()(tunnel_kind& v) { v = static_cast<tunnel_kind>(r.u8()); }
    void operator()(std::string& v) { v = r.str(); }
    template <std::size_t N> void operator()(std::array<std::uint8_t, N>& v) {
        v = r.fixed<N>();
    }
};

template <std::size_t I = 0>
tl::expected<message, std::string> decode_as(std::uint8_t type, reader& r) {
    if constexpr (I == std::variant_size_v<message>) {
        return tl::unexpected(fmt::format("unknown frame type {}", type));
    } else {
        using M = std::variant_alternative_t<I, message>;
        if (static_cast<std::uint8_t>(type_of(message{std::in_place_index<I>})) != type)
            return decode_as<I + 1>(type, r);
        M m{};
        decoder d{r};
        fields(d, m);
        if constexpr (std::is_same_v<M, open_tunnel>) {
            if (!r.done()) {
                d(m.group);
                const bool has_policies = !r.done();
                if (has_policies) d(m.policies);
                // Absent means none: an empty field present would encode differently.
                if (r.ok() && (has_policies ? m.policies.empty() : m.group.empty()))
                    return tl::unexpected(std::string(has_policies
                                                          ? "OPEN_TUNNEL has an empty policies field"
                                                          : "OPEN_TUNNEL has an empty group field"));
            }
        }
        if (!r.ok())
            return tl::unexpected(fmt::format("frame type {} is truncated or has a string over {} "
                                              "bytes",
                                              type, max_string));
        if (!r.done()) return tl::unexpected(fmt::format("frame type {} has trailing bytes", type));
        if constexpr (std::is_same_v<M, open_tunnel> || std::is_same_v<M, link_open>) {
            if (m.kind != tunnel_kind::http && m.kind != tunnel_kind::tcp &&
                m.kind != tunnel_kind::tls)
                return tl::unexpected(fmt::format("unknown tunnel kind {}", int(m.kind)));
        }
        return message{std::move(m)};
    }
}

}  // namespace

std::string encode(const message& m) {
    writer w(type_of(m));
    encoder e{w};
    std::visit([&](auto copy) { fields(e, copy); }, m);
    if (const auto* open = std::get_if<open_tunnel>(&m)) {
        if (!open->group.empty() || !open->policies.empty()) e(open->group);
        if (!open->policies.empty()) e(open->policies);
    }
    return std::move(w).finish();
}

tl::expected<std::size_t, std::string> decode_length(
    std::span<const std::uint8_t, header_size> h) {
    const std::size_t n = (std::size_t{h[0]} << 24) | (std::size_t{h[1]} << 16) |
                          (std::size_t{h[2]} << 8) | std::size_t{h[3]};
    if (n == 0) return tl::unexpected(std::string("empty frame"));
    if (n > max_frame_body)
        return tl::unexpected(fmt::format("frame of {} bytes exceeds the {} byte limit", n,
                                          max_frame_body));
    return n;
}

tl::expected<message, std::string> decode_body(std::span<const std::uint8_t> body) {
    if (body.empty()) return tl::unexpected(std::string("empty frame"));
    reader r(body.subspan(1));
    return decode_as(body[0], r);
}

std::string_view name_of(tunnel_kind k) {
    switch (k) {
    case tunnel_kind::http: return "http";
    case tunnel_kind::tcp: return "tcp";
    case tunnel_kind::tls: return "tls";
    }
    return "unknown";
}

std::string_view name_of(error_code c) {
    switch (c) {
        case error_code::unsupported_version: return "unsupported_version";
        case error_code::unauthorized: return "unauthorized";
        case error_code::bad_name: return "bad_name";
        case error_code::name_taken: return "name_taken";
        case error_code::port_unavailable: return "port_unavailable";
        case error_code::limit: return "limit";
        case error_code::protocol: return "protocol";
        case error_code::shutting_down: return "shutting_down";
        case error_code::bad_policy: return "bad_policy";
    }
    return "unknown";
}

}  // namespace porthole::protocol

#include "observe/capture_store.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <random>

namespace porthole::observe {
namespace {

using ojson = nlohmann::ordered_json;  // headers keep the order they were sent in

std::string timestamp(std::chrono::system_clock::time_point t) {
    const auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(t);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - seconds).count();
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", seconds, ms);
}

std::string version_text(unsigned v) { return v == 10 ? "HTTP/1.0" : "HTTP/1.1"; }

ojson headers_json(std::string_view raw_head) {
    ojson out = ojson::object();
    for (auto& f : http::fields_of(raw_head)) out[f.name].push_back(std::move(f.value));
    return out;
}

std::string reason_of(const std::string& raw_head) {
    // "HTTP/1.1 200 OK\r\n": the reason phrase is whatever follows the code.
    const auto eol = raw_head.find("\r\n");
    const auto line = std::string_view(raw_head).substr(0, eol);
    const auto first = line.find(' ');
    if (first == std::string_view::npos) return {};
    const auto second = line.find(' ', first + 1);
    return second == std::string_view::npos ? std::string() : std::string(line.substr(second + 1));
}

ojson frame_to_json(const captured_frame& f) {
    const auto name = http::opcode_name(f.frame.opcode);
    return {{"dir", f.outbound ? "out" : "in"},
            {"time", timestamp(f.time)},
            {"opcode", name.empty() ? ojson(f.frame.opcode) : ojson(std::string(name))},
            {"fin", f.frame.fin},
            {"compressed", f.frame.compressed},
            {"size", f.frame.size},
            {"wire_size", f.frame.wire_size},
            {"data", base64_encode(f.frame.payload)},
            {"truncated", f.frame.truncated}};
}

ojson record_to_json(const exchange_record& r) {
    ojson out{{"uri", "/api/requests/http/" + r.id},
             {"id", r.id},
             {"tunnel_name", r.tunnel_name},
             {"remote_addr", r.remote_addr},
             {"start", timestamp(r.start)},
             {"duration", r.duration.count()},
             {"state", state_name(r.state)}};
    if (r.replay_of) out["replay_of"] = *r.replay_of;
    if (!r.policy.empty()) out["policy"] = r.policy;
    out["request"] = {{"method", r.request.method},
                      {"proto", version_text(r.request.version)},
                      {"uri", r.request.target},
                      {"headers", headers_json(r.request_head)},
                      {"raw", base64_encode(r.request_head + r.request_body.data)},
                      {"body_size", r.request_body.size},
                      {"body_truncated", r.request_body.truncated()}};
    if (r.response) {
        const std::string reason = reason_of(r.response_head);
        out["response"] = {
            {"status", reason.empty() ? std::to_string(r.response->status)
                                      : fmt::format("{} {}", r.response->status, reason)},
            {"status_code", r.response->status},
            {"proto", version_text(r.response->version)},
            {"headers", headers_json(r.response_head)},
            {"raw", base64_encode(r.response_head + r.response_body.data)},
            {"body_size", r.response_body.size},
            {"body_truncated", r.response_body.truncated()}};
    }
    if (r.websocket) {
        ojson frames = ojson::array();
        for (const auto& f : r.websocket->frames) frames.push_back(frame_to_json(f));
        out["websocket"] = {{"frames", std::move(frames)},
                            {"frames_dropped", r.websocket->frames_dropped}};
    }
    return out;
}

std::size_t head_bytes(const http::message_head& h) {
    std::size_t n = h.method.size() + h.target.size();
    for (const auto& f : h.fields) n += f.name.size() + f.value.size() + 2 * sizeof(std::string);
    return n;
}

}  // namespace

std::string state_name(exchange_state s) {
    switch (s) {
    case exchange_state::pending: return "pending";
    case exchange_state::streaming: return "streaming";
    case exchange_state::complete: return "complete";
    case exchange_state::upgraded: return "upgraded";
    case exchange_state::closed: return "closed";
    case exchange_state::failed: return "failed";
    }
    return "unknown";
}

std::size_t exchange_record::bytes() const {
    // Capacities, not sizes: what the allocator really holds.
    std::size_t n = sizeof(*this) + id.capacity() + tunnel_name.capacity() +
                    remote_addr.capacity() + policy.capacity() + head_bytes(request) + request_head.capacity() +
                    request_body.data.capacity() + response_head.capacity() +
                    response_body.data.capacity();
    if (response) n += head_bytes(*response);
    if (websocket)
        for (const auto& f : websocket->frames) n += sizeof(f) + f.frame.payload.size();
    return n;
}

capture_store::capture_store(std::size_t memory_limit, std::size_t body_limit)
    : memory_limit_(memory_limit), body_limit_(body_limit),
      id_prefix_(static_cast<std::uint32_t>(std::random_device{}())) {}

std::shared_ptr<exchange_record> capture_store::begin(std::string tunnel_name,
                                                      std::string remote_addr,
                                                      http::message_head request,
                                                      std::string raw_head) {
    auto r = std::make_shared<exchange_record>();
    // 16 hex digits: a random prefix per process, then a counter (fmt would cost more here).
    const std::uint64_t id = static_cast<std::uint64_t>(id_prefix_) << 32 | ++next_id_;
    r->id.resize(16);
    for (int i = 0; i < 16; ++i) r->id[i] = "0123456789abcdef"[(id >> (60 - 4 * i)) & 0xF];
    r->tunnel_name = std::move(tunnel_name);
    r->remote_addr = std::move(remote_addr);
    r->start = std::chrono::system_clock::now();
    r->started = std::chrono::steady_clock::now();
    r->request = std::move(request);
    r->request_head = std::move(raw_head);
    r->request_body.limit = body_limit_;
    r->response_body.limit = body_limit_;
    r->held = true;
    records_.push_back(r);
    charge(*r);
    notify(event::request, r.get(), nullptr);
    return r;
}

void capture_store::changed(exchange_record& r) {
    charge(r);
    notify(event::request, &r, nullptr);
}

void capture_store::frame(exchange_record& r, captured_frame f) {
    // Charged by difference: a busy WebSocket must not cost a walk over its frames each time.
    if (!r.websocket) r.websocket = std::make_unique<exchange_record::websocket_log>();
    auto& log = *r.websocket;
    std::size_t removed = 0;
    if (log.frames.size() >= frames_kept) {
        removed = sizeof(captured_frame) + log.frames.front().frame.payload.size();
        log.frames.pop_front();
        ++log.frames_dropped;
    }
    const std::size_t added = sizeof(captured_frame) + f.frame.payload.size();
    log.frames.push_back(std::move(f));
    if (r.held) {
        used_ = used_ + added - removed;
        r.accounted = r.accounted + added - removed;
        evict();
    }
    notify(event::frame, &r, &log.frames.back());
}

void capture_store::clear() {
    for (auto& r : records_) r->held = false;
    records_.clear();
    used_ = 0;
    notify(event::clear, nullptr, nullptr);
}

void capture_store::charge(exchange_record& r) {
    if (!r.held) return;
    const std::size_t now = r.bytes();
    used_ = used_ - r.accounted + now;
    r.accounted = now;
    evict();
}

void capture_store::evict() {
    // The newest record stays even when it alone is over the budget.
    while (used_ > memory_limit_ && records_.size() > 1) {
        used_ -= records_.front()->accounted;
        records_.front()->accounted = 0;
        records_.front()->held = false;
        records_.pop_front();
    }
}

std::shared_ptr<exchange_record> capture_store::find(std::string_view id) const {
    for (const auto& r : records_)
        if (r->id == id) return r;
    return nullptr;
}

std::vector<std::shared_ptr<exchange_record>> capture_store::list(
    std::size_t limit, std::string_view tunnel_name) const {
    std::vector<std::shared_ptr<exchange_record>> out;
    for (auto it = records_.rbegin(); it != records_.rend() && out.size() < limit; ++it)
        if (tunnel_name.empty() || (*it)->tunnel_name == tunnel_name) out.push_back(*it);
    return out;
}

std::uint64_t capture_store::subscribe(listener l) {
    listeners_.emplace(++next_listener_, std::move(l));
    return next_listener_;
}

void capture_store::unsubscribe(std::uint64_t token) { listeners_.erase(token); }

void capture_store::notify(event e, const exchange_record* r, const captured_frame* f) {
    // A listener may unsubscribe itself while being told.
    for (auto it = listeners_.begin(); it != listeners_.end();) {
        auto current = it++;
        current->second(e, r, f);
    }
}

// Header values may hold any bytes: invalid UTF-8 is replaced rather than refused.
static std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string record_json(const exchange_record& r) { return dump(record_to_json(r)); }

// Record by record, so the peak is one record's document, not a document of all of them.
std::string records_json(const std::vector<std::shared_ptr<exchange_record>>& records) {
    std::string out = R"({"uri":"/api/requests/http","requests":[)";
    for (std::size_t i = 0; i < records.size(); ++i) {
        if (i) out += ',';
        out += record_json(*records[i]);
    }
    return out + "]}";
}

std::string frame_json(const exchange_record& r, const captured_frame& f) {
    return dump(ojson{{"id", r.id}, {"frame", frame_to_json(f)}});
}

std::string tunnels_json(const std::vector<tunnel_info>& tunnels) {
    ojson list = ojson::array();
    for (const auto& t : tunnels) {
        ojson entry{{"name", t.name},
                   {"public_url", t.public_url},
                   {"proto", t.proto},
                   {"config", {{"addr", t.addr}, {"inspect", t.proto == "http" || t.proto == "https"}}}};
        if (t.metrics)
            entry["metrics"] = {{"conns", {{"count", t.metrics->connections}, {"gauge", t.metrics->open}}},
                                {"http", {{"count", t.metrics->requests}}}};
        list.push_back(std::move(entry));
    }
    return dump(ojson{{"tunnels", std::move(list)}, {"uri", "/api/tunnels"}});
}

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    std::string clean;
    for (char c : text)
        if (c != '\n' && c != '\r' && c != ' ') clean.push_back(c);
    if (clean.size() % 4 != 0) return std::nullopt;
    std::string out(3 * clean.size() / 4, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(clean.data()),
                                  static_cast<int>(clean.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = 0;
    if (!clean.empty() && clean.back() == '=') ++pad;
    if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

}  // namespace porthole::observe

// http_probe [--split N|all] [FILE...]: what the relay's HTTP edge makes of the first request in
// each file (stdin when none, or for "-"), one JSON line per input. --split N: the relay reads the
// first N bytes before the rest, as if a packet ended there; --split all: one line for each N
// from 1 to the input's size - 1, with "split": N.
// Each line:
//   {"input", "accepted", "incomplete" ("head"|"body"|null), "status" and "reason" (rejected),
//    "method", "target", "forwarded_target", "forwarded_head", "body_hex", "framed_body_hex",
//    "consumed"}
// Strings carry bytes as code points U+0000-U+00FF (decode them as latin-1 to get the bytes back).
#include "relay_edge.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace {

std::string latin1(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (const unsigned char c : bytes) {
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back(static_cast<char>(0xc0 | (c >> 6)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
        }
    }
    return out;
}

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * bytes.size());
    for (const unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

nlohmann::json describe(const porthole::tests::edge_verdict& v) {
    using kind = porthole::tests::edge_verdict::kind;
    nlohmann::json j;
    j["accepted"] = v.what == kind::forwarded;
    j["incomplete"] = v.what == kind::head_incomplete   ? nlohmann::json("head")
                      : v.what == kind::body_incomplete ? nlohmann::json("body")
                                                        : nlohmann::json();
    if (v.rejection) {
        j["status"] = v.rejection->status;
        j["reason"] = latin1(v.rejection->reason);
    }
    if (v.what == kind::forwarded || v.what == kind::body_incomplete) {
        j["method"] = latin1(v.head.method);
        j["target"] = latin1(v.head.target);
        j["forwarded_target"] =
            latin1(porthole::tests::request_line_target(v.forwarded_head));
        j["forwarded_head"] = latin1(v.forwarded_head);
        j["body_hex"] = hex(v.decoded_body);
        j["framed_body_hex"] = hex(v.framed_body);
    }
    j["consumed"] = v.consumed;
    return j;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> inputs(argv + 1, argv + argc);
    std::optional<std::size_t> split;  // none: the whole input in one read
    bool every_split = false;
    if (inputs.size() >= 2 && inputs[0] == "--split") {
        if (inputs[1] == "all")
            every_split = true;
        else
            split = std::stoul(inputs[1]);
        inputs.erase(inputs.begin(), inputs.begin() + 2);
    }
    if (inputs.empty()) inputs.emplace_back("-");
    int status = 0;
    for (const auto& name : inputs) {
        std::string bytes;
        if (name == "-") {
            bytes.assign(std::istreambuf_iterator<char>(std::cin), {});
        } else {
            std::ifstream file(name, std::ios::binary);
            if (!file) {
                std::cerr << "http_probe: cannot read " << name << "\n";
                status = 1;
                continue;
            }
            bytes.assign(std::istreambuf_iterator<char>(file), {});
        }
        auto print = [&](std::optional<std::size_t> first_read) {
            auto j = describe(porthole::tests::pass_edge(
                bytes, first_read.value_or(std::numeric_limits<std::size_t>::max())));
            j["input"] = latin1(name);
            if (first_read) j["split"] = *first_read;
            std::cout << j.dump() << "\n";
        };
        if (!every_split) {
            print(split);
            continue;
        }
        for (std::size_t n = 1; n < bytes.size(); ++n) print(n);
    }
    return status;
}

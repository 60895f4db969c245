#include "admin/tables.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>

namespace porthole::admin {
namespace {

using json = nlohmann::json;

std::string text(const json& j, const char* key, std::string_view absent = "-") {
    if (!j.contains(key) || j[key].is_null()) return std::string(absent);
    if (j[key].is_string()) return j[key].get<std::string>();
    return j[key].dump();
}

std::string joined(const json& arr) {
    std::string out;
    if (!arr.is_array()) return "-";
    for (const auto& item : arr) {
        if (!out.empty()) out += ", ";
        out += item.is_string() ? item.get<std::string>() : item.dump();
    }
    return out.empty() ? "-" : out;
}

const json& items(const json& doc, const char* key) {
    static const json empty = json::array();
    return doc.contains(key) && doc[key].is_array() ? doc[key] : empty;
}

std::string since(const json& j, const char* key, std::int64_t now) {
    const auto t = parse_rfc3339(text(j, key, ""));
    return t ? short_duration(now - *t) : "-";
}

std::string truncated_note(const json& doc) {
    return doc.value("truncated", false) ? "(more not shown: the list stops at its limit)\n" : "";
}

}  // namespace

std::string format_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths;
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (widths.size() <= i) widths.push_back(0);
            widths[i] = std::max(widths[i], row[i].size());
        }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    }
    return out;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view t) {
    std::tm tm{};
    if (t.size() != 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
        t[16] != ':' || t[19] != 'Z')
        return std::nullopt;
    const auto number = [&](std::size_t at, std::size_t n) -> std::optional<int> {
        int v = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            if (t[i] < '0' || t[i] > '9') return std::nullopt;
            v = v * 10 + (t[i] - '0');
        }
        return v;
    };
    const auto y = number(0, 4), mo = number(5, 2), d = number(8, 2), h = number(11, 2),
               mi = number(14, 2), s = number(17, 2);
    if (!y || !mo || !d || !h || !mi || !s) return std::nullopt;
    tm.tm_year = *y - 1900;
    tm.tm_mon = *mo - 1;
    tm.tm_mday = *d;
    tm.tm_hour = *h;
    tm.tm_min = *mi;
    tm.tm_sec = *s;
    return static_cast<std::int64_t>(timegm(&tm));
}

std::string short_duration(std::int64_t s) {
    if (s < 0) s = 0;
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{}s", s / 60, s % 60);
    if (s < 86400) return fmt::format("{}h{}m", s / 3600, s % 3600 / 60);
    return fmt::format("{}d{}h", s / 86400, s % 86400 / 3600);
}

std::string clients_table(const json& doc, std::int64_t now) {
    std::vector<std::vector<std::string>> rows{
        {"ID", "ADDRESS", "AGENT", "SINCE", "RTT", "TUNNELS"}};
    for (const auto& c : items(doc, "clients")) {
        const std::string rtt = c.contains("rtt_ms") && c["rtt_ms"].is_number()
                                    ? fmt::format("{:.0f} ms", c["rtt_ms"].get<double>())
                                    : "-";
        rows.push_back({text(c, "id").substr(0, 8), text(c, "address"), text(c, "agent"),
                        since(c, "connected_since", now), rtt, joined(c.value("tunnels", json()))});
    }
    return format_table(rows) + truncated_note(doc);
}

std::string tunnels_table(const json& doc, std::int64_t now) {
    std::vector<std::vector<std::string>> rows{
        {"NAME", "KIND", "STATE", "CLIENTS", "CONNS", "URL"}};
    for (const auto& t : items(doc, "tunnels")) {
        std::string clients = "-";
        if (t.contains("members") && t["members"].is_array()) {
            json ids = json::array();
            for (const auto& m : t["members"]) ids.push_back(text(m, "client"));
            clients = joined(ids);
        }
        std::string state = text(t, "state");
        if (state == "leased") {
            const auto until = parse_rfc3339(text(t, "lease_until", ""));
            if (until) state += " (" + short_duration(*until - now) + " left)";
        }
        rows.push_back({text(t, "name"), text(t, "kind"), state, clients,
                        text(t, "open_connections"), text(t, "url")});
    }
    return format_table(rows) + truncated_note(doc);
}

std::string sites_table(const json& doc) {
    std::vector<std::vector<std::string>> rows{
        {"SITE", "PATH", "POLICY", "MEMBER", "HEALTH", "ACTIVE", "FAILS"}};
    for (const auto& s : items(doc, "sites")) {
        const std::string hosts = joined(s.value("hosts", json()));
        for (const auto& r : items(s, "routes"))
            for (const auto& m : items(r, "members"))
                rows.push_back({hosts, text(r, "path"), text(r, "lb_policy"), text(m, "url"),
                                text(m, "health"), text(m, "active"), text(m, "fails")});
    }
    for (const auto& t : items(doc, "tcp_sites"))
        for (const auto& m : items(t, "members"))
            rows.push_back({"tcp " + text(t, "listen"), "-", "-", text(m, "url"), text(m, "health"),
                            text(m, "active"), text(m, "fails")});
    return format_table(rows);
}

std::string tokens_table(const json& doc) {
    std::vector<std::vector<std::string>> rows{{"DIGEST", "LABEL", "SESSIONS", "SOURCE"}};
    for (const auto& t : items(doc, "tokens"))
        rows.push_back(
            {text(t, "digest"), text(t, "label"), text(t, "sessions"), text(t, "source")});
    return format_table(rows) + truncated_note(doc);
}

std::string caches_table(const json& doc) {
    std::vector<std::vector<std::string>> rows{{"CACHE", "ENTRIES", "BYTES", "MEMORY", "HITS",
                                                "MISSES", "STALE", "REVALIDATED", "DISK"}};
    for (const auto& c : items(doc, "caches")) {
        // DISK: its entries, bytes of its size, and "off" while a failed write keeps it off.
        std::string disk = "-";
        if (c.contains("disk") && c["disk"].is_object()) {
            const json& d = c["disk"];
            disk = text(d, "entries") + " / " + text(d, "bytes") + " of " + text(d, "size");
            if (d.value("writing", true) == false) disk += " (off)";
        }
        rows.push_back({text(c, "name"), text(c, "entries"), text(c, "bytes"), text(c, "memory"),
                        text(c, "hits"), text(c, "misses"), text(c, "stale"),
                        text(c, "revalidated"), disk});
    }
    return format_table(rows) + truncated_note(doc);
}

std::string cluster_table(const json& doc) {
    std::string out = fmt::format("node {}, Redis at {}: {}\n", text(doc, "node"), text(doc, "redis"),
                                  doc.value("degraded", false)
                                      ? "unreachable (degraded: claims are taken locally)"
                                      : "ok");
    std::vector<std::vector<std::string>> rows{{"RELAY", "LINK", "TCP PORTS", "CONFIG"}};
    for (const auto& r : items(doc, "relays")) {
        const std::string ports = r.value("ports", "");
        rows.push_back({text(r, "node"), text(r, "link"), ports.empty() ? "-" : ports,
                        text(r, "config")});
    }
    out += format_table(rows);
    const json carried = doc.value("carried", json::object());
    out += fmt::format("carried over the link: {} out, {} in; {} lookups; {} changes heard; {} "
                       "link connections refused\n",
                       carried.value("out", 0), carried.value("in", 0), doc.value("lookups", 0),
                       doc.value("events", 0), doc.value("link_refused", 0));
    return out;
}

}  // namespace porthole::admin

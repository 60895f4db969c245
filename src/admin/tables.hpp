#pragma once
// `porthole admin`'s tables, made from the admin API's JSON documents. Pure: `now` is given.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::admin {

// Columns padded to their widest cell, two spaces apart; the last is not padded.
std::string format_table(const std::vector<std::vector<std::string>>& rows);

// "2025-05-01T10:02:11Z" -> Unix seconds; nullopt when it is not that form.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);
// 45 -> "45s", 134 -> "2m14s", 8040 -> "2h14m", 200000 -> "2d7h".
std::string short_duration(std::int64_t seconds);

std::string clients_table(const nlohmann::json& doc, std::int64_t now);
std::string tunnels_table(const nlohmann::json& doc, std::int64_t now);
std::string sites_table(const nlohmann::json& doc);
std::string tokens_table(const nlohmann::json& doc);
std::string caches_table(const nlohmann::json& doc);
std::string cluster_table(const nlohmann::json& doc);

}  // namespace porthole::admin

#include "config/error_pages.hpp"

#include "config/toml_source.hpp"

#include <fmt/format.h>

#include <charconv>
#include <filesystem>

namespace porthole::config {
namespace {

std::string content_type_for(const std::filesystem::path& file) {
    const std::string ext = file.extension().string();
    if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
    if (ext == ".json") return "application/json";
    return "text/plain; charset=utf-8";
}

}  // namespace

tl::expected<error_pages, std::string> load_error_pages(const toml::node& n,
                                                        const std::string& path) {
    const auto at = [&](const toml::node& node) {
        return fmt::format("{}:{}", path, node.source().begin.line);
    };
    const auto* table = n.as_table();
    if (!table)
        return tl::unexpected(fmt::format(
            "{}: write error_pages as a table of STATUS = \"FILE\", like "
            "{{ 404 = \"errors/404.html\", 502 = \"errors/502.html\" }}",
            at(n)));
    error_pages pages;
    for (auto&& [key, v] : *table) {
        const std::string_view text = key.str();
        unsigned status = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), status);
        if (ec != std::errc{} || end != text.data() + text.size() || status < 400 || status > 599)
            return tl::unexpected(fmt::format(
                "{}: error_pages: '{}' is not a status from 400 to 599; write the status as the "
                "key, like 502 = \"errors/502.html\"",
                at(v), text));
        const auto file = v.value_exact<std::string>();
        if (!file || file->empty())
            return tl::unexpected(fmt::format(
                "{}: error_pages: {} must be the path of a file, like \"errors/{}.html\"", at(v),
                status, status));
        std::filesystem::path name = *file;
        if (name.is_relative()) name = std::filesystem::path(path).parent_path() / name;
        std::error_code size_error;
        const auto size = std::filesystem::file_size(name, size_error);
        if (!size_error && size > error_page_limit)
            return tl::unexpected(fmt::format(
                "{}: error_pages: {} is {} bytes; a page is held in memory and may be at most "
                "1 MiB",
                at(v), name.string(), size));
        auto body = read_file(name.string(), "error page");
        if (!body) return tl::unexpected(fmt::format("{}: {}", at(v), body.error()));
        pages[status] = error_page{std::move(*body), content_type_for(name)};
    }
    return pages;
}

}  // namespace porthole::config

#pragma once
// web/admin.html, admin.js and admin.css, compiled in at build time (cmake/embed_page.cmake) so
// the dashboard works offline and needs no file beside the binary.
#include <string_view>

namespace porthole::admin {
extern const std::string_view dashboard_html;
extern const std::string_view dashboard_js;
extern const std::string_view dashboard_css;
}  // namespace porthole::admin

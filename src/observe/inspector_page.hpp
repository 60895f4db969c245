#pragma once
// web/inspector.html, compiled in at build time so the page works offline.
#include <string_view>

namespace porthole::observe {
extern const std::string_view inspector_page;
}

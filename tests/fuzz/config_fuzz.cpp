// Any bytes as a relay or client config file: an error or a config, never a crash. What toml++ is
// given is ASCII with the lines of the file, whatever the file holds.
#include "config/client_config.hpp"
#include "config/server_config.hpp"
#include "config/toml_text.hpp"

#include <algorithm>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto ascii = porthole::config::to_ascii_toml(text)) {
        if (std::any_of(ascii->begin(), ascii->end(),
                        [](char c) { return static_cast<unsigned char>(c) >= 0x80; }))
            std::abort();
        const auto lines = [](std::string_view s) { return std::count(s.begin(), s.end(), '\n'); };
        if (lines(*ascii) != lines(text)) std::abort();
    }
    porthole::config::server_config cfg;
    (void)porthole::config::load_server_text(text, "fuzz.toml", cfg);
    (void)porthole::config::load_client_text(text, "fuzz.toml");
    return 0;
}

// Any bytes as a relay or client config file: an error or a config, never a crash.
#include "config/client_config.hpp"
#include "config/server_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    porthole::config::server_config cfg;
    (void)porthole::config::load_server_text(text, "fuzz.toml", cfg);
    (void)porthole::config::load_client_text(text, "fuzz.toml");
    return 0;
}

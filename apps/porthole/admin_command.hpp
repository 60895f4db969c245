#pragma once
// `porthole admin ...`: the relay's admin API from the command line.
#include <CLI/CLI.hpp>

#include <string>

namespace porthole::cli {

struct admin_flags {
    std::string socket, addr, token_file, label, id, name, digest, binary, url;
    int wait = 30;
    bool json = false;
    bool prefix = false;  // cache purge --prefix
};

CLI::App* add_admin_command(CLI::App& app, admin_flags& f);
// Exit status: 0 done, 1 refused (the API's error on stderr), 2 no relay answered.
int run_admin(const CLI::App& admin, const admin_flags& f);

}  // namespace porthole::cli

#pragma once
// The running relay's half of `porthole admin upgrade`: starts the new program with this
// relay's arguments and a socket to it (PORTHOLE_TAKEOVER_FD), hands it what `collect` gathers
// when it has read its config, and reports once it serves, or why it will not. Until then this
// relay has given up nothing.
#include "admin/relay_control.hpp"
#include "relay/handoff.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace porthole::relay {

class upgrader {
public:
    struct hooks {
        std::function<handoff::state()> collect;  // the sockets, leases and certificate
        std::function<void()> replaced;  // the new process serves: drain and stop
    };
    upgrader(boost::asio::io_context& io, std::vector<std::string> command, hooks h);

    // `binary` "": the program file this process runs (the path of a replaced file too).
    void start(std::string binary, std::chrono::seconds wait, admin::upgrade_done done);
    bool running() const { return running_; }
    // After the new process serves: it may accept on the control port now (this relay has told
    // its clients GOAWAY). Does nothing when there was no upgrade.
    void release_control();
    ~upgrader();

private:
    boost::asio::awaitable<void> run(std::string binary, std::chrono::seconds wait,
                                     admin::upgrade_done done);

    boost::asio::io_context& io_;
    std::vector<std::string> command_;  // argv of this process
    hooks hooks_;
    bool running_ = false;
    int serving_channel_ = -1;  // to the new process, once it serves, until release_control()
};

// The program file of this process: /proc/self/exe, whose target ends in " (deleted)" when a
// package upgrade replaced the file.
std::string own_program_file();

}  // namespace porthole::relay

#pragma once
// Listening sockets of one address that the relay this one replaced had more of than this relay
// has event loops (`porthole admin upgrade` to fewer `threads`). Closing them would reset what the
// kernel queued on them; the first loop accepts on them too, beside its own listener, and hands
// them on at the next upgrade. docs/architecture.md#threads
#include "relay/relay_context.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::relay {

class spare_listeners {
public:
    // Takes every socket of `role` at `where` the relay still holds from the one it replaced.
    void take(relay_context& ctx, std::string_view role, const std::string& where);
    // Accepts on each until close(), handing each socket to `serve`; `what` names them in logs.
    void start(relay_context& ctx, std::string_view what,
               const std::function<void(boost::asio::ip::tcp::socket)>& serve);
    void close();
    std::vector<int> fds();

private:
    std::deque<boost::asio::ip::tcp::acceptor> acceptors_;
};

}  // namespace porthole::relay

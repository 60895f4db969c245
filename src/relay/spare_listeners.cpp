#include "relay/spare_listeners.hpp"

#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <unistd.h>

namespace porthole::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

void spare_listeners::take(relay_context& ctx, std::string_view role, const std::string& where) {
    while (const auto fd = ctx.inherited.take(role, where)) {
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        ::getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &len);
        boost::system::error_code ec;
        auto& a = acceptors_.emplace_back(ctx.io);
        a.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), *fd, ec);
        if (ec) {
            ::close(*fd);
            acceptors_.pop_back();
            spdlog::warn("{} on {}: a listening socket left over from the relay this one "
                         "replaced could not be used ({}); what was queued on it is lost",
                         role, where, ec.message());
        }
    }
    if (!acceptors_.empty())
        spdlog::info("{} on {}: the first event loop also accepts on {} listening socket(s) the "
                     "relay this one replaced had for its other loops",
                     role, where, acceptors_.size());
}

void spare_listeners::start(relay_context& ctx, std::string_view what,
                            const std::function<void(tcp::socket)>& serve) {
    for (auto& a : acceptors_) ctx.spawn(accept_connections(a, what, serve));
}

void spare_listeners::close() {
    boost::system::error_code ec;
    for (auto& a : acceptors_) a.close(ec);
}

std::vector<int> spare_listeners::fds() {
    std::vector<int> out;
    for (auto& a : acceptors_)
        if (a.is_open()) out.push_back(a.native_handle());
    return out;
}

}  // namespace porthole::relay

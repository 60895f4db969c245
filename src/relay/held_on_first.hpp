#pragma once
// What a worker loop holds for the first loop (a tunnel's connection slot, a backend's place in
// its pool) while it serves a connection: let go on the first loop's thread, which alone counts
// them, whichever thread drops the last reference. docs/architecture.md#threads
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <memory>

namespace porthole::relay {

struct held_on_first {
    held_on_first(boost::asio::any_io_executor first, std::shared_ptr<void> hold)
        : first(std::move(first)), hold(std::move(hold)) {}
    held_on_first(const held_on_first&) = delete;
    held_on_first& operator=(const held_on_first&) = delete;
    ~held_on_first() {
        if (hold) boost::asio::post(first, [h = std::move(hold)] {});
    }
    boost::asio::any_io_executor first;
    std::shared_ptr<void> hold;
};

}  // namespace porthole::relay

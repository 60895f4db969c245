#pragma once
// One side of an exchange whose bytes pass a `bandwidth` policy's budgets: what is read from it
// is paid for before it goes on, and what is written to it is paced in chunks. Nothing is
// dropped; a visitor over the budget only waits.
#include "http/forward_exchange.hpp"
#include "net/byte_shaper.hpp"

namespace porthole::http {

class shaped_endpoint final : public forward_endpoint {
public:
    // `inner` is the visitor's side: reads pay `s.up`, writes pay `s.down`.
    shaped_endpoint(forward_endpoint& inner, const net::shaping& s) : inner_(inner), s_(s) {}
    boost::asio::awaitable<bool> read_more(net::io_buffer& in) override;
    boost::asio::awaitable<bool> write(std::string_view bytes, std::string_view more) override;
    void shutdown_send() override { inner_.shutdown_send(); }
    void close() override { inner_.close(); }
    void cancel() override { inner_.cancel(); }

private:
    boost::asio::awaitable<bool> write_paced(std::string_view bytes);

    forward_endpoint& inner_;
    const net::shaping& s_;
};

}  // namespace porthole::http

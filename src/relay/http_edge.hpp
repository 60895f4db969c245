#pragma once
// The HTTP edge: a visitor connection's keep-alive loop with its slowloris deadlines, and one
// exchange per request: the head parsed and checked, the route found (a configured site, or a
// tunnel name under the relay's domain), the route's policy chain, then an upstream connection
// from the route's pool and the request and response forwarded exactly as framed. Only a route
// whose policies judge the body (verify_webhook) reads the whole body first. The edge does not
// know whether that connection goes to a tunnel's client or to a backend.
#include "cache/http_cache.hpp"
#include "http/header_edits.hpp"
#include "http/message_head.hpp"
#include "net/io_buffer.hpp"
#include "protocol/frame.hpp"
#include "relay/relay_context.hpp"
#include "relay/spare_listeners.hpp"
#include "relay/tunnel_directory.hpp"
#include "relay/tunnel_registry.hpp"
#include "route/route_table.hpp"
#include "upstream/upstream_pool.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <tl/expected.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace porthole::relay {

class request_tally;  // relay/request_tally.hpp


class http_edge {
public:
    // `sites`: the relay's route table, which a reload replaces.
    http_edge(relay_context& ctx, tunnel_registry& registry, upstream::tunnel_source& tunnels,
              const std::shared_ptr<route::route_table>& sites);

    // `shared`: one listener per event loop (SO_REUSEPORT).
    tl::expected<void, std::string> listen(bool shared = false);
    // A worker loop's edge: a request for a route it may not serve (relay/worker.hpp) hands its
    // connection over to `to_first` and it is served there from then on.
    void hand_over_to(hand_over_fn to_first) { hand_over_ = std::move(to_first); }
    // A worker loop's edge also serves the tunnels `directory` (the worker's latest) carries.
    void carry_tunnels_of(const std::shared_ptr<const tunnel_directory>& directory) {
        directory_ = &directory;
    }
    // A worker loop's edge tells a carried tunnel's client of its policies' answers through the
    // first loop, which holds the session: `to_first` takes the notice and the tunnel's name.
    using notice_fn = std::function<void(std::string, protocol::policy_answered)>;
    void tell_policy_answers_through(notice_fn to_first) { notices_ = std::move(to_first); }
    // On the first loop: a connection a worker handed over.
    void adopt(handed_visitor v);
    // Whether `host` is a configured site's or a tunnel this loop carries (the HTTPS edge of a
    // worker terminates its TLS).
    bool has_site(std::string_view host) const {
        return sites_->find_site(host) != nullptr || carries_tunnel(host);
    }
    void start();
    void stop_accepting();
    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    // The listening socket, for a relay that replaces this one.
    int listener_fd() { return acceptor_.is_open() ? acceptor_.native_handle() : -1; }
    // On the first loop, after listen(): the HTTP listeners the replaced relay had to spare.
    void take_spare_listeners() { spare_.take(ctx_, "http", ctx_.cfg.http_addr.to_string()); }
    std::vector<int> spare_listener_fds() { return spare_.fds(); }

    // Serves a visitor connection (plain, or TLS the HTTPS edge terminated) until it ends.
    // `already`: bytes of it read before (by a loop that handed it over).
    boost::asio::awaitable<void> serve(net::stream stream, const visit_guard& guard, bool https,
                                       std::string already = {});

    // Drops the routes of tunnel names no client serves any more (the sweeper calls it).
    void forget_idle_tunnel_routes();
    // Drops every tunnel route (a reload changed [tunnel_policy]); requests under way keep theirs.
    void forget_tunnel_routes();

private:
    struct upstream_link;
    struct cached_route;
    // A stale response served within stale-while-revalidate is refreshed behind the visitor's
    // back: the request as it would have gone upstream, with the stored validators.
    struct refresh_request {
        http::message_head head;
        std::string visitor_ip;
        bool https = false;
        std::size_t strip = 0;
        bool behind_proxy = false;
        http::header_edits edits;
        std::string target_override;
        std::string key;
        std::shared_ptr<const cache::stored_response> stale;
    };
    boost::asio::awaitable<void> refresh_behind(std::shared_ptr<upstream::pool> pool,
                                                std::shared_ptr<cache::http_cache> cache,
                                                refresh_request request);

    boost::asio::awaitable<void> accept();
    boost::asio::awaitable<void> serve_handed(handed_visitor v);
    // On a worker loop: whether this request's route is one the loop may serve.
    bool serves_here(const http::message_head& head, std::string_view host,
                     const cached_route& cache) const;
    boost::asio::awaitable<void> serve_plain(boost::asio::ip::tcp::socket socket);
    // A tunnel whose client holds its name by a lease is reconnecting (a network change, a relay
    // upgrade): its visitors wait up to client_return_wait for it rather than get a 502.
    boost::asio::awaitable<void> wait_for_client(const std::string& name);
    // A visitor of a tunnel whose client is away, answered from the tunnels' cache when it holds
    // the response (fresh, or stale with stale_when_offline or stale-if-error); false when not.
    boost::asio::awaitable<bool> answer_offline(watched_socket& visitor,
                                                const http::framer<true>& request, bool https,
                                                std::string_view host, const std::string& holder,
                                                request_tally& tally);
    boost::asio::awaitable<bool> exchange(watched_socket& visitor, net::io_buffer& in,
                                          std::optional<upstream_link>& up, cached_route& cache,
                                          const visit_guard& guard, bool https,
                                          bool behind_proxy);
    // The rest of a request's body into `in` (its first `parsed` bytes are parsed already), at
    // most `limit` bytes decoded, for policies that judge the body before it goes upstream. False
    // when the visitor got 413, 400 or 408 instead and the connection is done.
    boost::asio::awaitable<bool> read_whole_body(watched_socket& visitor,
                                                 http::framer<true>& request, net::io_buffer& in,
                                                 std::size_t& parsed, std::uint64_t limit,
                                                 http::header_edits& edits, std::string_view peer);
    std::shared_ptr<route::route> tunnel_route(const std::string& name);
    // Whose responses tunnel `name`'s cache entries are: its holder on this relay, or the
    // digest of it that the relay of a cluster holding it published; empty when unknown.
    std::string cache_holder(const std::string& name) const;

    relay_context& ctx_;
    tunnel_registry& registry_;
    upstream::tunnel_source& tunnels_;
    const std::shared_ptr<route::route_table>& sites_;
    boost::asio::ip::tcp::acceptor acceptor_;
    spare_listeners spare_;
    // The route of each tunnel name visitors asked for lately: one pool with the name as its
    // only member, made once rather than per request; the relay's [tunnel_policy] steps, then
    // the owner's (a new route when the owner's change, on the same pool).
    struct tunnel_route_entry {
        std::shared_ptr<route::route> route;
        policy::chain relay_policies;
        std::shared_ptr<const policy::chain> owner_policies;
        // On a worker: what the owner's steps were built from (the directory's), and the first
        // loop's steps it shares state with.
        std::shared_ptr<const std::vector<config::policy_config>> owner_configs;
        std::shared_ptr<const policy::chain> first_steps;
    };
    std::unordered_map<std::string, tunnel_route_entry> tunnel_routes_;
    hand_over_fn hand_over_;  // set on a worker loop
    notice_fn notices_;  // set on a worker loop
    const std::shared_ptr<const tunnel_directory>* directory_ = nullptr;  // on a worker loop
    // On a worker loop: whether `host` names a tunnel it carries.
    bool carries_tunnel(std::string_view host) const;
};

}  // namespace porthole::relay

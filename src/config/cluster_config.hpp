#pragma once
// cluster = { redis, node_id, advertise, secret_file, ... }: this relay as one of several sharing
// a tunnel registry in Redis (docs/design-scale.md). Read from a table, checked as a whole.
#include "config/endpoint.hpp"

#include <tl/expected.hpp>

#include <string>

namespace toml {
inline namespace v3 {
class node;
}
}  // namespace toml

namespace porthole::config {

struct cluster_config {
    std::string redis{};  // redis://[:PASSWORD@]HOST:PORT/DB or unix:///PATH?db=N; a secret
    std::string node_id{};  // this relay's name in the registry: [a-z0-9-], at most 63
    endpoint advertise{};  // where the other relays reach this one's link
    endpoint link_addr{};  // where the link listens; default 0.0.0.0 and advertise's port
    std::string secret{};  // the cluster's shared secret, from secret_file; never printed
    std::string redis_password{};  // from redis_password_file; never printed
    std::string at{};  // FILE:LINE of the table, for errors
    bool operator==(const cluster_config&) const = default;
};

// The table at `n` of file `path` (its secret files are read, relative to the file's directory).
tl::expected<cluster_config, std::string> load_cluster(const toml::node& n,
                                                       const std::string& path);

}  // namespace porthole::config

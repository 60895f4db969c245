#pragma once
// What a relay hands the process that replaces it (porthole admin upgrade): its listening
// sockets, the leases of the names and ports its clients hold, and a self-signed control
// certificate that clients have pinned. The messages between the two processes, and the new
// process's store of the sockets it was given until its parts take them.
// docs/design-operations.md#binary-upgrade-listeners-handed-over-the-admin-socket
#include <tl/expected.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace porthole::relay::handoff {

// A listening socket, named by what listens on it ("http", "tcp tunnel", "admin socket"...) and
// where: the configured "host:port", or the socket file's path.
struct listener {
    std::string role{};
    std::string where{};
    int fd = -1;
};

// A name or port reserved for its holder (the owner key, as hex) for `remaining` more.
struct lease {
    bool port = false;  // false: a tunnel name
    std::string key{};  // the name, or the port number
    std::string holder{};
    std::chrono::milliseconds remaining{0};
};

struct state {
    std::vector<listener> listeners{};
    std::vector<lease> leases{};
    std::string control_cert_pem{};  // set when the control port's certificate is self-signed
    std::string control_key_pem{};
};

// An owner key (opaque bytes) as text in a message, and back.
std::string hex_of(std::string_view bytes);
std::optional<std::string> bytes_of_hex(std::string_view hex);

// The old process's last message, once it has told its clients GOAWAY: the new one accepts on
// the control port from now (it does too when the channel closes).
std::string control_message();

// The new process's messages to the old one, each a JSON document.
std::string hello_message();  // its config is read and checked: send the state
std::string ready_message();  // it serves: drain
std::string failed_message(std::string_view error);  // it will not serve, and why

struct child_message {
    enum class kind { hello, ready, failed } what = kind::failed;
    std::string error{};
};
tl::expected<child_message, std::string> parse_child_message(std::string_view text);

// The new process's channel to the relay it replaces, from PORTHOLE_TAKEOVER_FD (which the
// running relay sets for the program it starts); read once and removed from the environment.
std::optional<int> takeover_channel();

// The old process's side: the state in messages of at most core::max_fds_per_message sockets.
tl::expected<void, std::string> send_state(int socket, const state& s);
// The new process's side; the sockets it receives are its own (close-on-exec).
tl::expected<state, std::string> receive_state(int socket, std::chrono::milliseconds timeout);

// The sockets a new process was handed, until the parts that listen on them take them. What is
// left when it is destroyed gets closed.
class inherited {
public:
    inherited() = default;
    explicit inherited(std::vector<listener> given) : given_(std::move(given)) {}
    ~inherited();
    inherited(inherited&& other) noexcept : given_(std::move(other.given_)) {}
    inherited& operator=(inherited&& other) noexcept;
    inherited(const inherited&) = delete;
    inherited& operator=(const inherited&) = delete;

    // The socket of `role` at `where`, now the caller's.
    std::optional<int> take(std::string_view role, std::string_view where);
    // Closes every socket of `role` that `keep` does not want.
    template <class Keep>
    void close_unless(std::string_view role, Keep&& keep) {
        for (auto& l : given_)
            if (l.fd >= 0 && l.role == role && !keep(l.where)) close_one(l);
    }
    std::size_t size() const;
    // Closes every socket whose role is not `role`.
    void close_all_but(std::string_view role);

private:
    static void close_one(listener& l);
    std::vector<listener> given_;
};

}  // namespace porthole::relay::handoff

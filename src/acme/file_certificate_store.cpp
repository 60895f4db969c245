// The files behind certificate_store (acme/certificate_store.hpp).
#include "acme/certificate_store.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

namespace porthole::acme {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view wildcard_prefix = "wildcard_";  // "*." is no file name to keep

std::optional<std::string> read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// `text` into `path` through a temporary file renamed over it: a crash leaves
// the old file or the new one, never half of one.
tl::expected<void, std::string> write_file(const fs::path& path, const std::string& text,
                                           mode_t mode) {
    const fs::path temporary = path.string() + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return tl::unexpected(
            fmt::format("{}: cannot write: {}", temporary.string(), std::strerror(errno)));
    std::size_t done = 0;
    while (done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int e = errno;
            ::close(fd);
            return tl::unexpected(
                fmt::format("{}: cannot write: {}", temporary.string(), std::strerror(e)));
        }
        done += static_cast<std::size_t>(n);
    }
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced || ::rename(temporary.c_str(), path.c_str()) != 0)
        return tl::unexpected(
            fmt::format("{}: cannot write: {}", path.string(), std::strerror(errno)));
    return {};
}

std::string file_name_of(const std::string& name) {
    return name.starts_with("*.") ? std::string(wildcard_prefix) + name.substr(2) : name;
}

std::string name_of_file(const std::string& stem) {
    return stem.starts_with(wildcard_prefix) ? "*." + stem.substr(wildcard_prefix.size()) : stem;
}

class file_store final : public certificate_store {
public:
    explicit file_store(fs::path dir) : dir_(std::move(dir)) {}

    tl::expected<std::optional<stored_account>, std::string> load_account() override {
        auto key = read_file(dir_ / "account.key");
        if (!key) return std::optional<stored_account>();
        return std::optional<stored_account>(
            stored_account{std::move(*key), trimmed(read_file(dir_ / "account.url"))});
    }

    tl::expected<void, std::string> save_account(const stored_account& account) override {
        if (auto made = make_dirs(dir_); !made) return made;
        if (auto ok = write_file(dir_ / "account.key", account.key_pem, 0600); !ok) return ok;
        return write_file(dir_ / "account.url", account.url + "\n", 0644);
    }

    std::vector<std::pair<std::string, pem_pair>> load_certificates() override {
        std::vector<std::pair<std::string, pem_pair>> out;
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir_ / "certs", ec)) {
            if (entry.path().extension() != ".pem") continue;
            auto chain = read_file(entry.path());
            auto key = read_file(fs::path(entry.path()).replace_extension(".key"));
            if (!chain || !key) {
                spdlog::warn("acme: {}: no key beside it; ignored", entry.path().string());
                continue;
            }
            out.emplace_back(name_of_file(entry.path().stem().string()),
                             pem_pair{std::move(*chain), std::move(*key)});
        }
        return out;
    }

    tl::expected<void, std::string> save_certificate(const std::string& name,
                                                     const pem_pair& pem) override {
        const fs::path certs = dir_ / "certs";
        if (auto made = make_dirs(certs); !made) return made;
        const std::string stem = file_name_of(name);
        // The key first: a chain on disk always has its key beside it.
        if (auto ok = write_file(certs / (stem + ".key"), pem.key, 0600); !ok) return ok;
        return write_file(certs / (stem + ".pem"), pem.chain, 0644);
    }

    std::string where() const override { return dir_.string(); }

private:
    static std::string trimmed(std::optional<std::string> text) {
        if (!text) return {};
        while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
        return *text;
    }

    static tl::expected<void, std::string> make_dirs(const fs::path& dir) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec)
            return tl::unexpected(
                fmt::format("{}: cannot create the directory: {}", dir.string(), ec.message()));
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
        return {};
    }

    fs::path dir_;
};

}  // namespace

std::unique_ptr<certificate_store> make_file_store(const std::string& state_dir,
                                                   const std::string& ca_host) {
    std::string folder;
    for (char c : ca_host)
        folder += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
    return std::make_unique<file_store>(fs::path(state_dir) / "acme" / folder);
}

}  // namespace porthole::acme

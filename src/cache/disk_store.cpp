#include "cache/disk_store.hpp"

#include "core/sha256.hpp"
#include "http/token_char.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace porthole::cache {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::string_view magic = "PHCACHE1";
constexpr std::size_t preamble = 8 + 4 + 8 + 4;  // magic, header length, body length, CRC-32
constexpr std::size_t key_digest_chars = 32;
constexpr std::size_t vary_digest_chars = 16;
constexpr auto off_after_failure = 60s;

std::string key_digest(std::string_view key) { return core::sha256_hex(key, key_digest_chars); }

std::string vary_digest(const std::vector<std::pair<std::string, std::string>>& values) {
    std::string text;
    for (const auto& [name, value] : values) text.append(name).append(1, '\0').append(value).append(1, '\0');
    return core::sha256_hex(text, vary_digest_chars);
}

bool is_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// KEYDIGEST-VARYDIGEST, as put() names files.
bool entry_name(std::string_view name) {
    return name.size() == key_digest_chars + 1 + vary_digest_chars &&
           name[key_digest_chars] == '-' && is_hex(name.substr(0, key_digest_chars)) &&
           is_hex(name.substr(key_digest_chars + 1));
}

std::uint32_t crc_of(std::string_view bytes) {
    return static_cast<std::uint32_t>(
        crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_u64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_text(std::string& out, std::string_view s) {
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}

// Reads what encode() wrote, each step checked against what is left.
struct reader {
    std::string_view in;
    bool ok = true;
    std::uint64_t u(int bytes) {
        if (in.size() < static_cast<std::size_t>(bytes)) {
            ok = false;
            return 0;
        }
        std::uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= std::uint64_t(static_cast<unsigned char>(in[i])) << (8 * i);
        in.remove_prefix(static_cast<std::size_t>(bytes));
        return v;
    }
    std::string text() {
        const auto n = u(4);
        if (!ok || in.size() < n) {
            ok = false;
            return {};
        }
        std::string s(in.substr(0, n));
        in.remove_prefix(n);
        return s;
    }
};

// A field a stored head may carry: a name of token characters, a value without CR, LF or NUL.
bool sound_field(std::string_view name, std::string_view value) {
    if (name.empty()) return false;
    const bool name_ok = std::all_of(name.begin(), name.end(), http::token_char);
    const bool value_ok = value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
    return name_ok && value_ok;
}

std::optional<std::string> read_file(const std::string& path, std::size_t limit) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    struct stat st {};
    std::optional<std::string> out;
    if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) <= limit) {
        std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
        std::size_t got = 0;
        while (got < bytes.size()) {
            const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        if (got == bytes.size()) out = std::move(bytes);
    }
    ::close(fd);
    return out;
}

// Writes `bytes` to `path`, new; the error's text on failure.
std::optional<std::string> write_file(const std::string& path, std::string_view bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return std::string(std::strerror(errno));
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const std::string why = n < 0 ? std::strerror(errno) : "nothing written";
            ::close(fd);
            return why;
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) return std::string(std::strerror(errno));
    return std::nullopt;
}

// The stores open in this process, by directory. Opened on the first loop; the last of a
// store's owners may let go of it on any loop, hence the lock.
std::unordered_map<std::string, std::weak_ptr<disk_store>>& open_stores() {
    static std::unordered_map<std::string, std::weak_ptr<disk_store>> stores;
    return stores;
}

std::mutex& open_stores_mutex() {
    static std::mutex m;
    return m;
}

}  // namespace

std::string disk_store::encode(const std::string& key, const stored_response& e) {
    std::string header;
    put_text(header, key);
    put_u32(header, e.status);
    put_u64(header, e.lifetime);
    put_u64(header, static_cast<std::uint64_t>(e.request_time));
    put_u64(header, static_cast<std::uint64_t>(e.response_time));
    put_u64(header, e.facts.age);
    put_u32(header, e.serve_offline ? 1u : 0u);  // flags
    put_u32(header, static_cast<std::uint32_t>(e.fields.size()));
    for (const auto& f : e.fields) {
        put_text(header, f.name);
        put_text(header, f.value);
    }
    put_u32(header, static_cast<std::uint32_t>(e.vary_values.size()));
    for (const auto& [name, value] : e.vary_values) {
        put_text(header, name);
        put_text(header, value);
    }
    std::string out(magic);
    put_u32(out, static_cast<std::uint32_t>(header.size()));
    put_u64(out, e.body.size());
    const std::uint32_t crc = static_cast<std::uint32_t>(crc32_z(
        crc_of(header), reinterpret_cast<const Bytef*>(e.body.data()), e.body.size()));
    put_u32(out, crc);
    out.reserve(out.size() + header.size() + e.body.size());
    out += header;
    out += e.body;
    return out;
}

std::optional<disk_store::decoded> disk_store::decode(std::string_view bytes) {
    if (bytes.size() < preamble || bytes.substr(0, magic.size()) != magic) return std::nullopt;
    reader pre{bytes.substr(magic.size(), preamble - magic.size())};
    const std::uint64_t header_size = pre.u(4);
    const std::uint64_t body_size = pre.u(8);
    const auto crc = static_cast<std::uint32_t>(pre.u(4));
    const std::string_view rest = bytes.substr(preamble);
    if (header_size > rest.size() || body_size != rest.size() - header_size) return std::nullopt;
    if (crc_of(rest) != crc) return std::nullopt;

    reader r{rest.substr(0, header_size)};
    decoded d;
    d.key = r.text();
    auto e = std::make_shared<stored_response>();
    e->status = static_cast<unsigned>(r.u(4));
    e->lifetime = r.u(8);
    e->request_time = static_cast<std::int64_t>(r.u(8));
    e->response_time = static_cast<std::int64_t>(r.u(8));
    const std::uint64_t age = r.u(8);
    const std::uint64_t flags = r.u(4);
    if (flags > 1) return std::nullopt;
    e->serve_offline = flags == 1;
    for (auto n = r.u(4); r.ok && n > 0; --n) {
        std::string name = r.text();
        std::string value = r.text();
        if (!sound_field(name, value)) return std::nullopt;
        e->fields.push_back({std::move(name), std::move(value)});
    }
    for (auto n = r.u(4); r.ok && n > 0; --n) {
        std::string name = r.text();
        std::string value = r.text();
        e->vary_values.emplace_back(std::move(name), std::move(value));
    }
    if (!r.ok || !r.in.empty() || d.key.empty() || e->status < 100 || e->status > 999)
        return std::nullopt;
    e->body.assign(rest.substr(header_size));
    e->facts = facts_of(e->status, e->fields);
    e->facts.age = age;
    d.stored = std::move(e);
    return d;
}

tl::expected<std::shared_ptr<disk_store>, std::string> disk_store::open(const std::string& dir,
                                                                         std::size_t budget,
                                                                         std::size_t max_entry) {
    std::error_code ec;
    // Made here: for the relay's user alone (stored responses may be a site's private pages).
    if (fs::create_directories(dir, ec) && !ec)
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec)
        return tl::unexpected(
            fmt::format("cannot make the cache directory {}: {}", dir, ec.message()));
    const std::string canonical = fs::canonical(dir, ec).string();
    if (ec)
        return tl::unexpected(fmt::format("cannot open the cache directory {}: {}", dir, ec.message()));
    const std::lock_guard registry(open_stores_mutex());
    auto& stores = open_stores();
    if (auto it = stores.find(canonical); it != stores.end()) {
        if (auto live = it->second.lock()) {
            live->resize(budget, max_entry);
            return live;
        }
    }
    const std::string lock_path = canonical + "/lock";
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return tl::unexpected(
            fmt::format("cannot write in the cache directory {}: {}", dir, std::strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ::close(fd);
        return tl::unexpected(fmt::format(
            "the cache directory {} is in use by another process; give each relay its own", dir));
    }
    for (int i = 0; i < 256; ++i) {
        fs::create_directory(fmt::format("{}/{:02x}", canonical, i), ec);
        if (ec) {
            ::close(fd);
            return tl::unexpected(
                fmt::format("cannot make directories in {}: {}", dir, ec.message()));
        }
    }
    std::shared_ptr<disk_store> store(new disk_store(canonical, fd, budget, max_entry));
    store->index();
    stores[canonical] = store;
    return store;
}

disk_store::disk_store(std::string dir, int lock_fd, std::size_t budget, std::size_t max_entry)
    : dir_(std::move(dir)), lock_fd_(lock_fd), budget_(budget),
      max_entry_(std::min(max_entry, budget)) {}

disk_store::~disk_store() {
    const std::lock_guard registry(open_stores_mutex());
    auto& stores = open_stores();
    if (auto it = stores.find(dir_); it != stores.end() && it->second.expired()) stores.erase(it);
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

void disk_store::resize(std::size_t budget, std::size_t max_entry) {
    const std::lock_guard lock(mutex_);
    budget_ = budget;
    max_entry_ = std::min(max_entry, budget);
    evict_for(0);
}

std::string disk_store::path_of(const std::string& name) const {
    return fmt::format("{}/{}/{}", dir_, std::string_view(name).substr(0, 2), name);
}

// What the directory holds, oldest written first into the LRU list; leftovers of interrupted
// writes removed.
void disk_store::index() {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec))
        if (e.path().extension() == ".tmp") fs::remove(e.path(), ec);
    struct found_file {
        std::string name;
        std::uint64_t size;
        fs::file_time_type written;
    };
    std::vector<found_file> files;
    for (int i = 0; i < 256; ++i) {
        for (const auto& e : fs::directory_iterator(fmt::format("{}/{:02x}", dir_, i), ec)) {
            std::string name = e.path().filename().string();
            if (!entry_name(name) || !e.is_regular_file(ec)) continue;
            const auto size = e.file_size(ec);
            const auto written = e.last_write_time(ec);
            if (!ec) files.push_back({std::move(name), size, written});
        }
    }
    std::sort(files.begin(), files.end(),
              [](const found_file& a, const found_file& b) { return a.written < b.written; });
    for (auto& f : files) {
        const std::string kd = f.name.substr(0, key_digest_chars);
        auto it = slots_.find(kd);
        if (it == slots_.end()) {
            lru_.push_front(kd);
            it = slots_.emplace(kd, slot{{}, lru_.begin(), {}}).first;
        } else {
            lru_.splice(lru_.begin(), lru_, it->second.lru);
        }
        it->second.files.insert(it->second.files.begin(), file{std::move(f.name), f.size});
        bytes_ += f.size;
        ++entries_;
    }
    evict_for(0);
    if (entries_ > 0)
        spdlog::info("cache {}: {} stored response{} found on disk ({} bytes)", dir_, entries_,
                     entries_ == 1 ? "" : "s", bytes_);
}

std::size_t disk_store::variants(std::string_view key) const {
    const std::lock_guard lock(mutex_);
    const auto it = slots_.find(key_digest(key));
    return it == slots_.end() ? 0 : it->second.files.size();
}

std::vector<entry> disk_store::find(std::string_view key) {
    const std::lock_guard lock(mutex_);
    const auto it = slots_.find(key_digest(key));
    if (it == slots_.end()) return {};
    slot& s = it->second;
    std::vector<entry> out;
    for (std::size_t i = 0; i < s.files.size();) {
        const auto bytes = read_file(path_of(s.files[i].name), max_entry_ + (1u << 20));
        auto d = bytes ? decode(*bytes) : std::nullopt;
        if (!d) {
            ++counts_.corrupt;
            spdlog::warn("cache {}: dropped {}, which failed its checks (cut short or damaged)",
                         dir_, s.files[i].name);
            drop_file(s, i);
            continue;
        }
        ++i;
        if (d->key != key) continue;  // another key with the same digest: not ours
        s.key = std::move(d->key);
        ++counts_.reads;
        out.push_back(std::move(d->stored));
    }
    if (s.files.empty()) {
        drop(it);
        return out;
    }
    lru_.splice(lru_.begin(), lru_, s.lru);
    return out;
}

bool disk_store::writing() const {
    const std::lock_guard lock(mutex_);
    return writing_now();
}

bool disk_store::writing_now() const { return std::chrono::steady_clock::now() >= off_until_; }

std::size_t disk_store::bytes() const {
    const std::lock_guard lock(mutex_);
    return bytes_;
}

std::size_t disk_store::entries() const {
    const std::lock_guard lock(mutex_);
    return entries_;
}

disk_counters disk_store::counts() const {
    const std::lock_guard lock(mutex_);
    return counts_;
}

void disk_store::turn_off(const std::string& why) {
    ++counts_.failed;
    off_until_ = std::chrono::steady_clock::now() + off_after_failure;
    spdlog::warn("cache {}: writing to disk failed ({}); caching in memory only for the next {} s",
                 dir_, why, std::chrono::duration_cast<std::chrono::seconds>(off_after_failure).count());
}

bool disk_store::put(const std::string& key, entry e) {
    const std::lock_guard lock(mutex_);
    if (!writing_now()) return false;
    const std::string bytes = encode(key, *e);
    if (bytes.size() > max_entry_) return false;
    const std::string kd = key_digest(key);
    const std::string name = kd + "-" + vary_digest(e->vary_values);
    const std::string temp = fmt::format("{}/{}.{}.tmp", dir_, name, ++temp_serial_);
    if (auto failed = write_file(temp, bytes)) {
        ::unlink(temp.c_str());
        turn_off(*failed);
        return false;
    }
    if (::rename(temp.c_str(), path_of(name).c_str()) != 0) {
        const std::string why = std::strerror(errno);
        ::unlink(temp.c_str());
        turn_off(why);
        return false;
    }
    ++counts_.writes;
    if (auto it = slots_.find(kd); it != slots_.end()) {
        auto& files = it->second.files;
        // The file of the same Vary values was just replaced by the rename.
        const auto same = std::find_if(files.begin(), files.end(),
                                       [&](const file& f) { return f.name == name; });
        if (same != files.end()) {
            bytes_ -= same->size;
            --entries_;
            files.erase(same);
        }
    }
    evict_for(bytes.size());
    auto it = slots_.find(kd);
    if (it == slots_.end()) {
        lru_.push_front(kd);
        it = slots_.emplace(kd, slot{{}, lru_.begin(), key}).first;
    } else {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        it->second.key = key;
    }
    it->second.files.insert(it->second.files.begin(), file{name, bytes.size()});
    bytes_ += bytes.size();
    ++entries_;
    return true;
}

void disk_store::drop_file(slot& s, std::size_t i) {
    ::unlink(path_of(s.files[i].name).c_str());
    bytes_ -= s.files[i].size;
    --entries_;
    s.files.erase(s.files.begin() + static_cast<std::ptrdiff_t>(i));
}

void disk_store::drop(slot_map::iterator it) {
    while (!it->second.files.empty()) drop_file(it->second, it->second.files.size() - 1);
    lru_.erase(it->second.lru);
    slots_.erase(it);
}

void disk_store::evict_for(std::size_t incoming) {
    while (bytes_ + incoming > budget_ && !lru_.empty()) drop(slots_.find(lru_.back()));
}

std::size_t disk_store::remove(std::string_view key) {
    const std::lock_guard lock(mutex_);
    const auto it = slots_.find(key_digest(key));
    if (it == slots_.end()) return 0;
    if (!learn_key(it->second) || it->second.key != key) return 0;
    const std::size_t n = it->second.files.size();
    drop(it);
    return n;
}

// The key of a slot found on disk at start, from the first of its files that reads back whole.
bool disk_store::learn_key(slot& s) {
    while (s.key.empty() && !s.files.empty()) {
        const auto bytes = read_file(path_of(s.files.front().name), max_entry_ + (1u << 20));
        auto d = bytes ? decode(*bytes) : std::nullopt;
        if (d) {
            s.key = std::move(d->key);
        } else {
            ++counts_.corrupt;
            drop_file(s, 0);
        }
    }
    return !s.key.empty();
}

std::size_t disk_store::remove_prefix(std::string_view prefix) {
    const std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (auto it = slots_.begin(); it != slots_.end();) {
        const auto next = std::next(it);
        const bool known = learn_key(it->second);
        if (known && std::string_view(it->second.key).starts_with(prefix)) {
            n += it->second.files.size();
            drop(it);
        } else if (!known) {
            lru_.erase(it->second.lru);
            slots_.erase(it);
        }
        it = next;
    }
    return n;
}

}  // namespace porthole::cache

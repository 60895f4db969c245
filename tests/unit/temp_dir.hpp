#pragma once
// A directory of its own under the system's temporary directory for one test, removed with
// everything in it when the test ends.
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace porthole::test_support {

struct temp_dir {
    std::filesystem::path path;
    explicit temp_dir(const std::string& prefix = "porthole-test") {
        std::string pattern =
            (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        path = ::mkdtemp(pattern.data());
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace porthole::test_support

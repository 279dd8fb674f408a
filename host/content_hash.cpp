#include "content_hash.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lathe/error.hpp"
#include "lathe/master.hpp"
#include "report.hpp"

namespace lathe {

namespace {

struct fd_closer {
  int fd;
  ~fd_closer() { ::close(fd); }
};

struct state_deleter {
  void operator()(XXH3_state_t* s) const noexcept { XXH3_freeState(s); }
};

}  // namespace

std::string content_hash(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw input_error(file.string(), fmt::format("cannot open for hashing: {}", std::strerror(errno)));
  const fd_closer closer{fd};
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  const std::unique_ptr<XXH3_state_t, state_deleter> state(XXH3_createState());
  if (!state || XXH3_128bits_reset(state.get()) == XXH_ERROR) throw std::bad_alloc();
  std::vector<unsigned char> buffer(std::size_t{1} << 20);
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw input_error(file.string(), fmt::format("read failed while hashing: {}", std::strerror(errno)));
    if (n == 0) break;
    XXH3_128bits_update(state.get(), buffer.data(), static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
  }
  const XXH128_hash_t h = XXH3_128bits_digest(state.get());
  return fmt::format("xxh3-128:{:016x}{:016x}:{}", h.high64, h.low64, total);
}

std::string cached_content_hash(const std::filesystem::path& file, const std::filesystem::path& cache_dir) {
  std::error_code ec;
  const std::string path = std::filesystem::absolute(file, ec).lexically_normal().string();
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return content_hash(file);  // says why it cannot be read
  const auto mtime = std::filesystem::last_write_time(file, ec).time_since_epoch().count();
  if (ec) return content_hash(file);
  const nlohmann::json stat = {{"path", path}, {"bytes", size}, {"mtime", mtime}};
  const std::filesystem::path entry = cache_dir / fmt::format("{:016x}.json", fnv1a64(path));
  try {
    std::ifstream in(entry);
    const nlohmann::json cached = nlohmann::json::parse(in);
    if (cached.at("path") == stat.at("path") && cached.at("bytes") == stat.at("bytes") &&
        cached.at("mtime") == stat.at("mtime"))
      return cached.at("hash").get<std::string>();
  } catch (const std::exception&) {
    // No entry yet, or a damaged one: hash the file.
  }
  const std::string hash = content_hash(file);
  nlohmann::json fresh = stat;
  fresh["hash"] = hash;
  try {
    write_text_atomic(entry, fresh.dump());
  } catch (const output_error&) {
    // The cache only saves reading time.
  }
  return hash;
}

}  // namespace lathe

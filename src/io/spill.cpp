#include "lathe/spill.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "lathe/error.hpp"

namespace lathe {
namespace {

[[noreturn]] void fail_io(const std::filesystem::path& folder, const char* what, int err) {
  throw output_error(fmt::format("{}: cannot {} the spill file ({}); free space there or point the output elsewhere",
                                 folder.string(), what, std::strerror(err)));
}

// An unnamed file in `folder`: O_TMPFILE where the filesystem has it, else a named one unlinked
// at once.
int open_anonymous(const std::filesystem::path& folder) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) throw output_error(fmt::format("{}: cannot create the spill folder ({})", folder.string(), ec.message()));
#ifdef O_TMPFILE
  const int fd = ::open(folder.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
#endif
  std::string name = (folder / "spill-XXXXXX").string();
  const int named = ::mkostemp(name.data(), O_CLOEXEC);
  if (named < 0) fail_io(folder, "create", errno);
  ::unlink(name.c_str());
  return named;
}

// Writes (what == "write") or reads `count` floats at float offset `first` of the file,
// retrying short transfers and interruptions.
void transfer_all(int fd, const std::filesystem::path& folder, const char* what, float* data, std::size_t count,
                  std::size_t first) {
  const bool write = what[0] == 'w';
  auto* bytes = reinterpret_cast<char*>(data);
  std::size_t left = count * sizeof(float);
  auto offset = static_cast<off_t>(first * sizeof(float));
  while (left > 0) {
    const ssize_t n = write ? ::pwrite(fd, bytes, left, offset) : ::pread(fd, bytes, left, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_io(folder, what, n < 0 ? errno : (write ? ENOSPC : EIO));
    bytes += n;
    left -= static_cast<std::size_t>(n);
    offset += n;
  }
}

// Frames in a memory spill's first chunk and in its largest: 64 KiB and 2 MiB per channel.
constexpr std::size_t first_chunk_frames = std::size_t{1} << 14;
constexpr std::size_t max_chunk_frames = std::size_t{1} << 19;

}  // namespace

audio_spill::audio_spill(int channels) : channels_(channels) {
  LATHE_EXPECTS(channels >= 1 && channels <= max_channels, "spill channel count out of range");
}

void audio_spill::add_chunk() {
  chunk c;
  c.first = frames_;
  c.capacity = memory_.empty() ? first_chunk_frames : std::min(2 * memory_.back().capacity, max_chunk_frames);
  const std::size_t bytes = c.capacity * static_cast<std::size_t>(channels_) * sizeof(float);
  c.data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!c.data) throw std::bad_alloc();
  memory_.push_back(std::move(c));
}

audio_spill::audio_spill(int channels, const std::filesystem::path& folder) : channels_(channels), folder_(folder) {
  LATHE_EXPECTS(channels >= 1 && channels <= max_channels, "spill channel count out of range");
  fd_ = open_anonymous(folder);
  pending_.reserve(spill_block_frames * static_cast<std::size_t>(channels));
}

audio_spill audio_spill::borrow(const audio_buffer& audio) {
  audio_spill s;
  s.channels_ = audio.channels();
  s.frames_ = audio.frames();
  s.borrowed_ = &audio;
  return s;
}

audio_spill::audio_spill(audio_spill&& o) noexcept
    : channels_(o.channels_),
      frames_(o.frames_),
      borrowed_(o.borrowed_),
      memory_(std::move(o.memory_)),
      fd_(std::exchange(o.fd_, -1)),
      folder_(std::move(o.folder_)),
      pending_(std::move(o.pending_)) {}

audio_spill& audio_spill::operator=(audio_spill&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    channels_ = o.channels_;
    frames_ = o.frames_;
    borrowed_ = o.borrowed_;
    memory_ = std::move(o.memory_);
    fd_ = std::exchange(o.fd_, -1);
    folder_ = std::move(o.folder_);
    pending_ = std::move(o.pending_);
  }
  return *this;
}

audio_spill::~audio_spill() {
  if (fd_ >= 0) ::close(fd_);
}

void audio_spill::append(const_block_view in) {
  LATHE_EXPECTS(borrowed_ == nullptr, "a borrowed spill is read-only");
  LATHE_EXPECTS(in.channels == channels_, "spill channel count differs");
  if (fd_ < 0) {
    for (std::size_t done = 0; done < in.frames;) {
      if (memory_.empty() || frames_ == memory_.back().first + memory_.back().capacity) add_chunk();
      const chunk& k = memory_.back();
      const std::size_t at = frames_ - k.first;
      const std::size_t n = std::min(k.capacity - at, in.frames - done);
      for (int c = 0; c < channels_; ++c)
        std::copy_n(in[c] + done, n, k.data.get() + static_cast<std::size_t>(c) * k.capacity + at);
      done += n;
      frames_ += n;
    }
    return;
  }
  const auto ch = static_cast<std::size_t>(channels_);
  for (std::size_t done = 0; done < in.frames;) {
    const std::size_t room = spill_block_frames - pending_.size() / ch;
    const std::size_t n = std::min(room, in.frames - done);
    for (std::size_t i = 0; i < n; ++i)
      for (int c = 0; c < channels_; ++c) pending_.push_back(in[c][done + i]);
    done += n;
    frames_ += n;
    if (pending_.size() == spill_block_frames * ch) flush_pending();
  }
}

void audio_spill::flush_pending() const {
  if (pending_.empty()) return;
  const auto ch = static_cast<std::size_t>(channels_);
  const std::size_t frames_in_file = frames_ - pending_.size() / ch;
  transfer_all(fd_, folder_, "write", const_cast<float*>(pending_.data()), pending_.size(), frames_in_file * ch);
  pending_.clear();
}

void audio_spill::read(std::size_t first, block_view out) const {
  LATHE_EXPECTS(out.channels == channels_, "spill channel count differs");
  LATHE_EXPECTS(first <= frames_ && out.frames <= frames_ - first, "spill read past its end");
  if (borrowed_ != nullptr) {
    for (int c = 0; c < channels_; ++c) std::copy_n(borrowed_->channel(c) + first, out.frames, out[c]);
    return;
  }
  if (fd_ < 0) {
    if (out.frames == 0) return;
    // The chunk holding `first`: the last one starting at or before it.
    auto k = std::upper_bound(memory_.begin(), memory_.end(), first,
                              [](std::size_t f, const chunk& c) { return f < c.first; }) -
             1;
    for (std::size_t done = 0; done < out.frames; ++k) {
      const std::size_t at = first + done - k->first;
      const std::size_t n = std::min(k->capacity - at, out.frames - done);
      for (int c = 0; c < channels_; ++c)
        std::copy_n(k->data.get() + static_cast<std::size_t>(c) * k->capacity + at, n, out[c] + done);
      done += n;
    }
    return;
  }
  if (!pending_.empty()) flush_pending();  // a spill read while it is written (one thread); see seal()
  const auto ch = static_cast<std::size_t>(channels_);
  thread_local std::vector<float> io;  // interleaved frames as the file holds them
  io.resize(spill_block_frames * ch);
  for (std::size_t done = 0; done < out.frames;) {
    const std::size_t n = std::min(spill_block_frames, out.frames - done);
    transfer_all(fd_, folder_, "read", io.data(), n * ch, (first + done) * ch);
    for (std::size_t i = 0; i < n; ++i)
      for (int c = 0; c < channels_; ++c) out[c][done + i] = io[i * ch + static_cast<std::size_t>(c)];
    done += n;
  }
}

std::size_t audio_spill::memory_bytes() const noexcept {
  if (borrowed_ != nullptr) return 0;
  if (fd_ >= 0) return pending_.capacity() * sizeof(float);
  std::size_t b = 0;
  for (const chunk& k : memory_) b += k.capacity * static_cast<std::size_t>(channels_) * sizeof(float);
  return b;
}

}  // namespace lathe

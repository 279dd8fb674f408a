// Decoding through libsndfile, encoding WAV through libsndfile and FLAC through libFLAC, with
// atomic replacement of the destination.
#include "lathe/audio_io.hpp"

#include <FLAC/metadata.h>
#include <FLAC/stream_encoder.h>
#include <fcntl.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "lathe/error.hpp"

namespace lathe {
namespace fs = std::filesystem;

namespace {

// Frames per libsndfile read/write call: large enough to amortize the call, small enough that
// the interleaved scratch stays in L2.
constexpr std::size_t io_chunk_frames = 16'384;
constexpr double min_rate_hz = 8'000.0;
constexpr double max_rate_hz = 384'000.0;

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

/// Owns a POSIX file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }
  int get() const noexcept { return fd_; }
  /// Closes now and reports close()'s errno (0 when fine): a write error can surface here.
  int close_checked() noexcept {
    if (fd_ < 0) return 0;
    const int r = ::close(fd_);
    fd_ = -1;
    return r == 0 ? 0 : errno;
  }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct sndfile_closer {
  void operator()(SNDFILE* f) const noexcept { sf_close(f); }
};
using sndfile_ptr = std::unique_ptr<SNDFILE, sndfile_closer>;

/// "1:02.345" for a position in frames; the user finds the spot in any editor with it.
std::string format_time(std::size_t frame, double rate_hz) {
  const double t = rate_hz > 0 ? static_cast<double>(frame) / rate_hz : 0.0;
  const auto minutes = static_cast<long long>(t / 60.0);
  const double seconds = t - 60.0 * static_cast<double>(minutes);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld:%06.3f", minutes, seconds);
  return buf;
}

int parse_track_number(const char* s) {
  if (s == nullptr) return 0;
  while (*s == ' ' || *s == '\t') ++s;
  long v = 0;
  bool any = false;
  for (; *s >= '0' && *s <= '9' && v < 1'000'000; ++s) {
    v = v * 10 + (*s - '0');
    any = true;
  }
  return any ? static_cast<int>(v) : 0;  // "3/12" -> 3, "A1" -> 0 (unknown)
}

std::string sf_string(SNDFILE* f, int which) {
  const char* s = sf_get_string(f, which);
  return s ? std::string(s) : std::string();
}

struct format_names {
  std::string container, encoding;
  int bit_depth = 0;
};

std::string sf_format_name(int format) {
  SF_FORMAT_INFO fi{};
  fi.format = format;
  if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.extension) return fi.extension;
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%x", static_cast<unsigned>(format));
  return buf;
}

format_names describe_format(int format) {
  format_names n;
  switch (format & SF_FORMAT_TYPEMASK) {
    case SF_FORMAT_WAV:
    case SF_FORMAT_WAVEX:
      n.container = "wav";
      break;
    case SF_FORMAT_AIFF:
      n.container = "aiff";
      break;
    case SF_FORMAT_FLAC:
      n.container = "flac";
      break;
    case SF_FORMAT_OGG:
      n.container = "ogg";
      break;
    case SF_FORMAT_MPEG:
      n.container = "mp3";
      break;
    case SF_FORMAT_RF64:
      n.container = "rf64";
      break;
    case SF_FORMAT_W64:
      n.container = "w64";
      break;
    case SF_FORMAT_CAF:
      n.container = "caf";
      break;
    default:
      n.container = sf_format_name(format & SF_FORMAT_TYPEMASK);
      break;
  }
  switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8:
      n.encoding = "pcm8";
      n.bit_depth = 8;
      break;
    case SF_FORMAT_PCM_16:
      n.encoding = "pcm16";
      n.bit_depth = 16;
      break;
    case SF_FORMAT_PCM_24:
      n.encoding = "pcm24";
      n.bit_depth = 24;
      break;
    case SF_FORMAT_PCM_32:
      n.encoding = "pcm32";
      n.bit_depth = 32;
      break;
    case SF_FORMAT_FLOAT:
      n.encoding = "float";
      break;
    case SF_FORMAT_DOUBLE:
      n.encoding = "double";
      break;
    case SF_FORMAT_VORBIS:
      n.encoding = "vorbis";
      break;
    case SF_FORMAT_OPUS:
      n.encoding = "opus";
      break;
    case SF_FORMAT_MPEG_LAYER_I:
      n.encoding = "mp1";
      break;
    case SF_FORMAT_MPEG_LAYER_II:
      n.encoding = "mp2";
      break;
    case SF_FORMAT_MPEG_LAYER_III:
      n.encoding = "mp3";
      break;
    case SF_FORMAT_ALAC_16:
      n.encoding = "alac16";
      n.bit_depth = 16;
      break;
    case SF_FORMAT_ALAC_20:
      n.encoding = "alac20";
      n.bit_depth = 20;
      break;
    case SF_FORMAT_ALAC_24:
      n.encoding = "alac24";
      n.bit_depth = 24;
      break;
    case SF_FORMAT_ALAC_32:
      n.encoding = "alac32";
      n.bit_depth = 32;
      break;
    case SF_FORMAT_ULAW:
      n.encoding = "ulaw";
      break;
    case SF_FORMAT_ALAW:
      n.encoding = "alaw";
      break;
    default:
      n.encoding = sf_format_name(format & SF_FORMAT_SUBMASK);
      break;
  }
  return n;
}

std::uint32_t le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
std::uint32_t be32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[3]) | static_cast<std::uint32_t>(p[2]) << 8 |
         static_cast<std::uint32_t>(p[1]) << 16 | static_cast<std::uint32_t>(p[0]) << 24;
}

/// Frames the header of a RIFF WAV or AIFF file declares, when it says. libsndfile silently
/// shortens a data chunk that runs past the end of the file, so a truncated file would
/// otherwise decode as a shorter, "valid" one.
std::optional<std::uint64_t> declared_frames(int fd, int format) {
  const int type = format & SF_FORMAT_TYPEMASK;
  if (type != SF_FORMAT_WAV && type != SF_FORMAT_WAVEX && type != SF_FORMAT_AIFF) return std::nullopt;
  unsigned char hdr[12];
  if (::pread(fd, hdr, 12, 0) != 12) return std::nullopt;
  const bool riff = std::memcmp(hdr, "RIFF", 4) == 0 && std::memcmp(hdr + 8, "WAVE", 4) == 0;
  const bool aiff = std::memcmp(hdr, "FORM", 4) == 0 &&
                    (std::memcmp(hdr + 8, "AIFF", 4) == 0 || std::memcmp(hdr + 8, "AIFC", 4) == 0);
  if (!riff && !aiff) return std::nullopt;
  std::uint64_t pos = 12;
  std::uint32_t block_align = 0;
  for (int guard = 0; guard < 1'000; ++guard) {
    unsigned char ch[26];
    const ssize_t got = ::pread(fd, ch, sizeof ch, static_cast<off_t>(pos));
    if (got < 8) return std::nullopt;
    const std::uint32_t size = riff ? le32(ch + 4) : be32(ch + 4);
    if (riff && std::memcmp(ch, "fmt ", 4) == 0 && got >= 22) {
      block_align = static_cast<std::uint32_t>(ch[8 + 12]) | static_cast<std::uint32_t>(ch[8 + 13]) << 8;
    } else if (riff && std::memcmp(ch, "data", 4) == 0) {
      // 0 and 0xFFFFFFFF mark a stream written without a final size: nothing declared.
      if (size == 0 || size == 0xFFFF'FFFFu || block_align == 0) return std::nullopt;
      return size / block_align;
    } else if (aiff && std::memcmp(ch, "COMM", 4) == 0 && got >= 14) {
      return be32(ch + 10);
    }
    pos += 8 + static_cast<std::uint64_t>(size) + (size & 1u);
  }
  return std::nullopt;
}

/// An input opened read-only; the descriptor outlives the SNDFILE.
struct open_input {
  unique_fd fd;
  sndfile_ptr file;
  SF_INFO info{};
  std::uintmax_t file_bytes = 0;
};

[[noreturn]] void fail(const fs::path& p, const std::string& reason) {
  throw input_error(p.string(), reason);
}

void open_checked(const fs::path& path, open_input& in) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    const int err = ec ? ec.value() : ENOENT;
    fail(path, "cannot open: " + errno_text(err) + " (check the path and the catalog)");
  }
  if (fs::is_directory(st)) fail(path, "is a folder, not an audio file");
  in.fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd.get() < 0) fail(path, "cannot open: " + errno_text(errno));
  struct stat sb {};
  if (::fstat(in.fd.get(), &sb) == 0) in.file_bytes = static_cast<std::uintmax_t>(sb.st_size);
  if (in.file_bytes == 0) fail(path, "is an empty file (0 bytes): it contains no audio");

  // close_desc = false: the descriptor stays ours, also when sf_open_fd fails.
  in.file.reset(sf_open_fd(in.fd.get(), SFM_READ, &in.info, 0));
  if (!in.file) {
    fail(path, std::string("not an audio file lathe can read, or an unsupported format (libsndfile: ") +
                   sf_strerror(nullptr) + "); lathe reads WAV, AIFF, FLAC, Ogg Vorbis/Opus and MP3");
  }
  if (in.info.channels > 2) {
    fail(path, "has " + std::to_string(in.info.channels) +
                   " channels; lathe masters mono or stereo mixes (export a stereo mix)");
  }
  if (in.info.channels < 1) fail(path, "declares no channels; the file is corrupt");
  const double rate = in.info.samplerate;
  if (rate < min_rate_hz || rate > max_rate_hz) {
    fail(path, "has a sample rate of " + std::to_string(in.info.samplerate) + " Hz; lathe accepts 8000 to 384000 Hz");
  }
  if (in.info.frames <= 0) fail(path, "contains no audio (0 sample frames)");
  if (const auto declared = declared_frames(in.fd.get(), in.info.format);
      declared && *declared > static_cast<std::uint64_t>(in.info.frames)) {
    fail(path, "is truncated or corrupt: its header declares " + std::to_string(*declared) + " frames but only " +
                   std::to_string(in.info.frames) + " are present; the audio stops at " +
                   format_time(static_cast<std::size_t>(in.info.frames), rate) + " (re-export or re-copy the file)");
  }
}

/// ISRC is not among libsndfile's strings; FLAC inputs carry it as a Vorbis comment.
std::string flac_isrc(const fs::path& path) {
  FLAC__StreamMetadata* tags = nullptr;
  if (!FLAC__metadata_get_tags(path.c_str(), &tags) || tags == nullptr) return {};
  std::string isrc;
  const auto& vc = tags->data.vorbis_comment;
  for (FLAC__uint32 i = 0; i < vc.num_comments; ++i) {
    const char* e = reinterpret_cast<const char*>(vc.comments[i].entry);
    const std::size_t len = vc.comments[i].length;
    if (len > 5 && strncasecmp(e, "ISRC=", 5) == 0) {
      isrc.assign(e + 5, len - 5);
      break;
    }
  }
  FLAC__metadata_object_delete(tags);
  return isrc;
}

source_info make_info(const fs::path& path, const open_input& in) {
  source_info s;
  s.path = path;
  const format_names n = describe_format(in.info.format);
  s.container = n.container;
  s.encoding = n.encoding;
  s.bit_depth = n.bit_depth;
  s.sample_rate_hz = in.info.samplerate;
  s.channels = in.info.channels;
  s.frames = static_cast<std::size_t>(in.info.frames);
  s.file_bytes = in.file_bytes;
  SNDFILE* f = in.file.get();
  s.tags.title = sf_string(f, SF_STR_TITLE);
  s.tags.artist = sf_string(f, SF_STR_ARTIST);
  s.tags.album = sf_string(f, SF_STR_ALBUM);
  s.tags.track_number = parse_track_number(sf_get_string(f, SF_STR_TRACKNUMBER));
  if ((in.info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC) s.tags.isrc = flac_isrc(path);
  return s;
}

/// First non-finite sample in [0, n), or n. The OR-reduction vectorizes; the exact position is
/// searched only when the block has one.
std::size_t first_non_finite(const float* x, std::size_t n) {
  constexpr float big = std::numeric_limits<float>::max();
  int bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad |= !(std::fabs(x[i]) <= big);
  if (!bad) return n;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return n;
}

}  // namespace

source_info probe_file(const fs::path& path) {
  open_input in;
  open_checked(path, in);
  return make_info(path, in);
}

// ---- reading -----------------------------------------------------------------------------------

struct audio_reader::state {
  fs::path path;
  open_input in;
  source_info info;
  std::size_t declared_frames = 0;  ///< the header's count; read() never asks for more
  std::size_t pos = 0;              ///< frames decoded so far
  bool lossy = false;
  bool stream_end = false;  ///< the decoder gave no more frames
  bool ended = false;       ///< the end checks have run
  bool failed = false;
  /// The first decoder error, kept: libsndfile clears its error at every call, so a later
  /// call that returns nothing would otherwise hide it.
  int decode_err = SF_ERR_NO_ERROR;
  std::string decode_err_text;
  std::vector<float> scratch;  ///< one interleaved stereo chunk; empty for mono
};

audio_reader::audio_reader(const fs::path& path) : s_(std::make_unique<state>()) {
  state& s = *s_;
  s.path = path;
  open_checked(path, s.in);
  s.info = make_info(path, s.in);
  s.declared_frames = s.info.frames;
  // A lossy stream's frame count in the header is the encoder's estimate (Ogg granule positions,
  // MP3 Xing frames) and real files end a few frames short of it; that is the stream's end, not
  // damage. A shortfall of more than 0.1 % or a decoder error is still reported.
  s.lossy = s.info.encoding == "vorbis" || s.info.encoding == "opus" || s.info.encoding.rfind("mp", 0) == 0;
  if (s.in.info.channels == 2) s.scratch.resize(io_chunk_frames * 2);
}

audio_reader::audio_reader(audio_reader&&) noexcept = default;
audio_reader& audio_reader::operator=(audio_reader&&) noexcept = default;
audio_reader::~audio_reader() = default;

const source_info& audio_reader::info() const noexcept {
  return s_->info;
}

namespace {

/// Throws for the earliest non-finite sample in time in frames [0, n) of a block that starts
/// at frame `start`; on a tie the lower channel is named.
void check_finite(const fs::path& path, const float* const* ch, int channels, std::size_t n, std::size_t start,
                  double rate_hz) {
  std::size_t bad_frame = n;
  int bad_channel = 0;
  for (int c = 0; c < channels; ++c) {
    const std::size_t i = first_non_finite(ch[c], bad_frame);
    if (i < bad_frame) {
      bad_frame = i;
      bad_channel = c;
    }
  }
  if (bad_frame == n) return;
  const bool nan = std::isnan(ch[bad_channel][bad_frame]);
  const std::size_t frame = start + bad_frame;
  fail(path, std::string("has ") + (nan ? "a NaN" : "an infinite") + " sample (the first) on channel " +
                 std::to_string(bad_channel + 1) + " at " + format_time(frame, rate_hz) + " (frame " +
                 std::to_string(frame) + "); the file is damaged or was exported wrongly: re-export it");
}

}  // namespace

std::size_t audio_reader::read(block_view out) {
  LATHE_EXPECTS(s_ != nullptr, "read() on a moved-from audio_reader");
  LATHE_EXPECTS(out.channels == 2 && out.frames > 0, "read() fills two channels of at least one frame");
  state& s = *s_;
  LATHE_EXPECTS(!s.failed, "read() after an input error");
  if (s.ended) return 0;
  const int channels = s.in.info.channels;
  SNDFILE* f = s.in.file.get();
  const auto spent_on_throw = [&](auto&& fn) {
    try {
      fn();
    } catch (...) {
      s.failed = true;
      throw;
    }
  };

  std::size_t done = 0;
  while (done < out.frames && !s.stream_end) {
    const std::size_t want = std::min({io_chunk_frames, out.frames - done, s.declared_frames - s.pos});
    if (want == 0) break;
    float* left = out[0] + done;
    float* right = out[1] + done;
    sf_count_t got = 0;
    if (channels == 1) {
      // Mono interleaved is planar already: read straight into the left channel.
      got = sf_readf_float(f, left, static_cast<sf_count_t>(want));
    } else {
      got = sf_readf_float(f, s.scratch.data(), static_cast<sf_count_t>(want));
      const float* x = s.scratch.data();
      for (sf_count_t i = 0; i < got; ++i) {
        left[i] = x[2 * i];
        right[i] = x[2 * i + 1];
      }
    }
    if (const int err = sf_error(f); err != SF_ERR_NO_ERROR && s.decode_err == SF_ERR_NO_ERROR) {
      s.decode_err = err;
      s.decode_err_text = sf_strerror(f);
    }
    if (got <= 0) {
      s.stream_end = true;
      break;
    }
    const auto n = static_cast<std::size_t>(got);
    const float* planes[2] = {left, right};
    spent_on_throw([&] { check_finite(s.path, planes, channels, n, s.pos, s.info.sample_rate_hz); });
    if (channels == 1) std::copy_n(left, n, right);
    s.pos += n;
    done += n;
  }
  // A stream that stops short hands over what it decoded first; the next call reports it. A
  // complete one is checked at once, so a caller that stops at the header's count sees errors.
  if (s.pos == s.declared_frames || (s.stream_end && done == 0)) {
    s.ended = true;
    const std::size_t frames = s.declared_frames;
    if (s.lossy && s.decode_err == SF_ERR_NO_ERROR && s.pos < frames && s.pos > 0 &&
        frames - s.pos <= std::max<std::size_t>(frames / 1000, 1)) {
      s.info.frames = s.pos;
    } else if (s.pos < frames || s.decode_err != SF_ERR_NO_ERROR) {
      std::string reason = "is truncated or corrupt: read " + std::to_string(s.pos) + " of " + std::to_string(frames) +
                           " frames; decoding stopped at " + format_time(s.pos, s.info.sample_rate_hz);
      if (s.decode_err != SF_ERR_NO_ERROR) reason += " (libsndfile: " + s.decode_err_text + ")";
      spent_on_throw([&] { fail(s.path, reason + "; re-export or re-copy the file"); });
    }
  }
  return done;
}

decoded_track decode_file(const fs::path& path) {
  audio_reader reader(path);
  decoded_track t;
  const std::size_t declared = reader.info().frames;
  t.audio.resize(2, declared);
  std::size_t pos = 0;
  while (pos < declared) {
    const std::size_t n = reader.read(t.audio.view(pos, declared - pos));
    if (n == 0) break;
    pos += n;
  }
  t.info = reader.info();
  if (pos < declared) {
    // A lossy stream that ended within its tolerance: keep exactly the frames decoded.
    audio_buffer kept(2, pos);
    std::copy_n(t.audio.channel(0), pos, kept.channel(0));
    std::copy_n(t.audio.channel(1), pos, kept.channel(1));
    t.audio = std::move(kept);
  }
  return t;
}

// ---- containers --------------------------------------------------------------------------------

bool parse_container(const std::string& name, container_format& out) {
  if (name == "wav") {
    out = container_format::wav;
    return true;
  }
  if (name == "flac") {
    out = container_format::flac;
    return true;
  }
  return false;
}

const char* to_string(container_format c) noexcept {
  return c == container_format::wav ? "wav" : "flac";
}
const char* file_extension(container_format c) noexcept {
  return to_string(c);
}

// ---- writing -----------------------------------------------------------------------------------

namespace {

std::atomic<std::uint64_t> temp_counter{0};

/// A temporary file next to the destination; removed on destruction unless committed.
class temp_output {
 public:
  explicit temp_output(const fs::path& dest) : dest_(dest) {
    const fs::path dir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
    std::string name = ".";
    name += dest.filename().string();
    name += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(temp_counter.fetch_add(1));
    path_ = dir / name;
    fd_.reset(::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    if (fd_.get() < 0)
      throw output_error(dest.string() + ": cannot create a temporary file in " + dir.string() + ": " +
                         errno_text(errno));
  }
  temp_output(const temp_output&) = delete;
  temp_output& operator=(const temp_output&) = delete;
  ~temp_output() {
    fd_.reset();
    if (!committed_) {
      std::error_code ec;
      fs::remove(path_, ec);
    }
  }
  int fd() const noexcept { return fd_.get(); }

  /// fsync, close, rename over dest. Data reaches the disk before the name does, so a crash
  /// leaves either the old dest or the complete new one.
  void commit() {
    if (::fsync(fd_.get()) != 0) fail_errno("cannot flush to disk");
    if (const int err = fd_.close_checked(); err != 0) fail_errno("cannot close", err);
    std::error_code ec;
    fs::rename(path_, dest_, ec);
    if (ec) throw output_error(dest_.string() + ": cannot move the finished file into place: " + ec.message());
    committed_ = true;
    const fs::path dir = dest_.has_parent_path() ? dest_.parent_path() : fs::path(".");
    unique_fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.get() >= 0) ::fsync(d.get());  // best effort: the rename's durability
  }
  [[noreturn]] void fail_errno(const std::string& what, int err = -1) const {
    throw output_error(dest_.string() + ": " + what + ": " + errno_text(err < 0 ? errno : err));
  }

 private:
  fs::path dest_, path_;
  unique_fd fd_;
  bool committed_ = false;
};

struct flac_sink {
  int fd;
  int err = 0;
};

FLAC__StreamEncoderWriteStatus flac_write(const FLAC__StreamEncoder*, const FLAC__byte buffer[], size_t bytes, uint32_t,
                                          uint32_t, void* client) {
  auto* s = static_cast<flac_sink*>(client);
  while (bytes > 0) {
    const ssize_t w = ::write(s->fd, buffer, bytes);
    if (w < 0) {
      if (errno == EINTR) continue;
      s->err = errno;
      return FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR;
    }
    buffer += w;
    bytes -= static_cast<size_t>(w);
  }
  return FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
}

FLAC__StreamEncoderSeekStatus flac_seek(const FLAC__StreamEncoder*, FLAC__uint64 offset, void* client) {
  auto* s = static_cast<flac_sink*>(client);
  return ::lseek(s->fd, static_cast<off_t>(offset), SEEK_SET) < 0 ? FLAC__STREAM_ENCODER_SEEK_STATUS_ERROR
                                                                  : FLAC__STREAM_ENCODER_SEEK_STATUS_OK;
}

FLAC__StreamEncoderTellStatus flac_tell(const FLAC__StreamEncoder*, FLAC__uint64* offset, void* client) {
  auto* s = static_cast<flac_sink*>(client);
  const off_t p = ::lseek(s->fd, 0, SEEK_CUR);
  if (p < 0) return FLAC__STREAM_ENCODER_TELL_STATUS_ERROR;
  *offset = static_cast<FLAC__uint64>(p);
  return FLAC__STREAM_ENCODER_TELL_STATUS_OK;
}

struct flac_encoder_deleter {
  void operator()(FLAC__StreamEncoder* e) const noexcept { FLAC__stream_encoder_delete(e); }
};
struct flac_metadata_deleter {
  void operator()(FLAC__StreamMetadata* m) const noexcept { FLAC__metadata_object_delete(m); }
};

/// What libsndfile may write around a WAV's samples, tags aside: RIFF, fmt (up to
/// WAVE_FORMAT_EXTENSIBLE), fact, PEAK for every channel and the data header take under 200
/// bytes; the rest is room to spare.
constexpr std::uint64_t wav_header_allowance_bytes = 4'096;

/// The LIST/INFO chunk's size bound: its header, then for each string an id, a size, the
/// text with its NUL and a pad byte.
std::uint64_t wav_tag_bytes(const track_tags& tags) {
  std::uint64_t n = 12;
  for (const std::size_t len : {tags.title.size(), tags.artist.size(), tags.album.size(),
                                tags.track_number > 0 ? std::to_string(tags.track_number).size() : std::size_t{0}})
    if (len > 0) n += 8 + len + 2;
  return n;
}

}  // namespace

bool wav_needs_rf64(std::size_t frames, int channels, int bit_depth, const track_tags& tags,
                    std::uint64_t riff_limit_bytes) {
  LATHE_EXPECTS(channels >= 1, "at least one channel");
  LATHE_EXPECTS(bit_depth == 16 || bit_depth == 24 || bit_depth == 32, "bit depth 16, 24 or 32");
  const auto frame_bytes = static_cast<std::uint64_t>(channels) * static_cast<std::uint64_t>(bit_depth / 8);
  const std::uint64_t header = wav_header_allowance_bytes + wav_tag_bytes(tags);
  // Divided rather than multiplied: no frame count can overflow the test.
  return header >= riff_limit_bytes || frames > (riff_limit_bytes - header) / frame_bytes;
}

struct audio_writer::state {
  explicit state(const fs::path& d) : dest(d), tmp(d) {}

  [[noreturn]] void fail_wav(SNDFILE* f) const {
    throw output_error(dest.string() + ": cannot write WAV: " + sf_strerror(f));
  }
  [[noreturn]] void fail_flac(const std::string& why) const {
    throw output_error(dest.string() + ": cannot write FLAC: " + why);
  }
  std::string flac_state_text() const {
    if (sink.err != 0) return errno_text(sink.err);
    return FLAC__stream_encoder_get_resolved_state_string(flac.get());
  }
  void open_wav(double sample_rate_hz, const track_tags& tags, std::uint64_t riff_limit_bytes);
  void open_flac(double sample_rate_hz, const track_tags& tags);
  /// The checks every write() makes; returns the frame count.
  std::size_t frames_to_write(std::size_t samples) const;

  /// Runs `fn`; a throw leaves the writer spent, so commit() cannot keep a damaged file.
  template <class Fn>
  void or_spent(Fn&& fn) {
    try {
      fn();
    } catch (...) {
      spent = true;
      throw;
    }
  }

  fs::path dest;
  container_format container = container_format::wav;
  int channels = 2;
  int bit_depth = 24;
  std::size_t total_frames = 0;
  std::size_t written = 0;
  bool spent = false;  ///< a write or the commit failed, or the commit succeeded
  // Destroyed in reverse: the encoders finish into the descriptor before tmp closes and removes it.
  temp_output tmp;
  flac_sink sink{-1};
  std::unique_ptr<FLAC__StreamMetadata, flac_metadata_deleter> vorbis_comment;
  std::unique_ptr<FLAC__StreamEncoder, flac_encoder_deleter> flac;
  sndfile_ptr wav;
  std::vector<std::int32_t> scratch;  ///< one chunk of left-justified integers for libsndfile
};

void audio_writer::state::open_wav(double sample_rate_hz, const track_tags& tags, std::uint64_t riff_limit_bytes) {
  SF_INFO info{};
  info.samplerate = static_cast<int>(std::lround(sample_rate_hz));
  info.channels = channels;
  // RF64 only where RIFF's 32-bit sizes cannot hold the file: a smaller one stays the plain WAV
  // every reader takes. libsndfile writes the same LIST/INFO strings into RF64.
  const int riff_type =
      wav_needs_rf64(total_frames, channels, bit_depth, tags, riff_limit_bytes) ? SF_FORMAT_RF64 : SF_FORMAT_WAV;
  info.format = riff_type | (bit_depth == 16 ? SF_FORMAT_PCM_16 : bit_depth == 24 ? SF_FORMAT_PCM_24 : SF_FORMAT_FLOAT);
  wav.reset(sf_open_fd(tmp.fd(), SFM_WRITE, &info, 0));
  if (!wav) fail_wav(nullptr);
  SNDFILE* f = wav.get();
  // Strings go in before the audio so libsndfile places the LIST/INFO chunk in the header.
  if (!tags.title.empty()) sf_set_string(f, SF_STR_TITLE, tags.title.c_str());
  if (!tags.artist.empty()) sf_set_string(f, SF_STR_ARTIST, tags.artist.c_str());
  if (!tags.album.empty()) sf_set_string(f, SF_STR_ALBUM, tags.album.c_str());
  if (tags.track_number > 0) {
    const std::string tn = std::to_string(tags.track_number);
    sf_set_string(f, SF_STR_TRACKNUMBER, tn.c_str());
  }
  if (bit_depth != 32) scratch.resize(io_chunk_frames * static_cast<std::size_t>(channels));
}

void audio_writer::state::open_flac(double sample_rate_hz, const track_tags& tags) {
  vorbis_comment.reset(FLAC__metadata_object_new(FLAC__METADATA_TYPE_VORBIS_COMMENT));
  if (!vorbis_comment) fail_flac("out of memory");
  auto add = [&](const char* key, const std::string& value) {
    if (value.empty()) return;
    FLAC__StreamMetadata_VorbisComment_Entry e;
    if (!FLAC__metadata_object_vorbiscomment_entry_from_name_value_pair(&e, key, value.c_str()) ||
        !FLAC__metadata_object_vorbiscomment_append_comment(vorbis_comment.get(), e, /*copy=*/false)) {
      fail_flac(std::string("cannot store the ") + key + " tag");
    }
  };
  add("TITLE", tags.title);
  add("ARTIST", tags.artist);
  add("ALBUM", tags.album);
  add("TRACKNUMBER", tags.track_number > 0 ? std::to_string(tags.track_number) : std::string());
  add("ISRC", tags.isrc);

  flac.reset(FLAC__stream_encoder_new());
  if (!flac) fail_flac("out of memory");
  FLAC__StreamEncoder* enc = flac.get();
  FLAC__StreamMetadata* blocks[1] = {vorbis_comment.get()};
  const bool ok = FLAC__stream_encoder_set_verify(enc, false) && FLAC__stream_encoder_set_compression_level(enc, 5) &&
                  FLAC__stream_encoder_set_channels(enc, static_cast<uint32_t>(channels)) &&
                  FLAC__stream_encoder_set_bits_per_sample(enc, static_cast<uint32_t>(bit_depth)) &&
                  FLAC__stream_encoder_set_sample_rate(enc, static_cast<uint32_t>(std::lround(sample_rate_hz))) &&
                  FLAC__stream_encoder_set_total_samples_estimate(enc, total_frames) &&
                  FLAC__stream_encoder_set_metadata(enc, blocks, 1);
  if (!ok) fail_flac("cannot configure the encoder");
  sink.fd = tmp.fd();
  // The encoder keeps &sink: the state lives on the heap, so moving the writer keeps it valid.
  const auto init = FLAC__stream_encoder_init_stream(enc, flac_write, flac_seek, flac_tell, nullptr, &sink);
  if (init != FLAC__STREAM_ENCODER_INIT_STATUS_OK) fail_flac(FLAC__StreamEncoderInitStatusString[init]);
}

audio_writer::audio_writer(const fs::path& dest, container_format container, int channels, double sample_rate_hz,
                           int bit_depth, const track_tags& tags, std::size_t total_frames,
                           std::uint64_t riff_limit_bytes) {
  LATHE_EXPECTS(channels == 1 || channels == 2, "lathe writes mono or stereo");
  LATHE_EXPECTS(bit_depth == 16 || bit_depth == 24 || bit_depth == 32, "bit depth 16, 24 or 32");
  if (container == container_format::flac && bit_depth == 32) {
    throw output_error(dest.string() + ": FLAC holds integer samples; 32-bit float output needs container \"wav\"");
  }
  LATHE_EXPECTS(sample_rate_hz >= 1.0 && sample_rate_hz <= 655'350.0, "sample rate out of range");
  if (dest.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(dest.parent_path(), ec);
    if (ec)
      throw output_error(dest.string() + ": cannot create the folder " + dest.parent_path().string() + ": " +
                         ec.message());
  }
  s_ = std::make_unique<state>(dest);
  state& s = *s_;
  s.container = container;
  s.channels = channels;
  s.bit_depth = bit_depth;
  s.total_frames = total_frames;
  if (container == container_format::wav) {
    s.open_wav(sample_rate_hz, tags, riff_limit_bytes);
  } else {
    s.open_flac(sample_rate_hz, tags);
  }
}

audio_writer::audio_writer(audio_writer&&) noexcept = default;
audio_writer& audio_writer::operator=(audio_writer&&) noexcept = default;
audio_writer::~audio_writer() = default;

std::size_t audio_writer::frames_written() const noexcept {
  return s_ ? s_->written : 0;
}

std::size_t audio_writer::state::frames_to_write(std::size_t samples) const {
  LATHE_EXPECTS(samples % static_cast<std::size_t>(channels) == 0, "samples must be whole frames");
  const std::size_t frames = samples / static_cast<std::size_t>(channels);
  LATHE_EXPECTS(frames <= total_frames - written, "no more frames than total_frames");
  if (spent) throw output_error(dest.string() + ": cannot write: the file is finished or a write failed");
  return frames;
}

void audio_writer::write(std::span<const std::int32_t> interleaved) {
  LATHE_EXPECTS(s_ != nullptr, "write() on a moved-from audio_writer");
  state& s = *s_;
  const std::size_t frames = s.frames_to_write(interleaved.size());
  LATHE_EXPECTS(s.bit_depth != 32, "integer samples need bit depth 16 or 24");
  // Out-of-range integers would wrap silently in the shift (WAV) or fail inside libFLAC.
  const std::int32_t hi = (std::int32_t{1} << (s.bit_depth - 1)) - 1, lo = -hi - 1;
  std::int32_t mn = 0, mx = 0;
  for (const std::int32_t v : interleaved) {
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  LATHE_EXPECTS(mn >= lo && mx <= hi, "integer samples must fit the bit depth");
  const auto ch = static_cast<std::size_t>(s.channels);
  s.or_spent([&] {
    for (std::size_t pos = 0; pos < frames; pos += io_chunk_frames) {
      const std::size_t n = std::min(io_chunk_frames, frames - pos);
      const std::int32_t* src = interleaved.data() + pos * ch;
      if (s.container == container_format::wav) {
        // sf_writef_int takes left-justified 32-bit values and shifts them down by (32 - bits): exact.
        const int shift = 32 - s.bit_depth;
        for (std::size_t i = 0; i < n * ch; ++i)
          s.scratch[i] = static_cast<std::int32_t>(static_cast<std::uint32_t>(src[i]) << shift);
        if (sf_writef_int(s.wav.get(), s.scratch.data(), static_cast<sf_count_t>(n)) != static_cast<sf_count_t>(n))
          s.fail_wav(s.wav.get());
      } else if (!FLAC__stream_encoder_process_interleaved(s.flac.get(), src, static_cast<uint32_t>(n))) {
        // FLAC__int32 is int32_t; integers are right-justified as the quantizer made them.
        s.fail_flac(s.flac_state_text());
      }
    }
  });
  s.written += frames;
}

void audio_writer::write(std::span<const float> interleaved) {
  LATHE_EXPECTS(s_ != nullptr, "write() on a moved-from audio_writer");
  state& s = *s_;
  const std::size_t frames = s.frames_to_write(interleaved.size());
  LATHE_EXPECTS(s.bit_depth == 32, "float samples need bit depth 32");
  s.or_spent([&] {
    // Float out as float: no clipping, no scaling, so the bits are written unchanged.
    const auto n = static_cast<sf_count_t>(frames);
    if (sf_writef_float(s.wav.get(), interleaved.data(), n) != n) s.fail_wav(s.wav.get());
  });
  s.written += frames;
}

void audio_writer::commit() {
  LATHE_EXPECTS(s_ != nullptr, "commit() on a moved-from audio_writer");
  state& s = *s_;
  if (s.spent) throw output_error(s.dest.string() + ": cannot finish: the file is finished or a write failed");
  s.or_spent([&] {
    if (s.written != s.total_frames) {
      throw output_error(s.dest.string() + ": only " + std::to_string(s.written) + " of the " +
                         std::to_string(s.total_frames) + " frames were written; the file is incomplete, not kept");
    }
    if (s.container == container_format::wav) {
      // sf_close rewrites the header sizes; its status is the last chance to see a write error.
      const int err = sf_close(s.wav.release());
      if (err != 0) throw output_error(s.dest.string() + ": cannot finish WAV: " + sf_error_number(err));
    } else if (!FLAC__stream_encoder_finish(s.flac.get())) {
      s.fail_flac(s.flac_state_text());
    }
    s.tmp.commit();
  });
  s.spent = true;
}

void write_audio_file(const fs::path& dest, container_format container, const pcm_frames& pcm, const track_tags& tags) {
  LATHE_EXPECTS(pcm.channels == 1 || pcm.channels == 2, "lathe writes mono or stereo");
  audio_writer writer(dest, container, pcm.channels, pcm.sample_rate_hz, pcm.bit_depth, tags, pcm.frames());
  if (pcm.bit_depth == 32) {
    writer.write(pcm.float_samples);
  } else {
    writer.write(pcm.int_samples);
  }
  writer.commit();
}

}  // namespace lathe

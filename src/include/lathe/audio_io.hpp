#pragma once
// Decoding (libsndfile) and encoding (libsndfile for WAV, libFLAC for FLAC so ISRC and the
// other Vorbis comments can be written). Outputs are written to a temporary name in the
// destination folder and renamed into place only when complete.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "lathe/audio_buffer.hpp"

namespace lathe {

struct track_tags {
  std::string title, artist, album, isrc;
  int track_number = 0;  ///< 0: unknown
};

struct source_info {
  std::filesystem::path path;
  std::string container;  ///< "wav", "aiff", "flac", "ogg", "mp3", ...
  std::string encoding;   ///< "pcm16", "pcm24", "pcm32", "float", "double", "vorbis", "opus", ...
  int bit_depth = 0;      ///< integer PCM bit depth; 0 for float and lossy encodings
  double sample_rate_hz = 0.0;
  int channels = 0;  ///< as stored (1 or 2); the decoded audio is always stereo
  std::size_t frames = 0;
  std::uintmax_t file_bytes = 0;
  track_tags tags;  ///< what the file's own metadata says (may be empty)
};

struct decoded_track {
  source_info info;
  audio_buffer audio;  ///< two channels; mono is duplicated to dual mono
};

/// Streams a file's audio in blocks, so a track of any length is decoded in O(block) memory.
/// The constructor opens the file and makes every header check decode_file() makes; read()
/// makes the sample checks (NaN/Inf, fewer frames than the header declares) block by block
/// and throws input_error (naming the file, with the same texts as decode_file()) the moment
/// one fails. Move-only; closes the file on destruction. One thread at a time per reader;
/// distinct readers are independent.
class audio_reader {
 public:
  /// Throws input_error when the file is missing or not readable, not audio or of an
  /// unsupported format, has no samples, more than two channels, a sample rate outside
  /// 8..384 kHz, or a WAV/AIFF header that declares more frames than the file holds.
  explicit audio_reader(const std::filesystem::path& path);
  audio_reader(audio_reader&&) noexcept;
  audio_reader& operator=(audio_reader&&) noexcept;
  ~audio_reader();

  /// The header's description. For a lossy stream that ends up to 0.1 % short of its
  /// header's estimate (which real Ogg and MP3 files do), `frames` becomes the frames
  /// actually decoded once read() has returned the last of them.
  const source_info& info() const noexcept;

  /// Decodes the next frames into `out` (2 planar channels, out.frames > 0; mono is
  /// duplicated to dual mono) and returns how many: out.frames until the stream ends, then
  /// the rest, then 0. Throws input_error for a NaN/Inf sample (the first in time, with its
  /// channel and time) in the frames it decodes (none of that call's frames are delivered),
  /// and at the end for a decoder error or a stream short of the header's frame count: a
  /// short stream's last frames are returned first and the call after them throws. After a
  /// throw the reader is spent. Allocates nothing outside the error path; memory does not grow with
  /// the track.
  std::size_t read(block_view out);

 private:
  struct state;
  std::unique_ptr<state> s_;
};

/// Reads a whole file (an audio_reader run to the end). Throws input_error (naming the file) when the file is missing
/// or not readable, not audio or of an unsupported format, has no samples, more than two channels, a sample rate
/// outside 8..384 kHz, fewer frames than its header declares (truncated or corrupt), or NaN/Inf samples (with the first
/// offending time).
decoded_track decode_file(const std::filesystem::path& path);

/// Reads only the header (no samples): for planning and the report. Throws input_error.
source_info probe_file(const std::filesystem::path& path);

enum class container_format { wav, flac };
bool parse_container(const std::string& name, container_format& out);
const char* to_string(container_format c) noexcept;
const char* file_extension(container_format c) noexcept;  ///< "wav", "flac"

/// PCM ready to be written: either integers already quantized to bit_depth (16 or 24) or
/// 32-bit float (bit_depth 32, float_samples used). Interleaved frame-major.
struct pcm_frames {
  int channels = 2;
  double sample_rate_hz = 48'000.0;
  int bit_depth = 24;  ///< 16, 24, or 32 (float; WAV only)
  std::span<const std::int32_t> int_samples;
  std::span<const float> float_samples;
  std::size_t frames() const noexcept {
    return (bit_depth == 32 ? float_samples.size() : int_samples.size()) / static_cast<std::size_t>(channels);
  }
};

/// Bytes a RIFF WAV can address: its chunk sizes are unsigned 32-bit (the RIFF size is the
/// file length less 8).
inline constexpr std::uint64_t riff_max_bytes = 0xFFFF'FFFFu;

/// True when a WAV of `frames` frames of `channels` x `bit_depth` (16, 24 or 32 float) with
/// `tags` would not fit RIFF's 32-bit sizes: data plus a bound on the header (format, fact,
/// PEAK and LIST/INFO chunks) over `riff_limit_bytes`. Such a file is written as RF64. 2 h of
/// 24-bit/96 kHz stereo (3.86 GiB of samples) still fits; 3 h (5.79 GiB) does not.
/// `riff_limit_bytes` is RIFF's capacity; only tests lower it.
bool wav_needs_rf64(std::size_t frames, int channels, int bit_depth, const track_tags& tags = {},
                    std::uint64_t riff_limit_bytes = riff_max_bytes);

/// Streams an encode, so a track of any length is written in O(block) memory: the
/// constructor creates dest's parent folders and opens a temporary file in dest's folder,
/// write() appends interleaved frames, commit() finishes the file and renames it over dest.
/// Until commit() returns, dest is untouched; destroying an uncommitted writer removes the
/// temporary, so no half-written dest ever exists. Move-only. One thread at a time per
/// writer; writers to distinct dests are independent.
///
/// The container carries the tags as write_audio_file() describes. A WAV whose size
/// (known from total_frames) does not fit RIFF (wav_needs_rf64()) is written as RF64 with
/// the same sample format and LIST/INFO tags; every other WAV is plain RIFF.
class audio_writer {
 public:
  /// `channels` 1 or 2; `bit_depth` 16 or 24 (integers, WAV or FLAC) or 32 (float, WAV
  /// only); `total_frames` is exactly what write() will be given in all. Throws
  /// output_error (naming dest) when the folder or the temporary cannot be created, or for
  /// FLAC with 32-bit float. `riff_limit_bytes`: see wav_needs_rf64().
  audio_writer(const std::filesystem::path& dest, container_format container, int channels, double sample_rate_hz,
               int bit_depth, const track_tags& tags, std::size_t total_frames,
               std::uint64_t riff_limit_bytes = riff_max_bytes);
  audio_writer(audio_writer&&) noexcept;
  audio_writer& operator=(audio_writer&&) noexcept;
  ~audio_writer();

  /// Appends whole frames of integers right-justified at the bit depth (16 or 24), each
  /// within its range. Throws output_error when the encoder or the disk fails; the writer
  /// is then spent and commit() refuses. Part frames, more than total_frames in all, samples
  /// out of range or of the other type are a logic_error. Allocates nothing.
  void write(std::span<const std::int32_t> interleaved);
  /// Appends whole frames of float samples (bit depth 32), written bit for bit, unclipped;
  /// otherwise as the integer write().
  void write(std::span<const float> interleaved);
  std::size_t frames_written() const noexcept;
  /// Finishes the container, flushes to disk, closes and renames over dest. Throws
  /// output_error naming dest when fewer than total_frames were written or on any failure
  /// (the temporary is then removed when the writer is destroyed).
  void commit();

 private:
  struct state;
  std::unique_ptr<state> s_;
};

/// Writes `pcm` to `dest` (creating parent folders) with the tags the container carries
/// (FLAC: TITLE, ARTIST, ALBUM, TRACKNUMBER, ISRC Vorbis comments; WAV: RIFF INFO title,
/// artist, album, track number). Written to a temporary file in dest's folder, flushed, then
/// renamed over dest; on any failure the temporary is removed and output_error is thrown, so
/// no half-written dest ever exists. Thread-safe for distinct dests. An audio_writer given
/// the same frames in any split writes the same bytes.
void write_audio_file(const std::filesystem::path& dest, container_format container, const pcm_frames& pcm,
                      const track_tags& tags);

}  // namespace lathe

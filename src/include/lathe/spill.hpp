#pragma once
// Audio that a later streaming pass reads again from the start: the pre-chain output that the
// loudness iterations replay, a resampled master, the limiter's peak envelope. Held in memory
// or in an anonymous file, so that memory need not grow with the track.
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe {

/// Planar float audio appended block by block and read back at any frame offset. Three kinds:
/// in memory (grows with the audio), in a file (memory: one conversion block, whatever the
/// length), or borrowing an audio_buffer the caller keeps alive (read-only). Reads return the
/// appended samples bit for bit, whatever the kind, so a pass reading a spill gives the same
/// result from each. Move-only; not thread-safe (one writer, then readers on one thread).
class audio_spill {
 public:
  /// An empty spill in memory. Precondition: 1 <= channels <= max_channels (checked).
  explicit audio_spill(int channels);

  /// An empty spill in an anonymous file in `folder` (created if missing; the file has no name,
  /// so nothing is left behind whatever ends the process). Throws output_error naming the folder
  /// when it cannot be created or written.
  audio_spill(int channels, const std::filesystem::path& folder);

  /// Reads `audio` in place (no copy); append() is refused. `audio` must outlive the spill.
  static audio_spill borrow(const audio_buffer& audio);

  audio_spill(audio_spill&&) noexcept;
  audio_spill& operator=(audio_spill&&) noexcept;
  audio_spill(const audio_spill&) = delete;
  audio_spill& operator=(const audio_spill&) = delete;
  ~audio_spill();

  int channels() const noexcept { return channels_; }
  std::size_t frames() const noexcept { return frames_; }
  bool in_file() const noexcept { return fd_ >= 0; }

  /// Appends `in` (channels() channels). Throws output_error when the disk fails or is full,
  /// logic_error for a borrowed spill or another channel count.
  void append(const_block_view in);

  /// Copies frames [first, first + out.frames) into `out` (channels() channels, first +
  /// out.frames <= frames(), checked). Throws output_error when the file cannot be read. After
  /// seal(), reads from several threads at once are safe (file reads are positioned, and each
  /// thread converts in its own buffer).
  void read(std::size_t first, block_view out) const;

  /// Writes the frames still pending to the file: the spill is complete, and read() may then run
  /// on several threads at once. Throws output_error when the disk fails.
  void seal() { flush_pending(); }

  /// Memory this spill holds (bytes): the audio for memory spills, the frames pending for file
  /// spills (readers convert in a per-thread block), nothing for borrowed ones.
  std::size_t memory_bytes() const noexcept;

 private:
  // Memory spills: the audio in chunks, each holding every channel (channel c at c * capacity),
  // allocated as the spill grows so that an append never copies what is already held. Chunks
  // double from a small first one up to a fixed size.
  struct free_floats {
    void operator()(float* p) const noexcept { std::free(p); }
  };
  struct chunk {
    std::size_t first = 0;     // frame of the spill at the chunk's start
    std::size_t capacity = 0;  // frames
    std::unique_ptr<float, free_floats> data;
  };

  audio_spill() = default;
  void flush_pending() const;
  void add_chunk();

  int channels_ = 0;
  std::size_t frames_ = 0;
  const audio_buffer* borrowed_ = nullptr;
  std::vector<chunk> memory_;     // memory spills
  int fd_ = -1;                   // file spills
  std::filesystem::path folder_;  // for error messages
  // File spills: interleaved frames not yet written.
  mutable std::vector<float> pending_;
};

/// Frames per block that readers of a spill use.
inline constexpr std::size_t spill_block_frames = 8'192;

}  // namespace lathe

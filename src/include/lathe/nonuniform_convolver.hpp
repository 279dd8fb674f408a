#pragma once
// Non-uniformly partitioned FFT convolution for long impulse responses (reverbs of many seconds):
// the IR is cut into segments whose partition size doubles along the IR (B, 2B, 4B, ... up to a
// cap), each segment run by a uniformly partitioned convolver (convolver.hpp) at its own block
// size and fed with suitably delayed input, the segment outputs summed. Early IR parts get small
// (cheap-latency) blocks; the long tail gets big blocks, where the cost per frame is lowest.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "lathe/convolver.hpp"

namespace lathe {

struct nonuniform_layout {
  std::size_t first_block_frames = 1'024;  ///< power of two >= 64; the convolver's latency
  std::size_t max_block_frames = 16'384;   ///< power of two >= first_block_frames; tail block size
  std::size_t partitions_per_segment = 2;  ///< partitions of each block size before it doubles (>= 1)
};

/// One impulse response, segmented and transformed once; read-only and shared by every
/// convolver (channel, track) using it. The filter is the IR preceded by `delay_frames` zeros
/// (for a reverb's pre-delay), without computing anything for those zeros.
class nonuniform_filter {
 public:
  struct segment {
    std::size_t offset_frames = 0;  ///< first IR frame (before delay_frames) covered
    std::size_t block_frames = 0;   ///< partition size of the segment's uniform convolver
    std::size_t partitions = 0;
    std::size_t input_delay_frames = 0;  ///< delay of the input the segment's convolver sees
  };

  /// Allocates, transforms (FFTW_ESTIMATE, deterministic). Thread-safe to construct.
  nonuniform_filter(std::span<const float> impulse_response, nonuniform_layout layout = {},
                    std::size_t delay_frames = 0);

  std::size_t ir_frames() const noexcept { return ir_frames_; }
  std::size_t delay_frames() const noexcept { return delay_frames_; }
  const nonuniform_layout& layout() const noexcept { return layout_; }
  const std::vector<segment>& segments() const noexcept { return segments_; }
  /// Largest segment input delay: the input history each convolver keeps.
  std::size_t max_input_delay_frames() const noexcept { return max_input_delay_; }

 private:
  friend class nonuniform_convolver;
  nonuniform_layout layout_;
  std::size_t ir_frames_ = 0, delay_frames_ = 0, max_input_delay_ = 0;
  std::vector<segment> segments_;
  std::vector<std::shared_ptr<const partitioned_filter>> filters_;  // one per segment
};

/// Streaming convolver of one input with K >= 1 filters into K outputs: out_k[n +
/// latency_frames()] = sum_j h'_k[j] in[n - j], h'_k being filter k's IR after its delay_frames
/// zeros. The filters must be segmented alike (same IR length, layout and delay: the channels of
/// one multi-channel IR), so each input chunk is stored once and each segment transforms it once
/// for all K filters (a true-stereo reverb's input channel feeds two output paths). Output k is
/// bit-identical to a single-filter convolver with filter k. Latency: layout().first_block_frames.
/// process() never allocates and may run in place; its output does not depend on how the stream
/// is cut into calls. Not thread-safe; one per input channel.
class nonuniform_convolver {
 public:
  explicit nonuniform_convolver(std::shared_ptr<const nonuniform_filter> filter);
  /// Throws logic_error when `filters` is empty or their segments differ.
  explicit nonuniform_convolver(std::vector<std::shared_ptr<const nonuniform_filter>> filters);
  nonuniform_convolver(nonuniform_convolver&&) noexcept = default;
  nonuniform_convolver& operator=(nonuniform_convolver&&) noexcept = default;

  void reset() noexcept;
  /// Single-filter form (K == 1).
  void process(const float* in, float* out, std::size_t frames) noexcept;
  /// outs[k] receives filter k's output (K pointers, distinct). `in` may equal one of them.
  void process(const float* in, float* const* outs, std::size_t frames) noexcept;
  std::size_t filters() const noexcept { return filters_.size(); }
  std::size_t latency_frames() const noexcept { return chunk_frames_; }

  /// Most filters one convolver takes (a true-stereo input channel needs 2).
  static constexpr std::size_t max_filters = 4;

 private:
  std::vector<std::shared_ptr<const nonuniform_filter>> filters_;
  std::vector<partitioned_convolver> convolvers_;  // one per segment, each with K filters
  std::vector<float> history_;                     // ring of past input: max input delay + one chunk
  std::vector<float> gather_;                      // one chunk of delayed input when it wraps around the ring
  std::vector<float> partial_;                     // K chunks: one segment's outputs
  std::size_t chunk_frames_ = 0;                   // process() works in chunks of at most the first block size
  std::size_t write_pos_ = 0;                      // next ring position to write
};

}  // namespace lathe

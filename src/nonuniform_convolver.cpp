#include "lathe/nonuniform_convolver.hpp"

#include <algorithm>
#include <cstring>

#include "lathe/error.hpp"

namespace lathe {
namespace {

bool is_power_of_two(std::size_t n) noexcept {
  return n != 0 && (n & (n - 1)) == 0;
}

}  // namespace

nonuniform_filter::nonuniform_filter(std::span<const float> impulse_response, nonuniform_layout layout,
                                     std::size_t delay_frames)
    : layout_(layout), ir_frames_(impulse_response.size()), delay_frames_(delay_frames) {
  LATHE_EXPECTS(!impulse_response.empty(), "impulse response must not be empty");
  LATHE_EXPECTS(layout.first_block_frames >= 64 && is_power_of_two(layout.first_block_frames),
                "first block must be a power of two >= 64");
  LATHE_EXPECTS(is_power_of_two(layout.max_block_frames) && layout.max_block_frames >= layout.first_block_frames,
                "max block must be a power of two >= the first block");
  LATHE_EXPECTS(layout.partitions_per_segment >= 1, "a segment needs at least one partition");

  const std::size_t latency = layout.first_block_frames;
  std::size_t offset = 0, block = layout.first_block_frames;
  while (offset < ir_frames_) {
    const std::size_t remaining_partitions = (ir_frames_ - offset + block - 1) / block;
    // At the cap the last segment takes the whole rest of the IR.
    const std::size_t partitions = block == layout.max_block_frames
                                       ? remaining_partitions
                                       : std::min(layout.partitions_per_segment, remaining_partitions);
    // A uniform convolver of block b outputs the segment's convolution b frames late; the whole
    // filter must come out `latency + offset + delay` late, so its input is delayed by the rest.
    // offset >= b - first_block holds because every earlier block size filled >= 1 partition.
    segment s;
    s.offset_frames = offset;
    s.block_frames = block;
    s.partitions = partitions;
    s.input_delay_frames = latency + offset + delay_frames - block;
    segments_.push_back(s);
    max_input_delay_ = std::max(max_input_delay_, s.input_delay_frames);

    const std::size_t count = std::min(partitions * block, ir_frames_ - offset);
    filters_.push_back(std::make_shared<const partitioned_filter>(impulse_response.subspan(offset, count), block));
    offset += count;
    block = std::min(2 * block, layout.max_block_frames);
  }
}

nonuniform_convolver::nonuniform_convolver(std::shared_ptr<const nonuniform_filter> filter)
    : filter_(std::move(filter)) {
  LATHE_EXPECTS(filter_ != nullptr, "convolver needs a filter");
  chunk_frames_ = filter_->layout_.first_block_frames;
  for (const auto& f : filter_->filters_) convolvers_.emplace_back(f);
  // Reading `chunk` frames delayed by d right after writing them needs d + chunk frames of past.
  history_.assign(filter_->max_input_delay_ + chunk_frames_, 0.0f);
  gather_.assign(chunk_frames_, 0.0f);
  partial_.assign(chunk_frames_, 0.0f);
}

void nonuniform_convolver::reset() noexcept {
  for (auto& c : convolvers_) c.reset();
  std::fill(history_.begin(), history_.end(), 0.0f);
  write_pos_ = 0;
}

void nonuniform_convolver::process(const float* in, float* out, std::size_t frames) noexcept {
  const std::size_t ring = history_.size();
  const std::vector<nonuniform_filter::segment>& segments = filter_->segments_;
  std::size_t pos = 0;
  while (pos < frames) {
    const std::size_t n = std::min(chunk_frames_, frames - pos);
    // Store the input first: `in` and `out` may be the same memory.
    const std::size_t start = write_pos_;
    const std::size_t first = std::min(n, ring - start);
    std::memcpy(history_.data() + start, in + pos, first * sizeof(float));
    std::memcpy(history_.data(), in + pos + first, (n - first) * sizeof(float));
    write_pos_ = (start + n) % ring;

    for (std::size_t k = 0; k < segments.size(); ++k) {
      const std::size_t read = (start + ring - segments[k].input_delay_frames) % ring;
      const float* src = history_.data() + read;
      if (read + n > ring) {
        const std::size_t head = ring - read;
        std::memcpy(gather_.data(), src, head * sizeof(float));
        std::memcpy(gather_.data() + head, history_.data(), (n - head) * sizeof(float));
        src = gather_.data();
      }
      // Segments are summed in a fixed order, so the result is independent of call sizes.
      if (k == 0) {
        convolvers_[k].process(src, out + pos, n);
      } else {
        convolvers_[k].process(src, partial_.data(), n);
        float* o = out + pos;
        const float* p = partial_.data();
        for (std::size_t i = 0; i < n; ++i) o[i] += p[i];
      }
    }
    pos += n;
  }
}

}  // namespace lathe

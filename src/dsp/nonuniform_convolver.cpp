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
    : nonuniform_convolver(std::vector<std::shared_ptr<const nonuniform_filter>>{std::move(filter)}) {}

nonuniform_convolver::nonuniform_convolver(std::vector<std::shared_ptr<const nonuniform_filter>> filters)
    : filters_(std::move(filters)) {
  LATHE_EXPECTS(!filters_.empty() && filters_.size() <= max_filters, "convolver needs 1 to 4 filters");
  for (const auto& f : filters_) LATHE_EXPECTS(f != nullptr, "convolver needs a filter");
  const nonuniform_filter& f0 = *filters_.front();
  for (const auto& f : filters_) {
    bool same =
        f->segments_.size() == f0.segments_.size() && f->layout_.first_block_frames == f0.layout_.first_block_frames;
    for (std::size_t k = 0; same && k < f0.segments_.size(); ++k) {
      const auto &a = f->segments_[k], &b = f0.segments_[k];
      same = a.block_frames == b.block_frames && a.input_delay_frames == b.input_delay_frames;
    }
    LATHE_EXPECTS(same, "the filters of one convolver must be segmented alike (same IR length, layout and delay)");
  }
  chunk_frames_ = f0.layout_.first_block_frames;
  for (std::size_t k = 0; k < f0.segments_.size(); ++k) {
    std::vector<std::shared_ptr<const partitioned_filter>> seg;
    for (const auto& f : filters_) seg.push_back(f->filters_[k]);
    convolvers_.emplace_back(std::move(seg));
  }
  // Reading `chunk` frames delayed by d right after writing them needs d + chunk frames of past.
  history_.assign(f0.max_input_delay_ + chunk_frames_, 0.0f);
  gather_.assign(chunk_frames_, 0.0f);
  partial_.assign(filters_.size() * chunk_frames_, 0.0f);
}

void nonuniform_convolver::reset() noexcept {
  for (auto& c : convolvers_) c.reset();
  std::fill(history_.begin(), history_.end(), 0.0f);
  write_pos_ = 0;
}

void nonuniform_convolver::process(const float* in, float* out, std::size_t frames) noexcept {
  process(in, &out, frames);
}

void nonuniform_convolver::process(const float* in, float* const* outs, std::size_t frames) noexcept {
  const std::size_t ring = history_.size();
  const std::size_t count = filters_.size();
  const std::vector<nonuniform_filter::segment>& segments = filters_.front()->segments_;
  float* partials[max_filters] = {};
  for (std::size_t f = 0; f < count; ++f) partials[f] = partial_.data() + f * chunk_frames_;
  float* chunk_outs[max_filters] = {};
  std::size_t pos = 0;
  while (pos < frames) {
    const std::size_t n = std::min(chunk_frames_, frames - pos);
    // Store the input first: `in` and an output may be the same memory.
    const std::size_t start = write_pos_;
    const std::size_t first = std::min(n, ring - start);
    std::memcpy(history_.data() + start, in + pos, first * sizeof(float));
    std::memcpy(history_.data(), in + pos + first, (n - first) * sizeof(float));
    write_pos_ = (start + n) % ring;

    for (std::size_t f = 0; f < count; ++f) chunk_outs[f] = outs[f] + pos;
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
        convolvers_[k].process(src, chunk_outs, n);
      } else {
        convolvers_[k].process(src, partials, n);
        for (std::size_t f = 0; f < count; ++f) {
          float* o = chunk_outs[f];
          const float* p = partials[f];
          for (std::size_t i = 0; i < n; ++i) o[i] += p[i];
        }
      }
    }
    pos += n;
  }
}

}  // namespace lathe

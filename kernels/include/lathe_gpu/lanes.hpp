#pragma once
// Batch layout on the device: lanes (one channel of one track each) concatenated in one planar
// float array, all at one sample rate; and the chunk table kernels iterate over.
// Host-compilable.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lathe/error.hpp"

namespace lathe::gpu {

struct lane_layout {
  std::vector<std::size_t> offset;  ///< first sample of lane l in the batch array
  std::vector<std::size_t> frames;  ///< samples in lane l
  std::size_t total_frames = 0;     ///< sum of frames (the array's length)
  std::size_t lanes() const noexcept { return frames.size(); }

  /// Appends a lane of `n` frames at the end of the array and returns its index.
  std::size_t add(std::size_t n) {
    offset.push_back(total_frames);
    frames.push_back(n);
    total_frames += n;
    return frames.size() - 1;
  }
};

/// Fixed-size pieces of lanes: chunk c is frames [start[c], start[c] + length[c]) of lane
/// lane[c]. Chunks of one lane are consecutive and in time order; a lane's last chunk may be
/// short. Host-side; upload the three arrays for kernels.
struct chunk_table {
  std::vector<std::uint32_t> lane;
  std::vector<std::uint64_t> start;                ///< frame within the lane
  std::vector<std::uint32_t> length;               ///< frames, 1..chunk_frames
  std::vector<std::uint32_t> first_chunk_of_lane;  ///< index of each lane's first chunk; size lanes()+1
  std::size_t chunk_frames = 0;
  std::size_t size() const noexcept { return lane.size(); }
};

inline chunk_table make_chunks(const lane_layout& layout, std::size_t chunk_frames) {
  LATHE_EXPECTS(chunk_frames > 0, "chunk_frames must be positive");
  chunk_table t;
  t.chunk_frames = chunk_frames;
  for (std::size_t l = 0; l < layout.lanes(); ++l) {
    t.first_chunk_of_lane.push_back(static_cast<std::uint32_t>(t.lane.size()));
    for (std::size_t s = 0; s < layout.frames[l]; s += chunk_frames) {
      t.lane.push_back(static_cast<std::uint32_t>(l));
      t.start.push_back(s);
      t.length.push_back(static_cast<std::uint32_t>(std::min(chunk_frames, layout.frames[l] - s)));
    }
  }
  t.first_chunk_of_lane.push_back(static_cast<std::uint32_t>(t.lane.size()));
  return t;
}

}  // namespace lathe::gpu

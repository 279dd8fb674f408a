#include "render_engine.hpp"

#include <algorithm>
#include <set>
#include <string>

#include "lathe/chain.hpp"

namespace lathe {

std::size_t engine_track_bytes(std::size_t frames, double source_rate_hz, std::span<const delivery_profile> profiles) {
  std::set<std::string> prechains;
  double widest = 1.0;  // the largest output rate over the source rate
  for (const delivery_profile& p : profiles) {
    prechains.insert(prechain_key(p));
    widest = std::max(widest, p.output_rate_hz(source_rate_hz) / source_rate_hz);
  }
  const double stereo = 2.0 * sizeof(float) * static_cast<double>(frames);
  // Held for the whole call: the input and each distinct pre-chain's output. At its peak, either
  // a pre-chain in progress (its two ping-pong buffers and up to four stage work buffers) or one
  // format (resampled, two detector peak arrays, limiter output and envelope, delivered,
  // quantized, output peaks).
  const double held = stereo * (1.0 + static_cast<double>(prechains.size()));
  const double peak = std::max(6.0 * stereo, 8.0 * widest * stereo);
  return static_cast<std::size_t>(held + peak);
}

std::vector<std::vector<std::size_t>> pack_batches(std::span<const batch_candidate> candidates,
                                                   const batch_limits& limits) {
  std::vector<std::vector<std::size_t>> batches;
  std::size_t host = 0, device = 0;
  const batch_candidate* open = nullptr;  // the first track of a batch that takes more engine tracks
  for (const batch_candidate& c : candidates) {
    if (open != nullptr && c.on_engine && c.rate_hz == open->rate_hz && batches.back().size() < limits.tracks &&
        host + c.host_bytes <= limits.host_bytes && device + c.device_bytes <= limits.device_bytes) {
      batches.back().push_back(c.track);
      host += c.host_bytes;
      device += c.device_bytes;
      continue;
    }
    batches.push_back({c.track});
    host = c.host_bytes;
    device = c.device_bytes;
    open = c.on_engine ? &c : nullptr;
  }
  return batches;
}

}  // namespace lathe

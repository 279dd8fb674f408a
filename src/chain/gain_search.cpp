#include "lathe/gain_search.hpp"

#include <algorithm>
#include <cmath>

namespace lathe {

bool gain_search::observe(double lufs) noexcept {
  moved_ = false;
  if (done_) return true;
  ++iterations_;
  const double err = target_ - lufs;
  if (std::abs(err) <= converged_lu || !std::isfinite(lufs)) {
    done_ = true;
    return true;
  }
  if (err > 0.0 && gain_ >= max_gain_) {
    done_ = at_bound_ = true;
    return true;
  }
  double slope = 1.0;
  if (iterations_ > 1 && gain_ != prev_gain_) slope = std::clamp((lufs - prev_lufs_) / (gain_ - prev_gain_), 0.05, 1.0);
  prev_gain_ = gain_;
  prev_lufs_ = lufs;
  gain_ = std::min(gain_ + err / slope, max_gain_);
  moved_ = true;
  done_ = iterations_ == max_iterations;
  return done_;
}

}  // namespace lathe

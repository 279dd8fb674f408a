#pragma once
// The gain search of limit-mode loudness normalization, written once for both backends
// (src/chain/master.cpp on the CPU, host/gpu_engine.cpp per track of a batch).
#include <limits>

namespace lathe {

/// The largest gain limit mode may apply: the one at which the limiter's gain reduction at the
/// loudest detected peak reaches `max_reduction_db` (limiter_params::max_reduction_db).
/// `detected_peak_dbtp` is the detector's maximum over the track before any gain (offline_limiter::
/// input_true_peak_dbtp(0)); `ceiling_dbtp` and `margin_db` are the limiter's.
inline double limit_mode_max_gain_db(double detected_peak_dbtp, double ceiling_dbtp, double margin_db,
                                     double max_reduction_db) noexcept {
  return ceiling_dbtp - margin_db + max_reduction_db - detected_peak_dbtp;
}

/// Finds the gain (dB) that brings a track to its target through the limiter: secant
/// iteration on loudness(gain), which is monotone with slope 1 until the limiter engages and
/// less after (the slope is held to [0.05, 1]), never past `max_gain_db`. The caller renders at
/// gain_db(), measures the integrated loudness of the result and passes it to observe(), until
/// done().
class gain_search {
 public:
  /// Done within this distance of the target (well inside a profile's +-0.1 LU).
  static constexpr double converged_lu = 0.02;
  /// Loudness measurements at most; the gain after the last one is the answer.
  static constexpr int max_iterations = 12;

  gain_search(double target_lufs, double first_gain_db,
              double max_gain_db = std::numeric_limits<double>::infinity()) noexcept
      : target_(target_lufs),
        gain_(first_gain_db < max_gain_db ? first_gain_db : max_gain_db),
        max_gain_(max_gain_db) {}

  /// The gain to render next, or the answer once done().
  double gain_db() const noexcept { return gain_; }
  /// Loudness measurements so far.
  int iterations() const noexcept { return iterations_; }
  bool done() const noexcept { return done_; }
  /// Whether the last observe() moved gain_db(), so the last render is not at the answer.
  bool moved() const noexcept { return moved_; }
  /// Done at max_gain_db with the loudness still short of the target by more than converged_lu.
  bool at_bound() const noexcept { return at_bound_; }

  /// The integrated loudness (LUFS) measured at gain_db(). Done when it is within
  /// converged_lu of the target or not finite (nothing above the gate), or when the loudness
  /// is short at max_gain_db (at_bound()); else gain_db() moves to the next trial (at most
  /// max_gain_db), and done after max_iterations measurements. Returns done(); a call once done
  /// changes nothing.
  bool observe(double lufs) noexcept;

 private:
  double target_;
  double gain_;
  double max_gain_;
  double prev_gain_ = 0.0;
  double prev_lufs_ = 0.0;
  int iterations_ = 0;
  bool done_ = false;
  bool moved_ = false;
  bool at_bound_ = false;
};

}  // namespace lathe

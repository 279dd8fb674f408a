#pragma once
// Comparison of two reverb_stats (a GPU or emulated stage against the CPU stage), shared by the
// CPU-run layout test and the GPU test of the reverb.
#include <gtest/gtest.h>

#include <cmath>

#include "lathe/reverb.hpp"

namespace lathe::test {

/// Wet energy this far under the dry energy is FFT rounding noise, not signal: where the exact
/// wet path is silent (a pre-delay longer than a short track) a float FFT convolution still
/// leaves ~1e-7-relative noise (about -140 dB here) and an exact one leaves zeros (-inf dB).
/// -100 dB is the GPU precision promise (relative error 1e-5); below it only "below" is checked.
inline constexpr double reverb_wet_noise_floor_db = -100.0;

/// frames equal; dB values within `tolerance_db`, -inf where the reference is -inf; a wet path
/// below reverb_wet_noise_floor_db (relative to dry) is only required to be below it in both.
inline void expect_reverb_stats_near(const reverb_stats& got, const reverb_stats& want, double tolerance_db) {
  auto near = [&](double g, double w, const char* what) {
    if (std::isinf(w)) {
      EXPECT_EQ(g, w) << what;
    } else {
      EXPECT_NEAR(g, w, tolerance_db) << what;
    }
  };
  EXPECT_EQ(got.frames, want.frames);
  near(got.dry_rms_dbfs, want.dry_rms_dbfs, "dry_rms_dbfs");
  if (want.wet_relative_db < reverb_wet_noise_floor_db) {
    EXPECT_LT(got.wet_relative_db, reverb_wet_noise_floor_db) << "wet_relative_db (noise floor)";
    EXPECT_LT(got.wet_rms_dbfs, want.dry_rms_dbfs + reverb_wet_noise_floor_db) << "wet_rms_dbfs (noise floor)";
  } else {
    near(got.wet_rms_dbfs, want.wet_rms_dbfs, "wet_rms_dbfs");
    near(got.wet_relative_db, want.wet_relative_db, "wet_relative_db");
  }
}

}  // namespace lathe::test

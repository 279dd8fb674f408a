// gain_search against loudness(gain) curves whose answers are known in closed form.
#include "lathe/gain_search.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace lathe {
namespace {

// Runs the search to the end over `loudness` (LUFS at a gain in dB); returns the answer.
template <class F>
double run(gain_search& s, F loudness) {
  while (!s.done()) s.observe(loudness(s.gain_db()));
  return s.gain_db();
}

// A gain stage without limiting: loudness rises 1 LU per dB. Starting from the exact
// gain is done at the first measurement; from elsewhere, the slope-1 step lands exactly.
TEST(GainSearch, LinearLoudnessNeedsOneStep) {
  const auto linear = [](double g) { return -20.0 + g; };  // -20 LUFS at unity
  gain_search exact(-14.0, 6.0);
  EXPECT_DOUBLE_EQ(run(exact, linear), 6.0);
  EXPECT_EQ(exact.iterations(), 1);
  EXPECT_FALSE(exact.moved());

  gain_search off(-14.0, 2.0);
  EXPECT_NEAR(run(off, linear), 6.0, 1e-12);
  EXPECT_EQ(off.iterations(), 2);
}

// A limiter: 1 LU/dB up to a knee at -12 LUFS, 0.25 LU/dB above it. The target -9 LUFS is
// reached at g = knee gain (8 dB) + 3 / 0.25 = 20 dB; the search must land within
// converged_lu of it (in loudness) in few measurements.
TEST(GainSearch, LimitedLoudnessConvergesWithinTheTolerance) {
  const auto limited = [](double g) {
    const double knee_gain = 8.0;  // -20 + 8 = -12 LUFS
    return g <= knee_gain ? -20.0 + g : -12.0 + 0.25 * (g - knee_gain);
  };
  gain_search s(-9.0, 11.0);  // the naive first guess: target minus the unlimited loudness
  const double g = run(s, limited);
  EXPECT_NEAR(limited(g), -9.0, gain_search::converged_lu);
  EXPECT_NEAR(g, 20.0, gain_search::converged_lu / 0.25);
  EXPECT_LE(s.iterations(), 6);
}

// A slope steeper than 1 or below 0.05 is clamped: a curve that barely moves (0.01 LU/dB)
// cannot be reached, and the search stops after max_iterations measurements.
TEST(GainSearch, StopsAfterMaxIterations) {
  const auto stuck = [](double g) { return -30.0 + 0.01 * g; };
  gain_search s(-14.0, 16.0);
  run(s, stuck);
  EXPECT_EQ(s.iterations(), gain_search::max_iterations);
  EXPECT_TRUE(s.moved());  // the answer is a gain it has not measured
  // Each step divides the error by at most the clamped slope 0.05: the gain ends far above
  // where it started.
  EXPECT_GT(s.gain_db(), 16.0 + 100.0);
}

// The same stuck curve under a bound never renders past it: the search steps to the bound,
// measures there once, and stops at it saying so. A target the bound allows is still reached,
// and a first gain over the bound starts at the bound.
TEST(GainSearch, NeverRendersPastItsBound) {
  const auto stuck = [](double g) { return -30.0 + 0.01 * g; };
  gain_search s(-14.0, 16.0, 24.0);
  double highest = -std::numeric_limits<double>::infinity();
  while (!s.done()) {
    highest = std::max(highest, s.gain_db());
    s.observe(stuck(s.gain_db()));
  }
  EXPECT_EQ(highest, 24.0);
  EXPECT_EQ(s.gain_db(), 24.0);
  EXPECT_TRUE(s.at_bound());
  EXPECT_FALSE(s.moved());
  EXPECT_EQ(s.iterations(), 2);

  const auto linear = [](double g) { return -20.0 + g; };
  gain_search reachable(-14.0, 2.0, 6.5);
  EXPECT_NEAR(run(reachable, linear), 6.0, 1e-12);
  EXPECT_FALSE(reachable.at_bound());

  gain_search over(-14.0, 30.0, 6.5);
  EXPECT_EQ(over.gain_db(), 6.5);
  EXPECT_NEAR(run(over, linear), 6.0, 1e-12);  // too loud at the bound: steps down
  EXPECT_FALSE(over.at_bound());
}

// Nothing above the gate (silence after the limiter): no step can help, so it stops.
TEST(GainSearch, StopsOnAnUnmeasurableLoudness) {
  gain_search s(-14.0, 3.0);
  EXPECT_TRUE(s.observe(-std::numeric_limits<double>::infinity()));
  EXPECT_DOUBLE_EQ(s.gain_db(), 3.0);
  EXPECT_EQ(s.iterations(), 1);
  // A call once done changes nothing.
  EXPECT_TRUE(s.observe(-50.0));
  EXPECT_DOUBLE_EQ(s.gain_db(), 3.0);
  EXPECT_EQ(s.iterations(), 1);
}

}  // namespace
}  // namespace lathe

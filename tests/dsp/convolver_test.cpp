// Partitioned FFT convolution against direct convolution in float64.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "lathe/convolver.hpp"

namespace lathe {
namespace {

// Max |fast - direct| relative to the direct output's RMS: -100 dB. Single-precision FFTs of
// 2 * partition points and the sum over partitions leave ~1e-7 relative error.
constexpr double relative_error_limit = 1e-5;

std::vector<float> random_signal(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& s : v) s = u(rng);
  return v;
}

// y[n] = sum_k h[k] x[n - k], float64, for n in [0, x.size() + h.size() - 1).
std::vector<double> direct_convolution(const std::vector<float>& x, const std::vector<float>& h) {
  std::vector<double> y(x.size() + h.size() - 1, 0.0);
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t k = 0; k < h.size(); ++k) y[i + k] += static_cast<double>(x[i]) * h[k];
  return y;
}

// Streams x followed by `tail` zeros through `conv` in blocks cycling through `sizes`, in place.
std::vector<float> stream(partitioned_convolver& conv, const std::vector<float>& x, std::size_t tail,
                          const std::vector<std::size_t>& sizes) {
  std::vector<float> buf(x);
  buf.resize(x.size() + tail, 0.0f);
  std::size_t pos = 0, k = 0;
  while (pos < buf.size()) {
    const std::size_t n = std::min(sizes[k++ % sizes.size()], buf.size() - pos);
    conv.process(buf.data() + pos, buf.data() + pos, n);
    pos += n;
  }
  return buf;
}

std::vector<std::size_t> random_block_sizes(std::uint32_t seed, std::size_t max_size) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(1, max_size);
  std::vector<std::size_t> s = {1, 2, 3, 5, 7, 1'009, 13};  // 1 and primes, then random
  for (int i = 0; i < 40; ++i) s.push_back(pick(rng));
  return s;
}

TEST(Convolver, MatchesDirectConvolution) {
  std::mt19937 rng(42);
  for (std::size_t part : {64u, 256u, 1024u}) {
    std::uniform_int_distribution<std::size_t> any_len(1, 6 * part);
    const std::vector<std::size_t> lengths = {1,           part / 3 + 1, part, 3 * part, 3 * part + 1, any_len(rng),
                                              any_len(rng)};
    for (std::size_t ir_len : lengths) {
      const std::vector<float> h = random_signal(ir_len, static_cast<std::uint32_t>(ir_len * 7 + part));
      const std::vector<float> x = random_signal(9 * part + 123, static_cast<std::uint32_t>(ir_len + part));
      auto filter = std::make_shared<const partitioned_filter>(h, part);
      EXPECT_EQ(filter->partitions(), (ir_len + part - 1) / part);
      EXPECT_EQ(filter->ir_frames(), ir_len);
      partitioned_convolver conv(filter);
      ASSERT_EQ(conv.latency_frames(), part);
      const std::vector<double> ref = direct_convolution(x, h);
      for (const std::vector<std::size_t>& sizes :
           {std::vector<std::size_t>{1}, std::vector<std::size_t>{x.size() + ref.size()},
            random_block_sizes(static_cast<std::uint32_t>(ir_len), 3 * part)}) {
        conv.reset();
        // Latency is exactly `part`: fast[n + part] must be y[n].
        const std::vector<float> fast = stream(conv, x, ref.size() - x.size() + part, sizes);
        double rms = 0.0, worst = 0.0;
        for (std::size_t n = 0; n < ref.size(); ++n) {
          rms += ref[n] * ref[n];
          worst = std::max(worst, std::abs(fast[n + part] - ref[n]));
        }
        rms = std::sqrt(rms / static_cast<double>(ref.size()));
        for (std::size_t n = 0; n < part; ++n) ASSERT_EQ(fast[n], 0.0f) << "output before the latency";
        EXPECT_LE(worst / rms, relative_error_limit) << "partition " << part << " ir " << ir_len;
      }
    }
  }
}

TEST(Convolver, LatencyIsExactlyOnePartition) {
  for (std::size_t part : {64u, 512u, 4096u}) {
    std::vector<float> delta(3 * part / 2, 0.0f);
    delta[0] = 1.0f;
    auto filter = std::make_shared<const partitioned_filter>(delta, part);
    partitioned_convolver conv(filter);
    EXPECT_EQ(conv.latency_frames(), part);
    std::vector<float> impulse(4 * part, 0.0f);
    impulse[0] = 1.0f;
    const std::vector<float> out = stream(conv, impulse, 0, {part / 2 + 3});
    for (std::size_t n = 0; n < out.size(); ++n) {
      EXPECT_NEAR(out[n], n == part ? 1.0 : 0.0, relative_error_limit) << "n " << n;
    }
  }
}

TEST(Convolver, ResetRestoresInitialState) {
  const std::vector<float> h = random_signal(1'500, 1);
  const std::vector<float> x = random_signal(5'000, 2);
  auto filter = std::make_shared<const partitioned_filter>(h, 256);
  partitioned_convolver conv(filter);
  const std::vector<float> first = stream(conv, x, 0, {100});
  conv.reset();
  const std::vector<float> again = stream(conv, x, 0, {100});
  EXPECT_EQ(0, std::memcmp(first.data(), again.data(), first.size() * sizeof(float)));
  // Reset in the middle of a partition too.
  conv.reset();
  stream(conv, x, 0, {77});
  conv.reset();
  const std::vector<float> mid = stream(conv, x, 0, {100});
  EXPECT_EQ(0, std::memcmp(first.data(), mid.data(), first.size() * sizeof(float)));
}

TEST(Convolver, BitIdenticalAcrossRunsBlockSizesAndThreads) {
  const std::vector<float> h = random_signal(10'000, 3);
  const std::vector<float> x = random_signal(60'000, 4);
  std::vector<float> reference;
  {
    auto filter = std::make_shared<const partitioned_filter>(h, 1'024);
    partitioned_convolver conv(filter);
    reference = stream(conv, x, 0, {x.size()});
  }
  // A new filter and plans (second run), random block sizes, and two convolvers sharing one
  // filter on two threads.
  auto filter = std::make_shared<const partitioned_filter>(h, 1'024);
  std::vector<float> out_a, out_b;
  std::thread ta([&] {
    partitioned_convolver conv(filter);
    out_a = stream(conv, x, 0, random_block_sizes(5, 3'000));
  });
  std::thread tb([&] {
    partitioned_convolver conv(filter);
    out_b = stream(conv, x, 0, {1});
  });
  ta.join();
  tb.join();
  EXPECT_EQ(0, std::memcmp(reference.data(), out_a.data(), x.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(reference.data(), out_b.data(), x.size() * sizeof(float)));
}

TEST(Convolver, MovedConvolverKeepsState) {
  const std::vector<float> h = random_signal(300, 8);
  const std::vector<float> x = random_signal(4'000, 9);
  auto filter = std::make_shared<const partitioned_filter>(h, 128);
  partitioned_convolver a(filter);
  const std::vector<float> ref = stream(a, x, 0, {x.size()});
  partitioned_convolver b(filter);
  std::vector<float> first(x.begin(), x.begin() + 1'000), second(x.begin() + 1'000, x.end());
  b.process(first.data(), first.data(), first.size());
  std::vector<partitioned_convolver> moved;
  moved.push_back(std::move(b));
  moved.front().process(second.data(), second.data(), second.size());
  EXPECT_EQ(0, std::memcmp(ref.data(), first.data(), first.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(ref.data() + 1'000, second.data(), second.size() * sizeof(float)));
}

TEST(Convolver, RejectsBadPartition) {
  const std::vector<float> h(100, 0.5f);
  EXPECT_THROW(partitioned_filter(h, 100), std::exception);
  EXPECT_THROW(partitioned_filter(h, 32), std::exception);
}

}  // namespace
}  // namespace lathe

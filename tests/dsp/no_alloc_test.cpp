// Property test of the house rule "process() does not allocate": every chain stage and meter is
// prepared, then run over many blocks of varied sizes (1, primes, up to max_block_frames, in
// place and out of place) while every global operator new / new[] (plain, aligned, nothrow) of
// this executable counts its calls. The reference is the rule itself: zero allocations.
//
// Not counted: malloc/fftwf_malloc called directly (the convolvers' FFT buffers are made with
// fftwf_malloc, but only at construction, i.e. in prepare()).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <vector>

#include "lathe/deesser.hpp"
#include "lathe/dynamics.hpp"
#include "lathe/eq.hpp"
#include "lathe/highpass.hpp"
#include "lathe/limiter.hpp"
#include "lathe/loudness.hpp"
#include "lathe/multiband.hpp"
#include "lathe/reverb.hpp"
#include "lathe/saturation.hpp"
#include "lathe/stereo.hpp"
#include "lathe/true_peak.hpp"
#include "support/signals.hpp"

namespace {

std::atomic<bool> counting{false};
std::atomic<long> allocations{0};

void* allocate(std::size_t bytes, std::size_t alignment) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (bytes == 0) bytes = 1;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(bytes);
  void* p = nullptr;
  return posix_memalign(&p, alignment, bytes) == 0 ? p : nullptr;
}

void* allocate_or_throw(std::size_t bytes, std::size_t alignment) {
  void* p = allocate(bytes, alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

// Every replaceable allocation function; the deallocation functions pair with malloc /
// posix_memalign (both released by free).
void* operator new(std::size_t n) {
  return allocate_or_throw(n, 0);
}
void* operator new[](std::size_t n) {
  return allocate_or_throw(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return allocate(n, 0);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return allocate(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace lathe {
namespace {

// The rule: not one allocation.
constexpr long allowed_allocations = 0;

constexpr double fs_hz = 48'000.0;
constexpr std::size_t max_block_frames = 4'096;

// Counts the allocations made while `body` runs.
template <class Body>
long allocations_during(Body&& body) {
  allocations.store(0);
  counting.store(true);
  body();
  counting.store(false);
  return allocations.load();
}

// Loud enough (-12 dBFS RMS noise with louder bursts) for every compressor, de-esser and the
// limiter to act, so their gain paths run too.
const audio_buffer& test_signal() {
  static const audio_buffer x = [] {
    audio_buffer b = test::white_noise(-12.0, 3.0, fs_hz, 2, 5);
    for (int c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < b.frames(); ++i)
        if ((i / 12'000) % 3 == 1) b.channel(c)[i] *= 3.0f;
    return b;
  }();
  return x;
}

// Block sizes: 1, primes, powers of two and their neighbours, up to the maximum.
std::vector<std::size_t> block_sizes() {
  std::vector<std::size_t> s = {1, 2, 3, 7, 13, 64, 127, 128, 129, 1'009, 4'095, max_block_frames};
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::size_t> pick(1, max_block_frames);
  for (int i = 0; i < 20; ++i) s.push_back(pick(rng));
  return s;
}

// Prepares `stage` for stereo (or `channels`) at fs_hz, then counts allocations over the whole
// test signal, fed in the block sizes above, alternately out of place and in place.
template <dsp_stage S>
long stage_allocations(S& stage, int channels = 2) {
  stage.prepare({fs_hz, channels, max_block_frames});
  const audio_buffer& x = test_signal();
  audio_buffer in(channels, x.frames()), out(channels, x.frames());
  for (int c = 0; c < channels; ++c) std::copy_n(x.channel(c), x.frames(), in.channel(c));
  const std::vector<std::size_t> sizes = block_sizes();
  return allocations_during([&] {
    std::size_t pos = 0, k = 0;
    while (pos < x.frames()) {
      const std::size_t n = std::min(sizes[k % sizes.size()], x.frames() - pos);
      if (k % 2 == 0) {
        stage.process(in.view(pos, n), out.view(pos, n));
      } else {
        stage.process(in.view(pos, n), in.view(pos, n));
      }
      pos += n;
      ++k;
    }
  });
}

// An allocation made by a stage would have to be counted: check that each form is.
TEST(NoAlloc, CounterSeesEveryFormOfNew) {
  static void* volatile sink = nullptr;  // keeps the compiler from eliding new/delete pairs
  EXPECT_EQ(allocations_during([] {
              int* p = new int(1);
              sink = p;
              delete p;
            }),
            1);
  EXPECT_EQ(allocations_during([] {
              auto* p = new float[16];
              sink = p;
              delete[] p;
            }),
            1);
  struct alignas(128) wide {
    float v[32];
  };
  EXPECT_EQ(allocations_during([] {
              auto* p = new wide;
              sink = p;
              delete p;
            }),
            1);
  EXPECT_EQ(allocations_during([] {
              auto* p = new (std::nothrow) wide[2];
              sink = p;
              delete[] p;
            }),
            1);
  EXPECT_EQ(allocations_during([] {
              std::vector<float> v(100);
              sink = v.data();
            }),
            1);
  // And what the stages would typically do by mistake: a vector growing in process().
  EXPECT_EQ(allocations_during([] {
              std::vector<double> v;
              for (int i = 0; i < 3; ++i) v.push_back(i);
              sink = v.data();
            }),
            3);
}

TEST(NoAlloc, Highpass) {
  highpass_stage a({20.0, 8, 2.0}), b({0.0, 4, 2.0});
  EXPECT_EQ(stage_allocations(a), allowed_allocations);
  EXPECT_EQ(stage_allocations(b), allowed_allocations);
}

TEST(NoAlloc, LinearPhaseEq) {
  eq_params p;
  p.bands = {{eq_band_type::low_shelf, 100.0, 1.0, 0.707},
             {eq_band_type::bell, 3'000.0, -1.5, 1.0},
             {eq_band_type::high_shelf, 10'000.0, 1.0, 0.707}};
  linear_phase_eq_stage eq(p);
  EXPECT_EQ(stage_allocations(eq), allowed_allocations);
}

TEST(NoAlloc, Deesser) {
  deesser_stage d;
  EXPECT_EQ(stage_allocations(d), allowed_allocations);
}

TEST(NoAlloc, Compressor) {
  compressor_params peak{-24.0, 4.0, 6.0, 5.0, 80.0, 3.0, 2.0};
  compressor_params rms = peak;
  rms.detector = level_detector::rms;
  rms.link = stereo_link::independent;
  compressor_params expander{-40.0, 0.5, 0.0, 1.0, 50.0, 0.0, 0.0};
  for (const compressor_params& p : {peak, rms, expander}) {
    compressor_stage c(p);
    EXPECT_EQ(stage_allocations(c), allowed_allocations);
  }
}

TEST(NoAlloc, Multiband) {
  multiband_params p;
  p.crossover.crossover_hz = {150.0, 2'500.0};
  p.bands = {compressor_params{-24.0, 3.0, 6.0, 10.0, 120.0, 1.0, 1.0},
             compressor_params{-20.0, 2.0, 0.0, 5.0, 80.0, 4.0, 0.0},
             compressor_params{-30.0, 4.0, 3.0, 2.0, 60.0, 0.0, 2.0}};
  p.dry_wet = 0.7;
  multiband_stage m(p);
  EXPECT_EQ(stage_allocations(m), allowed_allocations);
}

TEST(NoAlloc, StereoWithBassMono) {
  stereo_params p;
  p.width = 1.3;
  p.mid_gain_db = -1.0;
  p.bass_mono_below_hz = 150.0;
  stereo_stage s(p);
  EXPECT_EQ(stage_allocations(s), allowed_allocations);
}

TEST(NoAlloc, Saturation) {
  saturation_params p;
  p.drive_db = 9.0;
  p.mix = 0.5;
  saturation_stage s(p);
  EXPECT_EQ(stage_allocations(s), allowed_allocations);
}

// An IR of `channels` channels of decaying noise at 44.1 kHz (resampled to fs_hz in prepare()).
std::shared_ptr<const impulse_response> noise_ir(int channels) {
  auto ir = std::make_shared<impulse_response>();
  ir->path = "in-memory";
  ir->sample_rate_hz = 44'100.0;
  const audio_buffer n = test::white_noise(-20.0, 0.7, 44'100.0, channels, 11);
  ir->audio = n;
  for (int c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < n.frames(); ++i)
      ir->audio.channel(c)[i] *= static_cast<float>(std::exp(-6.0 * static_cast<double>(i) / n.frames()));
  return ir;
}

TEST(NoAlloc, ReverbMonoStereoTrueStereo) {
  reverb_params p;
  p.pre_delay_ms = 12.0;
  p.low_cut_hz = 200.0;
  p.high_cut_hz = 8'000.0;
  p.layout = {256, 4'096, 2};  // several segment sizes, each below and above the block sizes
  for (int ir_channels : {1, 2, 4}) {
    SCOPED_TRACE("IR channels " + std::to_string(ir_channels));
    reverb_stage r(p, noise_ir(ir_channels));
    EXPECT_EQ(stage_allocations(r), allowed_allocations);
  }
  reverb_stage mono_track(p, noise_ir(1));
  EXPECT_EQ(stage_allocations(mono_track, 1), allowed_allocations);
}

TEST(NoAlloc, StreamingLimiter) {
  true_peak_limiter lim;
  lim.set_input_gain_db(9.0);  // limits hard
  EXPECT_EQ(stage_allocations(lim), allowed_allocations);
  EXPECT_GT(lim.stats().max_gain_reduction_db, 1.0);  // the gain path really ran
}

// Ten minutes (the test signal 200 times): thousands of 100 ms gating blocks are appended. The
// meter keeps every block for the integrated loudness (its contract allows amortized growth of
// those lists); prepare() reserves 8192 blocks (13.6 min), so a track up to that long must not
// allocate.
TEST(NoAlloc, LoudnessMeter) {
  loudness_meter m;
  m.prepare(fs_hz, 2);
  const audio_buffer& x = test_signal();
  const std::vector<std::size_t> sizes = block_sizes();
  constexpr int repeats = 200;
  const long n = allocations_during([&] {
    std::size_t k = 0;
    for (int r = 0; r < repeats; ++r) {
      std::size_t pos = 0;
      while (pos < x.frames()) {
        const std::size_t len = std::min(sizes[k++ % sizes.size()], x.frames() - pos);
        m.process(x.view(pos, len));
        pos += len;
      }
    }
  });
  EXPECT_GT(m.blocks().momentary_energy.size(), 5'000u);
  EXPECT_EQ(n, allowed_allocations);
  EXPECT_TRUE(std::isfinite(m.momentary_lufs()));
}

TEST(NoAlloc, TruePeak) {
  for (double fs : {44'100.0, 96'000.0}) {
    true_peak_interpolator tp;
    tp.prepare(fs);
    const audio_buffer& x = test_signal();
    std::vector<float> peaks(x.frames());
    const std::vector<std::size_t> sizes = block_sizes();
    const long n = allocations_during([&] {
      std::size_t pos = 0, k = 0;
      while (pos < x.frames()) {
        const std::size_t len = std::min(sizes[k++ % sizes.size()], x.frames() - pos);
        tp.process(x.channel(0) + pos, peaks.data() + pos, len);
        pos += len;
      }
    });
    EXPECT_EQ(n, allowed_allocations);
  }
}

}  // namespace
}  // namespace lathe

// Chunked biquad cascades: zero-state pass, per-lane carry of states, final pass.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>

#include "lathe_gpu/error.cuh"
#include "lathe_gpu/iir.hpp"

namespace lathe::gpu {
namespace {

// ---- policy ------------------------------------------------------------------------------------
// One thread per chunk; a block stages tile_frames samples of each of its chunks through shared
// memory so that global loads and stores are coalesced along time (a warp reads 32 consecutive
// samples of one chunk) while each thread walks its own chunk's recursion.
struct cascade_policy {
  static constexpr int chunks_per_block = 128;
  static constexpr int tile_frames = 32;
  static constexpr int warps = chunks_per_block / 32;
};
constexpr int carry_warps_per_block = 4;

enum class pass_kind { zero_state, samples, sum_of_squares };

struct transition_matrix {
  double m[max_cascade_states * max_cascade_states];
};

// ---- tile: one pass over a block's chunks ---------------------------------------------------------
template <int S, pass_kind Kind>
__global__ void __launch_bounds__(cascade_policy::chunks_per_block)
    cascade_pass_kernel(const float* in, float* out, double* __restrict__ sums,
                        const std::uint64_t* __restrict__ chunk_batch_start,
                        const std::uint32_t* __restrict__ chunk_length, std::uint32_t chunks, cascade_coeffs c,
                        const double* __restrict__ init_state, double* __restrict__ final_state) {
  using P = cascade_policy;
  constexpr int N = 2 * S;
  // +1 column: thread t reads row t, so rows must fall in different banks.
  __shared__ float tile[P::chunks_per_block][P::tile_frames + 1];
  __shared__ std::uint64_t row_start[P::chunks_per_block];
  __shared__ std::uint32_t row_length[P::chunks_per_block];
  __shared__ std::uint32_t block_frames;

  const int t = static_cast<int>(threadIdx.x);
  const std::uint32_t chunk = blockIdx.x * P::chunks_per_block + static_cast<std::uint32_t>(t);
  const bool active = chunk < chunks;
  if (t == 0) block_frames = 0;
  row_start[t] = active ? chunk_batch_start[chunk] : 0;
  row_length[t] = active ? chunk_length[chunk] : 0;
  __syncthreads();
  if (active) atomicMax(&block_frames, row_length[t]);  // integer max: order cannot matter

  double s[N];
  for (int k = 0; k < N; ++k) s[k] = 0.0;
  if constexpr (Kind != pass_kind::zero_state) {
    if (active)
      for (int k = 0; k < N; ++k) s[k] = init_state[static_cast<std::size_t>(chunk) * N + k];
  }
  double sum = 0.0;
  __syncthreads();

  const std::uint32_t frames = block_frames;
  const std::uint32_t my_length = row_length[t];
  const int warp = t / 32, lane = t % 32;
  for (std::uint32_t t0 = 0; t0 < frames; t0 += P::tile_frames) {
    const std::uint32_t i = t0 + static_cast<std::uint32_t>(lane);
    for (int r = warp; r < P::chunks_per_block; r += P::warps)
      tile[r][lane] = i < row_length[r] ? in[row_start[r] + i] : 0.0f;
    __syncthreads();
    if (t0 < my_length) {
      const std::uint32_t n = min(static_cast<std::uint32_t>(P::tile_frames), my_length - t0);
      for (std::uint32_t j = 0; j < n; ++j) {
        const double y = cascade_tick<S>(c, s, static_cast<double>(tile[t][j]));
        if constexpr (Kind == pass_kind::samples) tile[t][j] = static_cast<float>(y);
        if constexpr (Kind == pass_kind::sum_of_squares) sum += y * y;
      }
    }
    __syncthreads();
    if constexpr (Kind == pass_kind::samples) {
      // Each warp stores the rows it loaded, so the next load of a row follows its store in the
      // same thread's program order: no barrier needed between them.
      for (int r = warp; r < P::chunks_per_block; r += P::warps)
        if (i < row_length[r]) out[row_start[r] + i] = tile[r][lane];
    }
  }
  if (!active) return;
  if constexpr (Kind == pass_kind::zero_state)
    for (int k = 0; k < N; ++k) final_state[static_cast<std::size_t>(chunk) * N + k] = s[k];
  if constexpr (Kind == pass_kind::sum_of_squares) sums[chunk] = sum;
}

// ---- carry: one warp per lane, chunks in time order -----------------------------------------------
// The lane's zero-state finals are staged 32 at a time (coalesced), lane 0 of the warp walks the
// affine recurrence, and the initial states go back 32 at a time.
template <int S>
__global__ void __launch_bounds__(carry_warps_per_block * 32)
    carry_kernel(const std::uint32_t* __restrict__ first_chunk_of_lane, std::uint32_t lanes, transition_matrix tm,
                 const double* __restrict__ zero_state, double* __restrict__ init_state) {
  constexpr int N = 2 * S;
  __shared__ double stage[carry_warps_per_block][32][N];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const std::uint32_t l = blockIdx.x * carry_warps_per_block + static_cast<std::uint32_t>(warp);
  if (l >= lanes) return;  // whole warp leaves together; only warp-level barriers below
  const std::uint32_t first = first_chunk_of_lane[l], end = first_chunk_of_lane[l + 1];
  double s[N];
  for (int k = 0; k < N; ++k) s[k] = 0.0;
  for (std::uint32_t g = first; g < end; g += 32) {
    const std::uint32_t c = g + static_cast<std::uint32_t>(lane);
    if (c < end)
      for (int k = 0; k < N; ++k) stage[warp][lane][k] = zero_state[static_cast<std::size_t>(c) * N + k];
    __syncwarp();
    if (lane == 0) {
      const std::uint32_t n = min(32u, end - g);
      for (std::uint32_t j = 0; j < n; ++j) {
        double z[N];
        for (int k = 0; k < N; ++k) {
          z[k] = stage[warp][j][k];
          stage[warp][j][k] = s[k];
        }
        affine_step<N>(tm.m, s, z);
      }
    }
    __syncwarp();
    if (c < end)
      for (int k = 0; k < N; ++k) init_state[static_cast<std::size_t>(c) * N + k] = stage[warp][lane][k];
    __syncwarp();
  }
}

// ---- dispatch ----------------------------------------------------------------------------------
struct cascade_args {
  const float* in;
  float* out;
  double* sums;
  const std::uint64_t* chunk_batch_start;
  const std::uint32_t* chunk_length;
  std::uint32_t chunks;
  const std::uint32_t* first_chunk_of_lane;
  std::uint32_t lanes;
  double* zero_state;
  double* init_state;
  cascade_coeffs coeffs;
  const double* transition;  // host
};

template <int S>
void run_cascade_sections(const cascade_args& a, detail::cascade_output output, cudaStream_t st) {
  using P = cascade_policy;
  constexpr int N = 2 * S;
  transition_matrix tm{};
  std::memcpy(tm.m, a.transition, sizeof(double) * N * N);
  const unsigned blocks = (a.chunks + P::chunks_per_block - 1) / P::chunks_per_block;
  cascade_pass_kernel<S, pass_kind::zero_state><<<blocks, P::chunks_per_block, 0, st>>>(
      a.in, nullptr, nullptr, a.chunk_batch_start, a.chunk_length, a.chunks, a.coeffs, nullptr, a.zero_state);
  LATHE_CUDA_CHECK_LAUNCH();
  const unsigned carry_blocks = (a.lanes + carry_warps_per_block - 1) / carry_warps_per_block;
  carry_kernel<S><<<carry_blocks, carry_warps_per_block * 32, 0, st>>>(a.first_chunk_of_lane, a.lanes, tm, a.zero_state,
                                                                       a.init_state);
  LATHE_CUDA_CHECK_LAUNCH();
  if (output == detail::cascade_output::samples) {
    cascade_pass_kernel<S, pass_kind::samples><<<blocks, P::chunks_per_block, 0, st>>>(
        a.in, a.out, nullptr, a.chunk_batch_start, a.chunk_length, a.chunks, a.coeffs, a.init_state, nullptr);
  } else {
    cascade_pass_kernel<S, pass_kind::sum_of_squares><<<blocks, P::chunks_per_block, 0, st>>>(
        a.in, nullptr, a.sums, a.chunk_batch_start, a.chunk_length, a.chunks, a.coeffs, a.init_state, nullptr);
  }
  LATHE_CUDA_CHECK_LAUNCH();
}

}  // namespace

// ---- facade ------------------------------------------------------------------------------------
namespace detail {

chunked_cascade::chunked_cascade(std::span<const biquad_coeffs> sections, const lane_layout& layout,
                                 std::size_t chunk_frames, const stream& s)
    : coeffs_(pack_cascade(sections)), chunks_(make_chunks(layout, chunk_frames)), lanes_(layout.lanes()) {
  LATHE_EXPECTS(chunk_frames <= (std::size_t{1} << 22), "cascade chunk_frames too large (at most 4M frames)");
  LATHE_EXPECTS(chunks_.size() < (std::size_t{1} << 32) / max_cascade_states, "batch has too many chunks for one plan");
  transition_ = cascade_transition(coeffs_, chunk_frames);
  start_ = chunk_batch_starts(layout, chunks_);
  const std::size_t n = chunks_.size();
  const auto states = static_cast<std::size_t>(2 * coeffs_.sections);
  d_start_ = device_vector<std::uint64_t>(n);
  d_length_ = device_vector<std::uint32_t>(n);
  d_first_ = device_vector<std::uint32_t>(chunks_.first_chunk_of_lane.size());
  d_zero_state_ = device_vector<double>(n * states);
  d_init_state_ = device_vector<double>(n * states);
  d_start_.upload_async(start_, s);
  d_length_.upload_async(chunks_.length, s);
  d_first_.upload_async(chunks_.first_chunk_of_lane, s);
}

void chunked_cascade::run_async(const float* in, float* out, double* sums, cascade_output output, const stream& s) {
  if (chunks_.size() == 0) return;  // nothing to do (and a zero-block grid is a launch error)
  const cascade_args a{in,
                       out,
                       sums,
                       d_start_.data(),
                       d_length_.data(),
                       static_cast<std::uint32_t>(chunks_.size()),
                       d_first_.data(),
                       static_cast<std::uint32_t>(lanes_),
                       d_zero_state_.data(),
                       d_init_state_.data(),
                       coeffs_,
                       transition_.data()};
  const auto st = static_cast<cudaStream_t>(s.get());
  switch (coeffs_.sections) {
    case 1:
      run_cascade_sections<1>(a, output, st);
      break;
    case 2:
      run_cascade_sections<2>(a, output, st);
      break;
    case 3:
      run_cascade_sections<3>(a, output, st);
      break;
    default:
      run_cascade_sections<4>(a, output, st);
      break;
  }
}

}  // namespace detail
}  // namespace lathe::gpu

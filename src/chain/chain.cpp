#include "lathe/chain.hpp"

#include <algorithm>
#include <cstring>

#include "lathe/error.hpp"
#include "lathe/master.hpp"
#include "lathe/stage_module.hpp"

namespace lathe {

prechain_stream::prechain_stream(const delivery_profile& p, double sample_rate_hz, int channels,
                                 std::size_t total_frames)
    : profile_(p), channels_(channels), total_frames_(total_frames) {
  LATHE_EXPECTS(channels >= 1 && channels <= max_channels, "channel count out of range");
  stream_spec spec;
  spec.sample_rate_hz = sample_rate_hz;
  spec.channels = channels;
  spec.max_block_frames = block_frames;
  // Reserved, so no node moves once prepared.
  nodes_.reserve(p.chain_order.size());
  for (const chain_stage st : p.chain_order)
    visit_stage(st, [&]<class M>(M) {
      std::optional<typename M::dsp> dsp = M::build(M::of(p), sample_rate_hz);
      if (!dsp) {
        entries_.push_back({st, npos});
        return;
      }
      add(stage(std::in_place_type<typename M::dsp>, std::move(*dsp)), spec);
      entries_.push_back({st, nodes_.size() - 1});
    });
  zeros_.resize(channels, nodes_.empty() ? 0 : block_frames);
}

void prechain_stream::add(stage s, const stream_spec& spec) {
  node& n = nodes_.emplace_back(std::move(s));
  std::visit([&](auto& d) { d.prepare(spec); }, n.dsp);
  n.latency = std::visit([](const auto& d) -> std::size_t { return d.latency_frames(); }, n.dsp);
  n.queue.resize(spec.channels, block_frames);
  n.block.resize(spec.channels, block_frames);
}

void prechain_stream::push(const_block_view in, frame_sink out) {
  LATHE_EXPECTS(!finished_, "prechain_stream::push after finish()");
  LATHE_EXPECTS(in.channels == channels_, "prechain_stream::push: channel count differs from the stream's");
  LATHE_EXPECTS(in.frames <= total_frames_ - pushed_frames_, "prechain_stream::push: more than total_frames");
  pushed_frames_ += in.frames;
  feed(0, in, out);
}

void prechain_stream::finish(frame_sink out) {
  LATHE_EXPECTS(!finished_, "prechain_stream::finish called twice");
  LATHE_EXPECTS(pushed_frames_ == total_frames_, "prechain_stream::finish before all total_frames were pushed");
  finished_ = true;
  // Stage k has all its input once stage k - 1 is flushed, so the stages end in chain order.
  for (std::size_t k = 0; k < nodes_.size(); ++k) {
    node& n = nodes_[k];
    if (n.queued > 0) {
      const std::size_t last = n.queued;
      n.queued = 0;
      run_block(k, n.queue.view(0, last), out);
    }
    while (n.written < total_frames_)
      run_block(k, zeros_.view(0, std::min(block_frames, total_frames_ - n.written + n.latency)), out);
  }
}

// Gathers stage k's input into whole blocks; a whole block already in `in` runs without a copy.
void prechain_stream::feed(std::size_t k, const_block_view in, const frame_sink& out) {
  if (k == nodes_.size()) {
    if (in.frames > 0) out(in);
    emitted_frames_ += in.frames;
    return;
  }
  node& n = nodes_[k];
  while (in.frames > 0) {
    if (n.queued == 0 && in.frames >= block_frames) {
      run_block(k, in.sub(0, block_frames), out);
      in = in.sub(block_frames, in.frames - block_frames);
      continue;
    }
    const std::size_t take = std::min(block_frames - n.queued, in.frames);
    for (int c = 0; c < channels_; ++c) std::memcpy(n.queue.channel(c) + n.queued, in[c], take * sizeof(float));
    n.queued += take;
    in = in.sub(take, in.frames - take);
    if (n.queued == block_frames) {
      n.queued = 0;
      run_block(k, n.queue.view(0, block_frames), out);
    }
  }
}

// One process() call of stage k, then its aligned part downstream: the first `latency` frames
// the stage ever outputs are dropped, and nothing past total_frames is kept.
void prechain_stream::run_block(std::size_t k, const_block_view in, const frame_sink& out) {
  node& n = nodes_[k];
  const block_view y = n.block.view(0, in.frames);
  std::visit([&](auto& d) { d.process(in, y); }, n.dsp);
  const std::size_t skip = n.produced < n.latency ? std::min(n.latency - n.produced, in.frames) : 0;
  n.produced += in.frames;
  const std::size_t keep = std::min(in.frames - skip, total_frames_ - n.written);
  n.written += keep;
  if (keep > 0) feed(k + 1, y.sub(skip, keep), out);
}

nlohmann::json prechain_stream::report() const {
  nlohmann::json stages = nlohmann::json::array();
  for (const entry& e : entries_)
    visit_stage(e.kind, [&]<class M>(M) {
      const typename M::stats s =
          e.node_index == npos ? typename M::stats{} : M::stats_of(std::get<typename M::dsp>(nodes_[e.node_index].dsp));
      stages.push_back(M::report(M::of(profile_), s));
    });
  return stages;
}

std::size_t prechain_stream::latency_frames() const noexcept {
  std::size_t sum = 0;
  for (const node& n : nodes_) sum += n.latency;
  return sum;
}

std::size_t prechain_stream::buffer_bytes() const noexcept {
  std::size_t sum = zeros_.bytes();
  for (const node& n : nodes_) sum += n.queue.bytes() + n.block.bytes();
  return sum;
}

}  // namespace lathe

#pragma once
// One module per pre-chain stage (high-pass, EQ, de-esser, multiband, stereo, saturation,
// reverb): its name, its settings in the profile, its [chain.NAME] table, its fingerprint, its
// CPU stage and the report entry both backends write. visit_stage() is the one switch over
// chain_stage; the profile reader, the fingerprints, the CPU chain (prechain_stream) and the
// GPU engine go through it, so a new stage is one module here plus its DSP.
#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/profile.hpp"

namespace lathe {

namespace detail {
class table_reader;
class fingerprint_text;
}  // namespace detail

/// What a stage without statistics of its own reports from (its settings only).
struct no_stats {};

/// What the EQ's report entry says: bands that act at the source rate, and FIR taps (0 when
/// the EQ is a bypass).
struct eq_stats {
  std::size_t bands = 0;
  std::size_t taps = 0;
};

/// Every module has:
///   kind, name            the chain_stage and its name in `chain.order` and in the report
///   params, dsp, stats    the settings, the CPU stage (src/dsp/), what it measures as it runs
///   of(profile)           the module's settings in a profile
///   read(chain, params)   reads [chain.NAME] (config_error on a bad key or value)
///   fingerprint(f, p)     appends every setting that changes the audio
///   build(p, rate)        the CPU stage at a source rate; nullopt when it would do nothing
///   stats_of(dsp)         what the stage measured so far
///   report(p, stats)      the stage's entry in a master's `chain.stages`
template <chain_stage K>
struct stage_module;

namespace detail {
// What most modules share: settings in `Member` of the profile, a stage built from them.
template <chain_stage K, auto Member, class Params, class Dsp, class Stats>
struct stage_module_base {
  static constexpr chain_stage kind = K;
  using params = Params;
  using dsp = Dsp;
  using stats = Stats;
  static params& of(delivery_profile& p) noexcept { return p.*Member; }
  static const params& of(const delivery_profile& p) noexcept { return p.*Member; }
  static std::optional<dsp> build(const params& p, double /*sample_rate_hz*/) { return dsp(p); }
};
}  // namespace detail

template <>
struct stage_module<chain_stage::highpass>
    : detail::stage_module_base<chain_stage::highpass, &delivery_profile::highpass, highpass_params, highpass_stage,
                                no_stats> {
  static constexpr std::string_view name = "highpass";
  static void read(const detail::table_reader& chain, params& p);
  static void fingerprint(detail::fingerprint_text& f, const params& p);
  static stats stats_of(const dsp&) noexcept { return {}; }
  static nlohmann::json report(const params& p, const stats& s);
};

template <>
struct stage_module<chain_stage::eq>
    : detail::stage_module_base<chain_stage::eq, &delivery_profile::eq, eq_params, linear_phase_eq_stage, eq_stats> {
  static constexpr std::string_view name = "eq";
  static void read(const detail::table_reader& chain, params& p);
  static void fingerprint(detail::fingerprint_text& f, const params& p);
  /// The bands that act at the rate (eq_at_rate); nullopt without bands or curve.
  static std::optional<dsp> build(const params& p, double sample_rate_hz);
  static stats stats_of(const dsp& d) noexcept { return {d.bands(), d.taps()}; }
  static nlohmann::json report(const params& p, const stats& s);
};

template <>
struct stage_module<chain_stage::deesser> : detail::stage_module_base<chain_stage::deesser, &delivery_profile::deesser,
                                                                      deesser_params, deesser_stage, deesser_stats> {
  static constexpr std::string_view name = "deesser";
  static void read(const detail::table_reader& chain, params& p);
  static void fingerprint(detail::fingerprint_text& f, const params& p);
  static stats stats_of(const dsp& d) noexcept { return d.stats(); }
  static nlohmann::json report(const params& p, const stats& s);
};

template <>
struct stage_module<chain_stage::multiband>
    : detail::stage_module_base<chain_stage::multiband, &delivery_profile::multiband, multiband_params, multiband_stage,
                                std::vector<dynamics_stats>> {
  static constexpr std::string_view name = "multiband";
  static void read(const detail::table_reader& chain, params& p);
  static void fingerprint(detail::fingerprint_text& f, const params& p);
  static stats stats_of(const dsp& d);
  static nlohmann::json report(const params& p, const stats& s);
};

template <>
struct stage_module<chain_stage::stereo> : detail::stage_module_base<chain_stage::stereo, &delivery_profile::stereo,
                                                                     stereo_params, stereo_stage, stereo_stats> {
  static constexpr std::string_view name = "stereo";
  static void read(const detail::table_reader& chain, params& p);
  static void fingerprint(detail::fingerprint_text& f, const params& p);
  static stats stats_of(const dsp& d) noexcept { return d.stats(); }
  static nlohmann::json report(const params& p, const stats& s);
};

template <>
struct stage_module<chain_stage::saturation>
    : detail::stage_module_base<chain_stage::saturation, &delivery_profile::saturation, saturation_params,
                                saturation_stage, no_stats> {
  static constexpr std::string_view name = "saturation";
  static void read(const detail::table_reader& chain, params& p);
  static void fingerprint(detail::fingerprint_text& f, const params& p);
  static stats stats_of(const dsp&) noexcept { return {}; }
  static nlohmann::json report(const params& p, const stats& s);
};

template <>
struct stage_module<chain_stage::reverb> : detail::stage_module_base<chain_stage::reverb, &delivery_profile::reverb,
                                                                     reverb_params, reverb_stage, reverb_stats> {
  static constexpr std::string_view name = "reverb";
  /// `ir` is resolved against the profile's folder.
  static void read(const detail::table_reader& chain, params& p);
  /// The IR file's path and size too: a changed IR changes the masters.
  static void fingerprint(detail::fingerprint_text& f, const params& p);
  static stats stats_of(const dsp& d) noexcept { return d.stats(); }
  static nlohmann::json report(const params& p, const stats& s);
};

/// Every stage, in the enum's order.
inline constexpr std::array<chain_stage, 7> all_chain_stages = {
    chain_stage::highpass, chain_stage::eq,         chain_stage::deesser, chain_stage::multiband,
    chain_stage::stereo,   chain_stage::saturation, chain_stage::reverb};

/// Calls f(stage_module<s>{}) and returns what it returns: the one switch over chain_stage.
template <class F>
decltype(auto) visit_stage(chain_stage s, F&& f) {
  switch (s) {
    case chain_stage::highpass:
      return f(stage_module<chain_stage::highpass>{});
    case chain_stage::eq:
      return f(stage_module<chain_stage::eq>{});
    case chain_stage::deesser:
      return f(stage_module<chain_stage::deesser>{});
    case chain_stage::multiband:
      return f(stage_module<chain_stage::multiband>{});
    case chain_stage::stereo:
      return f(stage_module<chain_stage::stereo>{});
    case chain_stage::saturation:
      return f(stage_module<chain_stage::saturation>{});
    case chain_stage::reverb:
      return f(stage_module<chain_stage::reverb>{});
  }
  throw std::logic_error("visit_stage: not a chain_stage");
}

/// Calls f(stage_module<s>{}) for every stage, in the enum's order.
template <class F>
void for_each_stage(F&& f) {
  for (const chain_stage s : all_chain_stages) visit_stage(s, f);
}

/// The CPU stages of a chain, one alternative per module.
using any_stage = std::variant<highpass_stage, linear_phase_eq_stage, deesser_stage, multiband_stage, stereo_stage,
                               saturation_stage, reverb_stage>;

}  // namespace lathe

#!/usr/bin/env python3
"""End-to-end catalog benchmark: lathe's CPU backend against an ffmpeg chain of the same scope,
on the same machine, catalog and parallelism, in one run; and `lathe analyze` against libebur128.

Catalog: Debian's warzone2100-music (Opus), decoded once to 24-bit FLAC (not timed).
Formats: `streaming` (-14 LUFS, -1 dBTP, 24-bit FLAC, source rate) and `cd` (-12 LUFS,
-0.3 dBTP, 16-bit/44.1 kHz WAV, F-weighted TPDF dither).

Chains (--chains, each run by both tools):
  default      bench/profiles/*.toml: 20 Hz high-pass (order 2) and a three-band linear-phase EQ.
               ffmpeg: highpass, firequalizer (linear phase).
  gentle-glue  configs/chains/gentle-glue.toml: 20 Hz high-pass (order 4) and three-band
               compression (crossovers 120 Hz and 2 kHz, 1.5:1, RMS detection, 6 dB knee).
               ffmpeg: two cascaded 2-pole highpasses, acrossover (4th order) into three
               acompressors with the preset's thresholds and times, summed by amix.
Then, per track and format, run N at a time (N = --jobs):
  pass 1: the chain, loudnorm measurement
  pass 2: the chain, loudnorm two-pass linear, alimiter, soxr (precision 28 = VHQ) resampling
          with dither, FLAC/WAV encode
Both tools' masters are measured with `lathe analyze` (the same meter for both).

Meters: `lathe analyze --jobs 1` (integrated loudness, LRA, true peak, sample peak, DC, clipping)
against libebur128 (build/lathe_ebur128: integrated loudness, LRA, true peak), one thread each,
on the catalog's files.

Usage: bench/catalog_bench.py --lathe build/lathe [--jobs N] [--limit K] [--chains default,gentle-glue]
                              [--ebur128 build/lathe_ebur128] [--out bench/results/X.json]
"""
import argparse
import concurrent.futures as cf
import csv
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUSIC = "/usr/share/games/warzone2100/music"
FORMATS = {
    "streaming": {"target": -14.0, "ceiling": -1.0, "rate": None, "ext": "flac"},
    "cd": {"target": -12.0, "ceiling": -0.3, "rate": 44100, "ext": "wav"},
}
# The EQ of bench/profiles/*.toml (low shelf +1 dB at 100 Hz, bell -1.5 dB at 3 kHz Q 1, high
# shelf +1 dB at 10 kHz), given to firequalizer as gain points; it interpolates between them.
FIREQ_ENTRIES = ("entry(0,1);entry(50,0.97);entry(100,0.5);entry(200,0.08);entry(1000,-0.2);"
                 "entry(2000,-0.9);entry(3000,-1.5);entry(4500,-0.9);entry(7000,0.1);entry(10000,0.5);"
                 "entry(14000,0.9);entry(20000,1);entry(24000,1)")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def decode_catalog(work, limit):
    """Decodes the Opus catalog once to 24-bit FLAC (not timed) and writes manifest.csv with each
    track's album, artist, title and number from the package's album.json files."""
    src = sorted(glob.glob(os.path.join(MUSIC, "**", "*.opus"), recursive=True) +
                 glob.glob(os.path.join(MUSIC, "**", "*.ogg"), recursive=True))
    if not src:
        sys.exit("warzone2100-music is not installed (scripts/install-deps.sh --bench)")
    if limit:
        src = src[:limit]
    meta = {}
    for album_json in glob.glob(os.path.join(MUSIC, "albums", "*", "album.json")):
        album = json.load(open(album_json))
        for n, t in enumerate(album["tracks"], 1):
            meta[os.path.join(os.path.dirname(album_json), t["filename"])] = (
                album["title"], t.get("author", album.get("author", "")), t.get("title", ""), n)
    cat = os.path.join(work, f"catalog-{limit}" if limit else "catalog")
    os.makedirs(cat, exist_ok=True)
    files, rows = [], []
    for s in src:
        rel = os.path.relpath(s, MUSIC).replace(os.sep, "__")
        dst = os.path.join(cat, os.path.splitext(rel)[0] + ".flac")
        if not os.path.exists(dst):
            run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", s, "-map_metadata", "-1", "-c:a", "flac",
                 "-sample_fmt", "s32", "-bits_per_raw_sample", "24", dst + ".tmp.flac"])
            os.rename(dst + ".tmp.flac", dst)
        files.append(dst)
        album, artist, title, number = meta.get(s, ("", "", os.path.splitext(os.path.basename(s))[0], 0))
        rows.append([os.path.basename(dst), album, artist, title, str(number) if number else ""])
    with open(os.path.join(cat, "manifest.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "album", "artist", "title", "track_number"])
        w.writerows(rows)
    return cat, files


def duration_s(path):
    out = run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path]).stdout
    return float(out.strip())


def glue_band(threshold_db, attack_ms, release_ms):
    """acompressor for one band of configs/chains/gentle-glue.toml (ratio 1.5, knee 6 dB, RMS)."""
    return (f"acompressor=threshold={10 ** (threshold_db / 20):.6f}:ratio=1.5:knee={10 ** (6 / 20):.4f}:"
            f"attack={attack_ms}:release={release_ms}:detection=rms")


# Each chain as a filter graph from [0:a] to an unlabelled output that the rest of the chain follows.
CHAINS = {
    "default": f"[0:a]highpass=f=20:poles=2,firequalizer=gain_entry='{FIREQ_ENTRIES}':zero_phase=on:fixed=on",
    "gentle-glue": ("[0:a]highpass=f=20:poles=2,highpass=f=20:poles=2,acrossover=split=120 2000:order=4th[b0][b1][b2];"
                    f"[b0]{glue_band(-20, 30, 250)}[c0];[b1]{glue_band(-22, 20, 200)}[c1];"
                    f"[b2]{glue_band(-26, 10, 150)}[c2];[c0][c1][c2]amix=inputs=3:normalize=0"),
}


def ffmpeg_one(src, fmt, chain, out_dir):
    f = FORMATS[fmt]
    pre = CHAINS[chain]
    p1 = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", src, "-filter_complex",
                         pre + f",loudnorm=I={f['target']}:TP={f['ceiling']}:LRA=20:print_format=json[out]",
                         "-map", "[out]", "-f", "null", "-"], capture_output=True, text=True, check=True)
    m = json.loads(re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", p1.stderr, re.S).group(0))
    limit_lin = 10 ** (f["ceiling"] / 20)
    rate = f["rate"] or 48000
    second = (f"{pre},loudnorm=I={f['target']}:TP={f['ceiling']}:LRA=20:measured_I={m['input_i']}:"
              f"measured_TP={m['input_tp']}:measured_LRA={m['input_lra']}:measured_thresh={m['input_thresh']}:"
              f"offset={m['target_offset']}:linear=true:print_format=none,"
              f"alimiter=limit={limit_lin:.6f}:level=false,"
              f"aresample={rate}:resampler=soxr:precision=28:dither_method="
              + ("f_weighted" if fmt == "cd" else "triangular") + "[out]")
    dst = os.path.join(out_dir, fmt, os.path.splitext(os.path.basename(src))[0] + "." + f["ext"])
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    codec = (["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"] if fmt == "streaming"
             else ["-c:a", "pcm_s16le"])
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, "-filter_complex", second, "-map", "[out]"] + codec +
        [dst])
    return dst


def measure(lathe, paths, jobs):
    out = run([lathe, "analyze", "--json", "--jobs", str(jobs)] + paths).stdout
    return json.loads(out)


def summarize(readings, fmt):
    f = FORMATS[fmt]
    errs = [r["analysis"]["integrated_lufs"] - f["target"] for r in readings if r["status"] == "ok"]
    tps = [r["analysis"]["true_peak_dbtp"] for r in readings if r["status"] == "ok"]
    return {"files": len(readings), "max_abs_loudness_error_lu": round(max(abs(e) for e in errs), 3),
            "mean_loudness_error_lu": round(sum(errs) / len(errs), 3), "max_true_peak_dbtp": round(max(tps), 3),
            "over_ceiling": sum(1 for t in tps if t > f["ceiling"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lathe", default=os.path.join(ROOT, "build", "lathe"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--limit", type=int, default=0, help="only the first K tracks")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", "work"))
    ap.add_argument("--chains", default="default", help="comma-separated: default, gentle-glue")
    ap.add_argument("--ebur128", default="", help="build/lathe_ebur128: also time the meters")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    lathe = os.path.abspath(a.lathe)
    # What was measured: the commit at the start, marked dirty when the tree had changes.
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(a.work, exist_ok=True)
    cat, files = decode_catalog(a.work, a.limit)
    audio_s = sum(duration_s(x) for x in files)
    print(f"catalog: {len(files)} tracks, {audio_s / 3600:.2f} h, jobs {a.jobs}", flush=True)

    chains = {}
    for chain in a.chains.split(","):
        if chain not in CHAINS:
            sys.exit(f"unknown chain '{chain}' (known: {', '.join(CHAINS)})")
        lathe_out = os.path.join(a.work, f"lathe-out-{chain}")
        shutil.rmtree(lathe_out, ignore_errors=True)
        chain_args = [] if chain == "default" else ["--chain", chain]
        t = time.monotonic()
        run([lathe, "master", cat, "--out", lathe_out, "--formats", "streaming,cd", "--track-mode",
             "--jobs", str(a.jobs), "--log-format", "json", "--config-dir", os.path.join(ROOT, "configs"),
             "--profile", os.path.join(ROOT, "bench", "profiles", "streaming.toml"),
             "--profile", os.path.join(ROOT, "bench", "profiles", "cd.toml")] + chain_args)
        lathe_s = time.monotonic() - t
        print(f"{chain}: lathe  {lathe_s:.1f} s, {audio_s / lathe_s:.1f}x realtime", flush=True)

        ff_out = os.path.join(a.work, f"ffmpeg-out-{chain}")
        shutil.rmtree(ff_out, ignore_errors=True)
        t = time.monotonic()
        with cf.ThreadPoolExecutor(max_workers=a.jobs) as pool:
            outs = list(pool.map(lambda job: ffmpeg_one(job[0], job[1], chain, ff_out),
                                 [(x, fmt) for x in files for fmt in FORMATS]))
        ff_s = time.monotonic() - t
        print(f"{chain}: ffmpeg {ff_s:.1f} s, {audio_s / ff_s:.1f}x realtime", flush=True)

        report = json.load(open(os.path.join(lathe_out, "report.json")))
        quality = {"lathe": {}, "ffmpeg": {}}
        for fmt in FORMATS:
            lathe_files = [os.path.join(lathe_out, t["outputs"][fmt]["path"]) for t in report["tracks"]]
            quality["lathe"][fmt] = summarize(measure(lathe, lathe_files, a.jobs), fmt)
            quality["ffmpeg"][fmt] = summarize(measure(lathe, [o for o in outs if f"{os.sep}{fmt}{os.sep}" in o],
                                                       a.jobs), fmt)
        chains[chain] = {
            "lathe_cpu": {"wall_s": round(lathe_s, 2), "x_realtime": round(audio_s / lathe_s, 1)},
            "ffmpeg_chain": {"wall_s": round(ff_s, 2), "x_realtime": round(audio_s / ff_s, 1)},
            "speedup_lathe_over_ffmpeg": round(ff_s / lathe_s, 2),
            "output_quality": quality,
        }

    # The meters, one thread each, on the catalog's files (page cache warm from the runs above).
    meters = {}
    if a.ebur128:
        t = time.monotonic()
        run([lathe, "analyze", "--json", "--jobs", "1"] + files)
        lathe_an_s = time.monotonic() - t
        t = time.monotonic()
        run([os.path.abspath(a.ebur128)] + files)
        ebur_s = time.monotonic() - t
        meters = {"lathe_analyze_jobs1": {"wall_s": round(lathe_an_s, 2), "x_realtime": round(audio_s / lathe_an_s, 1),
                                          "measures": "I, LRA, TP, sample peak, DC, clipping"},
                  "libebur128": {"wall_s": round(ebur_s, 2), "x_realtime": round(audio_s / ebur_s, 1),
                                 "measures": "I, LRA, TP"},
                  "speedup_lathe_over_libebur128": round(ebur_s / lathe_an_s, 2)}
        print(f"meters: lathe analyze {lathe_an_s:.1f} s, libebur128 {ebur_s:.1f} s", flush=True)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    result = {
        "benchmark": "catalog end to end, formats streaming + cd (bench/catalog_bench.py)",
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
                    "load_average_at_start": load_at_start},
        "lathe_version": run([lathe, "--version"]).stdout.strip(),
        "git_commit": commit,
        "ffmpeg_version": run(["ffmpeg", "-version"]).stdout.splitlines()[0],
        "catalog": {"source": "warzone2100-music (Debian), decoded to 24-bit FLAC", "tracks": len(files),
                    "audio_hours": round(audio_s / 3600, 4)},
        "jobs": a.jobs,
        "chains": chains,
        "meters": meters,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""End-to-end catalog benchmark: lathe's CPU backend against an ffmpeg chain of the same scope,
on the same machine, catalog and parallelism, in one run.

Catalog: Debian's warzone2100-music (Opus), decoded once to 24-bit FLAC (not timed).
Formats: `streaming` (-14 LUFS, -1 dBTP, 24-bit FLAC, source rate) and `cd` (-12 LUFS,
-0.3 dBTP, 16-bit/44.1 kHz WAV, F-weighted TPDF dither), both with a 20 Hz high-pass and the same
three-band linear-phase EQ (bench/profiles/*.toml).

ffmpeg chain per track and format, run N at a time (N = --jobs):
  pass 1: highpass, firequalizer (linear phase), loudnorm measurement
  pass 2: highpass, firequalizer, loudnorm two-pass linear, alimiter, soxr (precision 28 = VHQ)
          resampling with dither, FLAC/WAV encode
Both outputs are then measured with `lathe analyze` (the same meter for both).

Usage: bench/catalog_bench.py --lathe build/lathe [--jobs N] [--limit K] [--out bench/results/X.json]
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
    cat = os.path.join(work, "catalog")
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


def ffmpeg_one(src, fmt, out_dir):
    f = FORMATS[fmt]
    pre = f"highpass=f=20:poles=2,firequalizer=gain_entry='{FIREQ_ENTRIES}':zero_phase=on:fixed=on"
    p1 = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", src, "-af",
                         pre + f",loudnorm=I={f['target']}:TP={f['ceiling']}:LRA=20:print_format=json",
                         "-f", "null", "-"], capture_output=True, text=True, check=True)
    m = json.loads(re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", p1.stderr, re.S).group(0))
    limit_lin = 10 ** (f["ceiling"] / 20)
    rate = f["rate"] or 48000
    second = (f"{pre},loudnorm=I={f['target']}:TP={f['ceiling']}:LRA=20:measured_I={m['input_i']}:"
              f"measured_TP={m['input_tp']}:measured_LRA={m['input_lra']}:measured_thresh={m['input_thresh']}:"
              f"offset={m['target_offset']}:linear=true:print_format=none,"
              f"alimiter=limit={limit_lin:.6f}:level=false,"
              f"aresample={rate}:resampler=soxr:precision=28:dither_method="
              + ("f_weighted" if fmt == "cd" else "triangular"))
    dst = os.path.join(out_dir, fmt, os.path.splitext(os.path.basename(src))[0] + "." + f["ext"])
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    codec = (["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"] if fmt == "streaming"
             else ["-c:a", "pcm_s16le"])
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, "-af", second] + codec + [dst])
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
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    lathe = os.path.abspath(a.lathe)
    # What was measured: the commit at the start, marked dirty when the tree had changes.
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    os.makedirs(a.work, exist_ok=True)
    cat, files = decode_catalog(a.work, a.limit)
    audio_s = sum(duration_s(x) for x in files)
    print(f"catalog: {len(files)} tracks, {audio_s / 3600:.2f} h, jobs {a.jobs}", flush=True)

    lathe_out = os.path.join(a.work, "lathe-out")
    shutil.rmtree(lathe_out, ignore_errors=True)
    t = time.monotonic()
    run([lathe, "master", cat, "--out", lathe_out, "--formats", "streaming,cd", "--track-mode",
         "--jobs", str(a.jobs), "--log-format", "json", "--config-dir", os.path.join(ROOT, "configs"),
         "--profile", os.path.join(ROOT, "bench", "profiles", "streaming.toml"),
         "--profile", os.path.join(ROOT, "bench", "profiles", "cd.toml")])
    lathe_s = time.monotonic() - t
    print(f"lathe:  {lathe_s:.1f} s, {audio_s / lathe_s:.1f}x realtime", flush=True)

    ff_out = os.path.join(a.work, "ffmpeg-out")
    shutil.rmtree(ff_out, ignore_errors=True)
    t = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        outs = list(pool.map(lambda job: ffmpeg_one(job[0], job[1], ff_out),
                             [(x, fmt) for x in files for fmt in FORMATS]))
    ff_s = time.monotonic() - t
    print(f"ffmpeg: {ff_s:.1f} s, {audio_s / ff_s:.1f}x realtime", flush=True)

    report = json.load(open(os.path.join(lathe_out, "report.json")))
    quality = {"lathe": {}, "ffmpeg": {}}
    for fmt in FORMATS:
        lathe_files = [os.path.join(lathe_out, t["outputs"][fmt]["path"]) for t in report["tracks"]]
        quality["lathe"][fmt] = summarize(measure(lathe, lathe_files, a.jobs), fmt)
        quality["ffmpeg"][fmt] = summarize(measure(lathe, [o for o in outs if f"{os.sep}{fmt}{os.sep}" in o], a.jobs), fmt)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    result = {
        "benchmark": "catalog end to end, formats streaming + cd (bench/catalog_bench.py)",
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()},
        "lathe_version": run([lathe, "--version"]).stdout.strip(),
        "git_commit": commit,
        "ffmpeg_version": run(["ffmpeg", "-version"]).stdout.splitlines()[0],
        "catalog": {"source": "warzone2100-music (Debian), decoded to 24-bit FLAC", "tracks": len(files),
                    "audio_hours": round(audio_s / 3600, 4)},
        "jobs": a.jobs,
        "lathe_cpu": {"wall_s": round(lathe_s, 2), "x_realtime": round(audio_s / lathe_s, 1)},
        "ffmpeg_chain": {"wall_s": round(ff_s, 2), "x_realtime": round(audio_s / ff_s, 1)},
        "speedup_lathe_over_ffmpeg": round(ff_s / lathe_s, 2),
        "output_quality": quality,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()

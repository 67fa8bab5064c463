"""`consentry` command line: parses arguments and calls the rooms; no logic lives here."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__, cli_fleet, cli_vault, cli_visits
from .config import Settings, load_settings
from .errors import ConfigError, ConsentryError

log = logging.getLogger(__name__)


def _emit(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
    else:
        for key, value in obj.items():
            print(f"{key}: {value}")


def _settings(args: argparse.Namespace) -> Settings:
    from .vision import image_io

    settings = load_settings(args.config)
    image_io.configure(settings.vision.max_image_pixels)
    if getattr(args, "detector", None):
        vision = settings.vision.model_copy(update={"detector": args.detector})
        settings = settings.model_copy(update={"vision": vision})
    return settings


def _pipeline(args: argparse.Namespace):
    from .vision.factory import pipeline_from_config

    return pipeline_from_config(_settings(args).vision)


def cmd_detect(args: argparse.Namespace) -> int:
    from .faces import detect_image

    with _pipeline(args) as pipeline:
        _emit(detect_image(pipeline, Path(args.image)), args.json)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .faces import compare_images

    settings = _settings(args)
    with _pipeline(args) as pipeline:
        result = compare_images(pipeline, Path(args.a), Path(args.b), settings.match.threshold)
    _emit(result.as_json(), args.json)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .app import run

    settings = _settings(args)
    data = settings.model_dump()
    overrides = (("profile", None, args.profile), ("mqtt", "host", args.mqtt_host),
                 ("mqtt", "port", args.mqtt_port), ("http", "port", args.http_port))
    for section, key, value in overrides:
        if value is None:
            continue
        if key is None:
            data[section] = value
        else:
            data[section][key] = value
    if args.http_port is not None:
        data["http"]["enabled"] = True
    run(Settings.model_validate(data), args.source, max_frames=args.frames, exit_at_end=args.exit_at_end,
        home=args.home)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.compare:
        from .evaluate.field import compare

        a, b = (json.loads(Path(f).read_text()) for f in args.compare)
        print(compare(a, b, (Path(args.compare[0]).stem, Path(args.compare[1]).stem)))
        return 0
    if args.field:
        return _bench_field(args)
    if args.images or args.video:
        return _bench_frames(args)
    from .evaluate.bench import bench
    from .vision.image_io import read_image

    if args.image:
        image = read_image(args.image)
    else:
        from skimage import data

        image = data.astronaut()
    result = bench(image, runs=args.runs, threads=args.threads)
    if args.gallery_size:
        from .evaluate.frames_bench import bench_search

        result["search"] = bench_search(_settings(args).vision.embedder, args.gallery_size)
    _emit(result, args.json)
    return 0


def _bench_field(args: argparse.Namespace) -> int:
    from .evaluate.field import plot_field, run_field

    result = run_field(_settings(args), args.home, args.minutes, args.source,
                       lambda line: print(line, file=sys.stderr))
    if args.plot:
        plot_field(result, Path(args.plot))
    _emit(result, args.json)
    return 0


def _bench_frames(args: argparse.Namespace) -> int:
    from .evaluate import frames_bench as fb
    from .vision.factory import pipeline_from_config

    settings = _settings(args)
    vision = settings.vision.model_copy(update={"threads": args.threads})
    reference = None
    if args.vs == "face_recognition":
        from .evaluate.reference import DlibReference

        reference = DlibReference()
    clock = fb.Clock()
    frames = (fb.image_frames(Path(args.images), clock, args.frames) if args.images
              else fb.video_frames(Path(args.video), clock, args.frames))
    with pipeline_from_config(vision, settings.quality) as pipeline:
        result = fb.bench_frames(pipeline, frames, clock, gallery_size=args.gallery_size or 1000,
                                 reference=reference)
        if args.video:
            from .evaluate.door_bench import door_timing

            result["door"] = door_timing(pipeline, Path(args.video), settings, args.frames)
    if args.video and args.pipelines:
        from .evaluate.door_bench import pipeline_comparison

        result["pipelines"] = pipeline_comparison(settings.model_copy(update={"vision": vision}), Path(args.video),
                                                  args.frames)
    if args.gallery_size:
        from .evaluate.run_memory import run_peak_rss

        result["search"] = fb.bench_search(pipeline.embedder.name, args.gallery_size)
        if args.images:  # the appliance itself: `consentry run` over the same frames with N enrolled
            result["run"] = run_peak_rss(Path(args.images), pipeline.embedder.name, args.gallery_size,
                                         frames=result["frames"], config=args.config)
    _emit(result, args.json)
    return 0


def cmd_detect_rate(args: argparse.Namespace) -> int:
    from .evaluate.detection import detection_rates

    with _pipeline(args) as pipeline:
        _emit(detection_rates(pipeline, Path(args.data)), args.json)
    return 0


def cmd_eval_liveness(args: argparse.Namespace) -> int:
    from .evaluate.liveness import eval_liveness
    from .vision.antispoof import AntiSpoof

    settings = _settings(args)
    curve: dict | None = {} if args.plot else None
    threshold = args.threshold or settings.liveness.threshold
    progress = lambda line: print(line, file=sys.stderr)  # noqa: E731
    if args.clips:
        result = _eval_liveness_clips(settings, Path(args.clips), threshold, progress, curve, args.bpcer_target)
    else:
        with _pipeline(args) as pipeline, AntiSpoof(pipeline.manifest) as spoof:
            result = eval_liveness(Path(args.dataset), pipeline, lambda img, box: spoof.score(img, box).p_real,
                                   threshold, progress=progress, curve=curve)
    if args.plot:
        from .evaluate.plot import plot_det

        plot_det(curve["bona"], curve["attacks"], Path(args.plot))
    _emit(result, args.json)
    return 0


def _eval_liveness_clips(settings: Settings, folder: Path, threshold: float, progress, curve,
                         bpcer_target: float | None = None) -> dict:
    from .decide.liveness import LivenessJudge, LivenessOptions
    from .evaluate.liveness import eval_liveness_clips
    from .vision.antispoof import AntiSpoof
    from .vision.factory import tracker_from_settings

    tracker = tracker_from_settings(settings)
    # a recorded clip cannot answer a challenge: a clip the passive check finds unclear fails
    options = LivenessOptions.from_config(settings.liveness, threshold=threshold, challenge_unclear=False,
                                          mode="passive")
    with tracker.pipeline, AntiSpoof(tracker.pipeline.manifest) as spoof:
        def score(frame, box):
            return spoof.score(frame, box).p_real

        result = eval_liveness_clips(folder, tracker, LivenessJudge(options, score), progress, curve,
                                     matched_after=settings.tracking.evidence_k)
        from .evaluate.liveness import bona_fide_visits

        result["bona_fide_visits"] = bona_fide_visits(folder, tracker.pipeline, LivenessJudge(options, score),
                                                      settings.quality.min_face_px)
        if bpcer_target is not None:
            from .evaluate.liveness import bona_fide_windows, threshold_for_bpcer

            windows = bona_fide_windows(folder, tracker, score, options.frames, settings.quality.min_face_px)
            result["calibration"] = threshold_for_bpcer(windows, bpcer_target)
        return result


def cmd_make_attacks(args: argparse.Namespace) -> int:
    from .evaluate.liveness import add_bona_fide_clips, make_attack_set

    make_attack_set(Path(args.source), Path(args.out), limit=args.limit, seed=args.seed, clips=args.clips,
                    replay=Path(args.replay) if args.replay else None)
    if args.bona_fide:
        add_bona_fide_clips(Path(args.out), Path(args.bona_fide))
    return 0


def _eval_clips(args: argparse.Namespace) -> int:
    from .evaluate.door_clips import eval_door_clips, table

    if not args.enrol:
        raise ConfigError("--clips needs --enrol (a labelled folder of stills or frames to enrol from)")
    settings = _settings(args)
    trace = None
    if args.trace:
        def trace(clip, row):
            print(f"{clip} {row.line()}", file=sys.stderr)
    result = eval_door_clips(Path(args.clips), Path(args.enrol), settings,
                             progress=lambda line: print(line, file=sys.stderr), trace=trace)
    print(json.dumps(result) if args.json else table(result))
    return 0


def _contenders(args: argparse.Namespace):
    from .evaluate.verify import contenders

    extra = [f"dlib_resnet_v1_{p}" for p in (args.also or "").split(",") if p]
    return contenders(_settings(args), extra, reference=getattr(args, "reference", None) == "dlib")


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate.report import print_eval
    from .evaluate.verify import DatasetOptions, eval_dataset, eval_pairs

    if args.clips:
        return _eval_clips(args)
    if args.approach:
        return cli_visits.eval_approach(args, _settings(args))
    curves: dict | None = {} if args.plot else None
    with _contenders(args) as contenders:
        if args.pairs:
            if not args.root:
                raise ConfigError("--pairs needs --root (the folder holding name/name_000n.jpg)")
            result = eval_pairs(Path(args.pairs), Path(args.root), contenders, curves=curves)
        else:
            opts = DatasetOptions(seed=args.seed, impostors=args.impostors, margin=_settings(args).match.margin)
            result = eval_dataset(Path(args.dataset), contenders, opts, curves=curves)
    if args.plot:
        from .evaluate.plot import plot_roc

        plot_roc({k: tuple(v) for k, v in curves.items()}, Path(args.plot))
    print_eval(result, args.json)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .evaluate.verify import calibrate

    settings = _settings(args)
    if args.visits:
        return cli_visits.calibrate_visits(args, settings, _contenders(args))
    if args.compare_scoring:
        from .evaluate.verify import compare_scoring, embedded_set

        with _contenders(args) as (ours, *_):
            ids, vecs = embedded_set(Path(args.dataset), ours)
        _emit({"dataset": Path(args.dataset).name, "templates_per_subject": args.templates,
               "per_subject_comparison": compare_scoring(ids, vecs, max(args.templates, 2))}, args.json)
        return 0
    with _contenders(args) as (ours, *_):
        result = calibrate(Path(args.dataset), ours, args.fmr, gallery_size=args.gallery_size,
                           templates=args.templates, scoring=settings.match.scoring)
    if args.write:
        from .config import save_settings

        match = settings.match.model_copy(update={
            "threshold": result["threshold"], "target_fmr": args.fmr, "calibrated_on": result["dataset"],
            "calibrated_at": result["date"], "impostor_comparisons": result["impostor_comparisons"],
            "calibrated_gallery_size": args.gallery_size, "calibrated_templates": args.templates})
        save_settings(settings.model_copy(update={"match": match}), Path(args.write))
        result["written_to"] = str(args.write)
    _emit(result, args.json)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .runtime import Manifest, verified_bytes

    manifest = Manifest.load()
    for entry in manifest.entries:
        verified_bytes(entry)
        if not args.json:
            print(f"{entry.name:28s} {entry.role:10s} {entry.precision:8s} sha256 ok  {entry.path.name}")
    if args.json:
        print(json.dumps({"models": [e.describe() for e in manifest.entries]}, indent=2))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import Doctor, report

    checks = Doctor(_settings(args), args.home, relay_test=args.relay_test).run()
    result = report(checks)
    if args.json:
        print(json.dumps(result))
    else:
        for c in checks:
            print(f"{c.status:4}  {c.name:12} {c.detail}" + (f"\n      {'':12} → {c.hint}" if c.hint else ""))
        print(f"{result['failures']} failure(s)")
    return result["failures"]


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(Path(args.file))
    print(f"{args.file}: valid (schema {settings.schema_version})")
    if args.explain:
        from .config import explain

        print(explain(settings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="consentry", description="Consent-first face recognition appliance")
    p.add_argument("--version", action="version", version=f"consentry {__version__}")
    p.add_argument("--config", type=Path, default=None, help="TOML config file (default: built-in defaults)")
    p.add_argument("--home", type=Path, default=None,
                   help="data directory (default: $CONSENTRY_HOME, else ~/.local/share/consentry)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.set_defaults(func=fn)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print JSON on stdout")
        return sp

    sp = add("doctor", cmd_doctor, "check camera, models, runtime, key, vault, broker, clock, disk, temperature, "
             "throttling and GPIO; exit code = failures")
    sp.add_argument("--relay-test", action="store_true",
                    help="also toggle the relay output and read it back (disconnect the relay first)")
    sp = add("detect", cmd_detect, "find faces in an image")
    sp.add_argument("image")
    sp.add_argument("--detector", choices=["blazeface_short_range", "blazeface_full_range"])
    sp = add("compare", cmd_compare, "are the largest faces of two images the same person?")
    sp.add_argument("a")
    sp.add_argument("b")
    sp = add("run", cmd_run, "the main job: watch the camera", json_flag=False)
    sp.add_argument("--source", help="picamera2 | opencv:N|URL | file:PATH | dir:PATH | demo "
                    "(default: config, else a camera, else demo)")
    sp.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    sp.add_argument("--exit-at-end", action="store_true", help="stop when a file or folder is exhausted")
    sp.add_argument("--profile", choices=["door", "checkout"])
    sp.add_argument("--mqtt-host")
    sp.add_argument("--mqtt-port", type=int)
    sp.add_argument("--http-port", type=int)
    sp = add("bench", cmd_bench, "time each stage: per model on one image, or per frame on images/video")
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--image", help="one image with a face, timed per model (default: skimage astronaut)")
    src.add_argument("--images", help="folder of images: time the whole path frame by frame")
    src.add_argument("--video", help="video file: time the whole path frame by frame")
    sp.add_argument("--frames", type=int, default=None, help="at most this many frames of --images/--video")
    sp.add_argument("--vs", choices=["face_recognition"], help="also time face_recognition on the same frames")
    sp.add_argument("--gallery-size", type=int, default=None, help="also time 1:N over N synthetic templates "
                    "and, with --images, measure the peak RSS of `consentry run` with N enrolled")
    src.add_argument("--field", action="store_true",
                     help="a sustained run on the live camera: per-minute fps, per-stage p50/p90, time to decision, "
                     "CPU temperature, throttling, RSS (no frame is kept)")
    src.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="two --field runs side by side")
    sp.add_argument("--minutes", type=float, default=10.0, help="length of a --field run (default 10)")
    sp.add_argument("--source", help="--field: frame source (default: the configured camera)")
    sp.add_argument("--plot", help="--field: write fps and CPU temperature per minute to this PNG")
    sp.add_argument("--pipelines", action="store_true", help="with --video: tracking.pipeline serial against "
                    "detect-ahead (throughput, and arrival-to-decision latency paced at the clip's frame rate)")
    sp.add_argument("--runs", type=int, default=100)
    sp.add_argument("--threads", type=int, default=1)
    sp = add("detect-rate", cmd_detect_rate, "detection rates on a labelled face data folder")
    sp.add_argument("--data", required=True)
    sp.add_argument("--detector", choices=["blazeface_short_range", "blazeface_full_range"])
    sp = add("eval", cmd_eval, "verification and open-set accuracy on a pairs file or a labelled folder")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", help="LFW-format pairs file")
    src.add_argument("--dataset", help="folder with labels.csv (file,identity)")
    src.add_argument("--clips", help="folder of video clips with labels.csv (file,identity): each replayed "
                     "through the door (recognizer, liveness, policy) on the video's clock")
    sp.add_argument("--enrol", help="with --clips: labelled folder (file,identity) of stills or frames to enrol")
    sp.add_argument("--trace", action="store_true", help="with --clips: print what the door sees, frame by frame "
                    "(gates, visit window distances for enrolled identities' clips, re-opens, liveness) to stderr")
    cli_visits.add_eval_arguments(src, sp)
    sp.add_argument("--root", help="image root for --pairs: ROOT/name/name_000n.jpg")
    sp.add_argument("--reference", choices=["dlib"], help="also run dlib's own pipeline on the same images")
    sp.add_argument("--also", help="more of our embedders to report, e.g. float16,float32")
    sp.add_argument("--plot", help="write the ROC curves to this PNG")
    sp.add_argument("--seed", type=int, default=0, help="seed of the impostor sample and enrolment split")
    sp.add_argument("--impostors", type=int, default=20000, help="impostor pairs sampled from --dataset")
    sp = add("calibrate", cmd_calibrate, "choose the threshold for a stated false-match rate")
    sp.add_argument("--dataset", required=True, help="folder with labels.csv (file,identity)")
    sp.add_argument("--fmr", type=float, default=1e-3, help="target false-match rate (default 1e-3)")
    sp.add_argument("--gallery-size", type=int, default=1,
                    help="1:N: enrolled subjects a stranger is compared with; the per-comparison target "
                    "becomes FMR / N (default 1: verification)")
    sp.add_argument("--templates", type=int, default=1,
                    help="templates per enrolled subject (the kiosk takes 5): a comparison is then a probe "
                    "against one subject's templates, as the gallery decides")
    cli_visits.add_calibrate_arguments(sp)
    sp.add_argument("--compare-scoring", action="store_true",
                    help="report threshold and FNMR per rate for each way of scoring a subject's --templates "
                    "(nearest, mean distance, centroid) instead of calibrating")
    sp.add_argument("--write", help="write the threshold, data set and date into this config file")
    sp.set_defaults(also=None)
    sp = add("eval-liveness", cmd_eval_liveness, "presentation-attack detection in ISO/IEC 30107-3 terms")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="folder of images with labels.csv (file,label[,species]; live|spoof)")
    src.add_argument("--clips", help="folder of video clips with labels.csv: one verdict per clip through the "
                     "appliance's tracker and liveness judge")
    sp.add_argument("--threshold", type=float, default=None, help="P(real) threshold (default: liveness config)")
    sp.add_argument("--bpcer-target", type=float, default=None,
                    help="with --clips: also choose the highest threshold whose BPCER per visit (every run of "
                    "liveness.frames frames of the live clips) is at most this")
    sp.add_argument("--plot", help="write the trade-off (1 - BPCER against APCER) to this PNG")
    sp = add("make-attacks", cmd_make_attacks, "generate print and screen attacks from labelled stills",
             json_flag=False)
    sp.add_argument("--from", dest="source", required=True, help="folder of stills with labels.csv (file,...)")
    sp.add_argument("--out", required=True, help="new folder for the images and labels.csv")
    sp.add_argument("--limit", type=int, default=50, help="stills to use")
    sp.add_argument("--clips", action="store_true", help="2 s video clips instead of single frames")
    sp.add_argument("--replay", help="with --clips: a bona fide video to replay on the phone screen")
    sp.add_argument("--bona-fide", help="with --clips: a labelled video folder whose clips are added as live "
                    "(by path, not copied)")
    sp.add_argument("--seed", type=int, default=0)
    add("models", cmd_models, "verify every model in the manifest; --json adds licence, source and training data")
    cli_vault.add_commands(sub, lambda fn: lambda args: fn(args, _settings(args)))
    cli_fleet.add_commands(sub, lambda fn: lambda args: fn(args, _settings(args)))
    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    chk = cfg_sub.add_parser("check", help="validate a config file")
    chk.add_argument("file")
    chk.add_argument("--explain", action="store_true", help="print every setting, its value and its meaning")
    chk.set_defaults(func=cmd_config_check)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConsentryError as exc:
        print(f"consentry: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

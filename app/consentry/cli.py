"""`consentry` command line: parses arguments and calls the rooms; no logic lives here."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .config import Settings, load_settings
from .errors import ConsentryError

log = logging.getLogger(__name__)


def _emit(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
    else:
        for key, value in obj.items():
            print(f"{key}: {value}")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
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

    run(_settings(args), args.source, max_frames=args.frames)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .evaluate.bench import bench
    from .vision.image_io import read_image

    if args.image:
        image = read_image(args.image)
    else:
        from skimage import data

        image = data.astronaut()
    _emit(bench(image, runs=args.runs, threads=args.threads), args.json)
    return 0


def cmd_detect_rate(args: argparse.Namespace) -> int:
    from .evaluate.detection import detection_rates

    with _pipeline(args) as pipeline:
        _emit(detection_rates(pipeline, Path(args.data)), args.json)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .runtime import Manifest, verified_bytes

    manifest = Manifest.load()
    for entry in manifest.entries:
        verified_bytes(entry)
        print(f"{entry.name:28s} {entry.role:10s} {entry.precision:8s} sha256 ok  {entry.path.name}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(Path(args.file))
    print(f"{args.file}: valid (schema {settings.schema_version})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="consentry", description="Consent-first face recognition appliance")
    p.add_argument("--version", action="version", version=f"consentry {__version__}")
    p.add_argument("--config", type=Path, default=None, help="TOML config file (default: built-in defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.set_defaults(func=fn)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print JSON on stdout")
        return sp

    sp = add("detect", cmd_detect, "find faces in an image")
    sp.add_argument("image")
    sp.add_argument("--detector", choices=["blazeface_short_range", "blazeface_full_range"])
    sp = add("compare", cmd_compare, "are the largest faces of two images the same person?")
    sp.add_argument("a")
    sp.add_argument("b")
    sp = add("run", cmd_run, "the main job: watch the camera", json_flag=False)
    sp.add_argument("--source", help="demo | file:PATH | dir:PATH | opencv:N|URL (default: camera, else demo)")
    sp.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    sp = add("bench", cmd_bench, "time each vision stage (median of N runs)")
    sp.add_argument("--image", help="image with a face (default: skimage astronaut)")
    sp.add_argument("--runs", type=int, default=100)
    sp.add_argument("--threads", type=int, default=1)
    sp = add("detect-rate", cmd_detect_rate, "detection rates on a labelled face data folder")
    sp.add_argument("--data", required=True)
    sp.add_argument("--detector", choices=["blazeface_short_range", "blazeface_full_range"])
    add("models", cmd_models, "verify every model in the manifest", json_flag=False)
    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    chk = cfg_sub.add_parser("check", help="validate a config file")
    chk.add_argument("file")
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

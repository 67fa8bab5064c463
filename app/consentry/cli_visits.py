"""`consentry calibrate --visits` / `--compare-rules` and `consentry eval --approach`: the
door's visit threshold on visits as video makes them (arguments and wiring only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ConfigError

N_SCALING = (10, 100, 1000)


def add_calibrate_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--visits", action="store_true",
                    help="calibrate match.visit_threshold instead: generated approach visits of every identity, "
                    "decided as the door decides them (every window over the whole visit budget at --fps, every "
                    "re-open on growth or re-check); the rate is per stranger visit")
    sp.add_argument("--visit-model", choices=["approach", "stills"], default="approach",
                    help="with --visits: generated approach clips (default), or visits of independent stills "
                    "(the model that under-counted correlated frames; for comparison)")
    sp.add_argument("--fps", type=float, default=15.0, help="with --visits: the camera's frame rate (default 15)")
    sp.add_argument("--rule", choices=["mean", "weighted", "unit", "sequential", "votes"], default="mean",
                    help="with --visits: the door's window mean, a quality-weighted mean, the unit-normalised "
                    "centroid, a sequential test, or (stills model) the old 3-of-5 vote; --write only for mean")
    sp.add_argument("--compare-rules", action="store_true",
                    help="with --visits: every rule on the same visits and galleries at the same --fmr")
    sp.add_argument("--scaling", action="store_true",
                    help="with --visits: threshold and FNMR for N = 10 and 100 measured, 1000 by union bound")
    sp.add_argument("--identities", type=int, default=None,
                    help="with --visits: subsample this many identities of --dataset (seeded)")
    sp.add_argument("--per-identity", type=int, default=1, help="with --visits: approach visits per identity")
    sp.add_argument("--repeats", type=int, default=8, help="with --visits: gallery rotations pooled (default 8)")
    sp.add_argument("--strangers", help="with --visits: more labelled still folders (comma-separated) whose "
                    "identities are only ever strangers")
    sp.add_argument("--clips", help="with --visits: a folder of video clips whose tracks are stranger visits")


def add_eval_arguments(src: argparse._MutuallyExclusiveGroup, sp: argparse.ArgumentParser) -> None:
    src.add_argument("--approach", help="the shared face data root: generated approach clips of each still set "
                     "against its real clips (frame-to-frame correlation, best window mean / best frame)")
    sp.add_argument("--sets", default="celeba,orl,yale,digiface,bbt,deepface,examples",
                    help="with --approach: still sets to generate from")
    sp.add_argument("--per-set", type=int, default=12, help="with --approach: identities per set")


def eval_approach(args: argparse.Namespace, settings) -> int:
    from .evaluate.approach import ApproachOptions
    from .evaluate.approach_check import check
    from .vision.factory import pipeline_from_config

    with pipeline_from_config(settings.vision, settings.quality) as pipeline:
        result = check(pipeline, Path(args.approach), [s for s in args.sets.split(",") if s], ApproachOptions(),
                       per_set=args.per_set, seed=args.seed, min_frames=settings.tracking.evidence_k,
                       frames=settings.tracking.evidence_n, progress=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(result))
    else:
        for side in ("generated", "real"):
            for name in ("correlation", "mean_gain"):
                f = result[side][name]
                print(f"{side:9} {name:11} median {f['median']:.3f}  range {f['min']:.3f}-{f['max']:.3f} "
                      f"({f['runs']} runs of 3 s at 15 fps)")
        print(f"verdict: {result['verdict']}")
    return 0


def _schedule(settings, fps: float):
    from .evaluate.video_visits import Schedule

    t = settings.tracking
    return Schedule(fps=fps, budget_s=t.visit_seconds, min_frames=t.evidence_k, frames=t.evidence_n,
                    grow=t.visit_regrow, recheck_frames=t.recheck_frames, frame_threshold=settings.match.threshold)


def calibrate_visits(args: argparse.Namespace, settings, contenders) -> int:
    """The approach model; the stills model is ``calibrate_still_visits``."""
    from dataclasses import replace

    from .evaluate import video_visits as vv
    from .evaluate.approach import ApproachOptions
    from .vision.factory import pipeline_from_config

    if settings.match.scoring != "centroid":
        raise ConfigError("calibrate --visits scores subjects by the mean of their templates (match.scoring centroid)")
    if args.visit_model == "stills":
        return calibrate_still_visits(args, settings, contenders)
    if args.write and (args.rule not in ("mean", "unit") or args.compare_rules):
        raise ConfigError("the door scores visits by the mean or unit rule; --write takes one of them")
    if args.rule == "votes":
        raise ConfigError("--rule votes is only scored on the stills model (--visit-model stills)")
    schedule = _schedule(settings, args.fps)
    plan = vv.Plan(gallery_size=args.gallery_size, templates=args.templates, repeats=args.repeats)
    strangers = [Path(f) for f in (args.strangers or "").split(",") if f]
    with pipeline_from_config(settings.vision, settings.quality) as pipeline:
        refs, visitors = vv.gather(pipeline, Path(args.dataset), strangers, Path(args.clips) if args.clips else None,
                                   ApproachOptions(), schedule, plan, args.per_identity, args.identities,
                                   progress=lambda m: print(m, file=sys.stderr))
    if len(refs) <= plan.gallery_size:
        raise ConfigError(f"{len(refs)} identities of {args.dataset} could be enrolled; a gallery of "
                          f"{plan.gallery_size} needs more (use --gallery-size)")
    head = {"dataset": Path(args.dataset).name, "visit_model": "approach"}
    if args.compare_rules:
        rules = {}
        for name, rule in vv.RULES.items():
            scored = vv.score_visits(refs, visitors, rule(), schedule, plan)
            rules[name] = vv.summarise(scored, args.fmr, name, schedule, plan)
        _print({**head, "stated_rate": args.fmr, "rules": rules}, args.json)
        return 0
    scored = vv.score_visits(refs, visitors, vv.RULES[args.rule](), schedule, plan)
    result = {**head, **vv.summarise(scored, args.fmr, args.rule, schedule, plan)}
    if args.scaling:
        by_n = {plan.gallery_size: result}
        for n in (x for x in N_SCALING if x < len(refs) and x != plan.gallery_size):
            other = replace(plan, gallery_size=n)
            by_n[n] = vv.summarise(vv.score_visits(refs, visitors, vv.RULES[args.rule](), schedule, other),
                                   args.fmr, args.rule, schedule, other)
        result["by_gallery_size"] = {
            str(n): {k: by_n[n][k] for k in ("threshold", "fnmr_per_visit", "supported")} for n in sorted(by_n)}
        result["by_gallery_size"][str(N_SCALING[-1])] = vv.union_bound(scored, args.fmr, plan.gallery_size,
                                                                       N_SCALING[-1])
    if args.write:
        from .config import save_settings

        match = settings.match.model_copy(update={"visit_threshold": result["threshold"], "visit_scoring": args.rule})
        save_settings(settings.model_copy(update={"match": match}), Path(args.write))
        result["written_to"] = str(args.write)
    _print(result, args.json)
    return 0


def _print(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
    else:
        for key, value in obj.items():
            print(f"{key}: {value}")


def calibrate_still_visits(args: argparse.Namespace, settings, contenders) -> int:
    """The previous model: visits of independent stills (and runs of --clips frames)."""
    from .evaluate.verify import embedded_set
    from .evaluate.visits import VisitPlan, calibrate_visits, clip_visits, embed_clips, stranger_still_visits

    if args.write and args.rule != "mean":
        raise ConfigError("only the mean rule's threshold is the door's visit_threshold; drop --write or --rule")
    if args.rule not in ("mean", "votes"):
        raise ConfigError("the stills model scores --rule mean or votes")
    cfg = settings.tracking
    plan = VisitPlan(min_frames=cfg.evidence_k, frames=cfg.evidence_n, clip_frames=round(cfg.visit_seconds * 15),
                     gallery_size=args.gallery_size, templates=args.templates, rule=args.rule)
    with contenders as (ours, *_):
        ids, vecs = embedded_set(Path(args.dataset), ours)
        extra = []
        for folder in filter(None, (args.strangers or "").split(",")):
            extra += stranger_still_visits(*embedded_set(Path(folder), ours), plan)
        if args.clips:
            extra += clip_visits(embed_clips(Path(args.clips), ours.embed), plan.clip_frames)
    result = {"dataset": Path(args.dataset).name, "visit_model": "stills", "embedder": ours.model,
              **calibrate_visits(ids, vecs, args.fmr, plan, extra)}
    if args.write:
        from .config import save_settings

        match = settings.match.model_copy(update={"visit_threshold": result["threshold"], "visit_scoring": "mean"})
        save_settings(settings.model_copy(update={"match": match}), Path(args.write))
        result["written_to"] = str(args.write)
    _print(result, args.json)
    return 0

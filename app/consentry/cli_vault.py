"""Vault commands of the `consentry` CLI: keys, enrol, subjects, identify, revoke, purge,
audit, retention schedule. They parse arguments and call the same functions the kiosk calls."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path

from . import cli_panel
from .config import Settings
from .errors import ConfigError, TemplateIntegrityError


def _vault(args: argparse.Namespace, settings: Settings, *, create: bool = False):
    from .vault import open_vault

    return open_vault(settings.vault, args.home, create=create)


def _print(obj: object, as_json: bool, text: Callable[[], str]) -> None:
    print(json.dumps(obj) if as_json else text())


def cmd_keys_init(args: argparse.Namespace, settings: Settings) -> int:
    from .vault import key_file_path
    from .vault.keys import KeyFile

    path = key_file_path(settings.vault, args.home)
    if settings.vault.key_provider == "file" and not (args.if_missing and path.exists()):
        KeyFile(path).create()
        print(f"created key file {path} (mode 600). Back it up somewhere safe: without it the templates are lost.")
    with _vault(args, settings, create=True) as vault:  # the store too: only this and enrolment make one
        print(f"template store {vault.path} is ready")
    return 0


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from .vault import rotate_keys

    with _vault(args, settings) as vault:
        count = rotate_keys(vault, renew_transform=args.renew_transform)
    renewed = " and renewed the template transform" if args.renew_transform else ""
    print(f"re-wrapped {count} subject key(s){renewed}")
    return 0


def _consent(args: argparse.Namespace, settings: Settings):
    import datetime as dt

    from .vault import ConsentRecord, ConsentText

    text = ConsentText.load(Path(args.consent))
    if not args.yes:
        print(text.text, end="\n\n")
        answer = input(f"Does the person consent to '{text.consent_id}' version {text.version}? Type yes: ")
        if answer.strip().lower() != "yes":
            return None
    purposes = tuple(p for p in (args.purpose or "").split(",") if p) or None
    return ConsentRecord.from_text(
        text, given_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(), method="cli",
        witnessed_by=args.witness or getpass.getuser(),
        retention_days=args.retention_days or settings.vault.retention_days,
        age_statement="guardian" if args.guardian else "adult", purposes=purposes,
        identify_opt_in=args.identify_opt_in)


PHOTOS_ONLY = ("enrolled from photos only: a door sees its own camera's video, and photos often match it "
               "less well; for templates taken the way the door sees the person, enrol at the kiosk (the web "
               "page's enrolment captures from the camera) or from a clip with --video")


def cmd_enroll(args: argparse.Namespace, settings: Settings) -> int:
    from .enrolment import enrolment_templates, video_templates
    from .vision.factory import pipeline_from_config

    if not args.images and not args.video:
        raise ConfigError("give images, or a clip with --video")
    consent = _consent(args, settings)
    if consent is None:
        print("consent declined: nothing was captured or stored")
        return 1
    consent.validate()
    card = cli_panel.card_from_args(args.card, args.facility, settings) if args.card is not None else None
    with _vault(args, settings, create=True) as vault, \
            pipeline_from_config(settings.vision, settings.quality) as pipeline:
        vectors, rejected = enrolment_templates(pipeline, [Path(p) for p in args.images])
        clip = None
        if args.video:
            clip = video_templates(pipeline, Path(args.video), settings.http.capture_templates)
            vectors += clip.vectors
        for r in rejected:
            print(f"rejected {r.image}: {r.reason}", file=sys.stderr)
        if not vectors:
            raise ConfigError("no image had exactly one good face; nothing was stored")
        try:
            subject = vault.enroll(args.name, consent, vectors, pipeline.embedder.name, card=card)
        finally:
            for v in vectors:
                v.fill(0)
    out = {"subject": subject, "templates": len(vectors), "rejected": [r.__dict__ for r in rejected],
           "source": "video" if clip and not args.images else "photos+video" if clip else "photos"}
    if clip is not None:
        out["video"] = {"frames": clip.frames, "usable": clip.usable, "templates": len(clip.vectors)}
    else:
        out["advice"] = PHOTOS_ONLY
        print(PHOTOS_ONLY, file=sys.stderr)
    _print(out, args.json, lambda: f"enrolled {subject} with {len(vectors)} template(s)"
           + (f" ({len(clip.vectors)} from {clip.usable} usable of {clip.frames} frames)" if clip else ""))
    return 0


def cmd_subjects_list(args: argparse.Namespace, settings: Settings) -> int:
    with _vault(args, settings) as vault:
        subjects = vault.subjects(show_names=args.show_names, reason=args.reason or "")
    rows = [s.as_json() for s in subjects]
    _print(rows, args.json, lambda: "\n".join(
        f"{r['id']}  {','.join(r['purposes']):14s} created {r['created'][:10]}  expires {r['expires'][:10]}"
        + (f"  {r['name']}" if "name" in r else "") for r in rows) or "no subjects")
    return 0


def cmd_identify(args: argparse.Namespace, settings: Settings) -> int:
    from .enrolment import identify_image
    from .match import gallery_from_vault, policy_from_config
    from .vision.factory import pipeline_from_config

    with _vault(args, settings) as vault, pipeline_from_config(settings.vision, settings.quality) as pipeline:
        loaded = gallery_from_vault(vault, pipeline.embedder.name, policy_from_config(settings.match))
        if loaded.damaged:  # "unknown" from a gallery missing a tampered row would be a silent lie
            loaded.gallery.close()
            raise TemplateIntegrityError(
                f"integrity error: {len(loaded.damaged)} template(s) in {vault.path} fail authentication "
                "(tampered, or moved to another subject's row); nothing was identified. Run `consentry doctor`, "
                "then revoke the damaged subjects or restore the store from a backup")
        try:
            faces = identify_image(pipeline, loaded.gallery, Path(args.image), debug=args.debug)
        finally:
            loaded.gallery.close()
        for face in faces:
            if face["subject"]:
                vault.touch(face["subject"])
                vault.record_access(face["subject"], "match")
        unknown = sum(1 for f in faces if f["subject"] is None)
        if unknown:
            vault.record_access(None, "unknown", count=unknown)
    _print({"image": args.image, "faces": faces}, args.json, lambda: "\n".join(
        f"face {i + 1}: {f['decision']}" + (f" {f['subject']} (distance {f['distance']})" if f["subject"] else "")
        for i, f in enumerate(faces)) or "no face")
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    with _vault(args, settings) as vault:
        receipt = vault.revoke(args.subject, reason=args.reason)
    doc = receipt.as_json()
    _print(doc, args.json, lambda: "deletion receipt\n" + "\n".join(f"  {k}: {v}" for k, v in doc.items()))
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    with _vault(args, settings) as vault:
        result = vault.purge(dry_run=args.dry_run)
    doc = {"dry_run": args.dry_run,
           "subjects": [r if isinstance(r, str) else r.as_json() for r in result]}
    _print(doc, args.json, lambda: f"{'would remove' if args.dry_run else 'removed'} {len(result)} expired subject(s)")
    return 0


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    with _vault(args, settings) as vault:
        report = vault.verify_audit()
    _print(report.as_json(), args.json, lambda: (f"audit log intact: {report.entries} entries" if report.ok else
                                                 "AUDIT LOG DAMAGED:\n  " + "\n  ".join(report.problems)))
    return 0 if report.ok else 1


def cmd_audit_verify_receipt(args: argparse.Namespace, settings: Settings) -> int:
    from .vault.disclosure import ReceiptInvalid, verify_receipt

    with _vault(args, settings) as vault:
        try:
            doc = verify_receipt(vault, Path(args.file).read_bytes())
        except ReceiptInvalid as exc:
            problem = str(exc)
            _print({"ok": False, "problem": problem}, args.json, lambda: f"RECEIPT INVALID: {problem}")
            return 1
    _print({"ok": True, "subject": doc.get("subject"), "issued": doc.get("issued")}, args.json,
           lambda: f"receipt intact: issued by this device at {doc.get('issued')} for {doc.get('subject')}")
    return 0


def cmd_subjects_show(args: argparse.Namespace, settings: Settings) -> int:
    """One subject's consent record (text, language, hash), dates and template count."""
    from .vault.disclosure import subject_record

    with _vault(args, settings) as vault:
        record = subject_record(vault, args.subject).as_json()
    c = record["consent"]
    _print(record, args.json, lambda: "\n".join([
        f"subject    {record['subject']}", f"consent    {c['id']} version {c['version']}, language {c['language']}",
        f"sha256     {c['sha256']}", f"given      {c['given_at']} ({c['method']}, witnessed by {c['witnessed_by']})",
        f"purposes   {', '.join(c['purposes'])}; {c['age_statement']}; retention {c['retention_days']} days",
        f"templates  {record['templates']} (and {record['door_templates']} learned at this door)",
        f"enrolled   {record['created']}",
        f"last seen  {record['last_seen'] or '-'}", f"expires    {record['expires']}"]))
    return 0


def cmd_admin_secret(args: argparse.Namespace, settings: Settings) -> int:
    """Set the staff password (`admin`) or the enrolment PIN (`pin`), hashed with Argon2id."""
    from .web.auth import hash_secret

    kind = "pin" if args.admin_command == "set-pin" else "admin"
    label = "enrolment PIN" if kind == "pin" else "staff password"
    if args.stdin:
        secret = sys.stdin.readline().rstrip("\n")
    else:
        secret = getpass.getpass(f"New {label}: ")
        if getpass.getpass(f"Repeat the {label}: ") != secret:
            raise ConfigError(f"the two {label}s differ; nothing was changed")
    minimum = 4 if kind == "pin" else 10
    if len(secret) < minimum:
        raise ConfigError(f"the {label} must have at least {minimum} characters")
    with _vault(args, settings) as vault:
        vault.set_credential(kind, hash_secret(secret))
    print(f"{label} set")
    return 0


def cmd_retention_schedule(args: argparse.Namespace, settings: Settings) -> int:
    from .vault.schedule import retention_schedule

    print(retention_schedule(settings))
    return 0


def add_commands(sub: argparse._SubParsersAction, wrap: Callable) -> None:
    """Register the vault commands; ``wrap(fn)`` adapts ``fn(args, settings)`` to the CLI."""
    def add(parent, name: str, fn, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help_text)
        sp.set_defaults(func=wrap(fn))
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print JSON on stdout")
        return sp

    keys = sub.add_parser("keys", help="master key management").add_subparsers(dest="keys_command", required=True)
    sp = add(keys, "init", cmd_keys_init, "create the master key file (owner-only)", json_flag=False)
    sp.add_argument("--if-missing", action="store_true", help="do nothing when the key file exists")
    sp = add(keys, "rotate", cmd_keys_rotate, "new master key; re-wrap every subject key", json_flag=False)
    sp.add_argument("--renew-transform", action="store_true", help="also renew the secret template transform")

    sp = add(sub, "enroll", cmd_enroll, "enrol a consenting person from images (no image is stored)")
    sp.add_argument("--name", required=True, help="display name (stored encrypted)")
    sp.add_argument("--consent", required=True, help="consent text file the person agreed to")
    sp.add_argument("--purpose", help="door and/or checkout, comma separated (default: the consent text's)")
    sp.add_argument("--retention-days", type=int, help="retention of this consent (default from config)")
    sp.add_argument("--witness", help="who witnessed the consent (default: the OS user)")
    sp.add_argument("--guardian", action="store_true", help="a guardian consented for a minor")
    sp.add_argument("--identify-opt-in", action="store_true", help="may be identified 1:N at a checkout")
    sp.add_argument("--yes", action="store_true", help="consent already confirmed; do not ask")
    cli_panel.add_card_arguments(sp)
    sp.add_argument("--video", help="a clip of the person alone: templates from frames spread over it (one face, "
                    "quality gates); nearer to what a door sees than photos")
    sp.add_argument("images", nargs="*")

    subjects = sub.add_parser("subjects", help="enrolled subjects").add_subparsers(dest="subjects_command",
                                                                                   required=True)
    sp = add(subjects, "list", cmd_subjects_list, "list subjects (pseudonymous ids)")
    sp.add_argument("--show-names", action="store_true", help="decrypt display names (audited)")
    sp.add_argument("--reason", help="why names are shown (recorded in the audit log)")
    sp = add(subjects, "show", cmd_subjects_show, "one subject's consent record (text, language, hash)")
    sp.add_argument("subject")
    cli_panel.add_commands(sub, subjects, wrap)

    sp = add(sub, "identify", cmd_identify, "who is in this image? (match or unknown per face)")
    sp.add_argument("--debug", action="store_true", help="also show an unknown face's box and quality reasons")
    sp.add_argument("image")
    sp = add(sub, "revoke", cmd_revoke, "withdraw a subject's consent and destroy their data")
    sp.add_argument("subject")
    sp.add_argument("--reason", default="consent withdrawn")
    sp = add(sub, "purge", cmd_purge, "remove every expired subject")
    sp.add_argument("--dry-run", action="store_true")
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    add(audit, "verify", cmd_audit_verify, "check the hash chain")
    sp = add(audit, "verify-receipt", cmd_audit_verify_receipt, "check a data receipt this device issued")
    sp.add_argument("file")
    admin = sub.add_parser("admin", help="web page staff credentials").add_subparsers(dest="admin_command",
                                                                                      required=True)
    for name, what in (("set-password", "the staff password for /admin"), ("set-pin", "the enrolment PIN")):
        sp = add(admin, name, cmd_admin_secret, f"set {what} (Argon2id)", json_flag=False)
        sp.add_argument("--stdin", action="store_true", help="read it from standard input")
    add(sub, "retention-schedule", cmd_retention_schedule, "print the retention schedule (Markdown)", json_flag=False)

"""Site commands of the `consentry` CLI: `fleet init|join|approve|reject|remove|doors|serve|simulate`."""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable

from .config import Settings
from .errors import ConsentryError


def _vault(args: argparse.Namespace, settings: Settings):
    from .vault import open_vault

    return open_vault(settings.vault, args.home)


def _model(settings: Settings) -> str:
    from .vision.embedder import template_model

    return template_model(settings.vision.embedder, settings.vision.flip)


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from .fleet.join import init_site
    from .fleet.records import fingerprint

    with _vault(args, settings) as vault:
        site = init_site(vault, args.label)
    print(f"site {site.site} ({site.label}) created on this kiosk; signing key {fingerprint(site.public)}")
    print("run the appliance here (`consentry run`), then on each door "
          f"`consentry fleet join --site-key {fingerprint(site.public)}` (the staff page shows it too)")
    return 0


def cmd_join(args: argparse.Namespace, settings: Settings) -> int:
    from .fleet.join import join

    with _vault(args, settings) as vault:
        join(vault, settings.mqtt, site=args.site, site_key=args.site_key,
             label=args.label or settings.mqtt.device_id, timeout=args.timeout)
    return 0


def _with_service(args: argparse.Namespace, settings: Settings, body: Callable) -> int:
    from .fleet.service import FleetService

    # `serve` is the device's own link; every other command runs beside it with an id of its own
    tag = "" if getattr(args, "fleet_command", "") == "serve" else f"-cli-{secrets.token_hex(4)}"
    with _vault(args, settings) as vault:
        service = FleetService(vault, settings.mqtt, settings.fleet, model=_model(settings), client_tag=tag).start()
        try:
            if not service.link.wait_connected(10):
                raise ConsentryError(f"no MQTT broker at {settings.mqtt.host}:{settings.mqtt.port}")
            return body(service)
        finally:
            service.close()


def cmd_approve(args: argparse.Namespace, settings: Settings) -> int:
    def approve(service) -> int:
        if service.site is None:
            raise ConsentryError("only the site's enrolment kiosk approves doors")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and args.door not in {d.door for d in service.site.doors()}:
            time.sleep(0.1)  # the retained join request arrives just after connecting
        service.site.approve(args.door, args.code)
        time.sleep(0.5)
        print(f"door {args.door} approved: it receives the site's keys and subjects")
        return 0

    return _with_service(args, settings, approve)


def _kiosk_running(settings: Settings, site: str) -> bool:
    """Is the site's kiosk appliance issuing heads right now (a retained head younger than two
    heartbeats)? A removal must then run inside it (the staff page), which moves its vault's
    transform and galleries as well."""
    from .bus.site_link import SiteLink, site_prefix
    from .fleet.records import MAX_SMALL_BYTES, RecordRefused, flat

    heads: list[float] = []

    def take(topic: str, raw: bytes) -> None:
        with contextlib.suppress(RecordRefused, TypeError, ValueError):  # not a head: not the kiosk's
            heads.append(float(flat(raw, "head", MAX_SMALL_BYTES).get("issued") or 0))

    link = SiteLink(settings.mqtt, f"consentry-cli-{secrets.token_hex(4)}", [f"{site_prefix(site)}/head"], take)
    link.start()
    try:
        if not link.wait_connected(10):
            raise ConsentryError(f"no MQTT broker at {settings.mqtt.host}:{settings.mqtt.port}")
        time.sleep(0.5)
    finally:
        link.close()
    return bool(heads) and time.time() - max(heads) < 2 * settings.fleet.heartbeat_seconds + 1.0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from .fleet import identity as ids

    with _vault(args, settings) as vault:
        found = ids.load(vault.secret(ids.SECRET), vault.transform)
    if not isinstance(found, ids.SiteIdentity):
        raise ConsentryError("only the site's enrolment kiosk removes doors")
    if _kiosk_running(settings, found.site):
        raise ConsentryError("the kiosk appliance is running: remove the door on its staff page (which moves "
                             "its gallery too), or stop it and run this again")

    def remove(service) -> int:
        count = service.remove_door(args.door)
        time.sleep(0.5)
        print(f"door {args.door} removed: the site key rotated, {count} subject(s) re-sealed for the remaining doors")
        return 0

    return _with_service(args, settings, remove)


def cmd_reject(args: argparse.Namespace, settings: Settings) -> int:
    def reject(service) -> int:
        if service.site is None:
            raise ConsentryError("only the site's enrolment kiosk rejects join requests")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and args.door not in {d.door for d in service.site.doors()}:
            time.sleep(0.1)
        service.site.reject(args.door)
        print(f"join request of {args.door} rejected")
        return 0

    return _with_service(args, settings, reject)


def cmd_doors(args: argparse.Namespace, settings: Settings) -> int:
    from .fleet.records import fingerprint

    def listing(service) -> int:
        if service.site is None:
            print(service.status())
            return 0
        time.sleep(args.wait)  # retained door reports arrive after connecting
        doors = [{"door": d.door, "label": d.label, "status": d.status, "code": d.code if d.status == "pending"
                  else None, "behind": d.behind, "reporting": d.reporting,
                  "granting": d.report.granting if d.report else None,
                  "reason": d.report.reason if d.report else None, "reported_at": d.report.at if d.report else None}
                 for d in service.site.doors()]
        head = service.site.head()
        key = fingerprint(service.site.identity.public)
        if args.json:
            print(json.dumps({"site": service.name, "site_key": key, "seq": head.seq, "subjects": head.count,
                              "doors": doors}))
        else:
            print(f"site {service.name}: record {head.seq}, {head.count} subject(s); signing key {key}")
            for d in doors:
                state = f"code {d['code']}" if d["status"] == "pending" else "" if d["status"] == "removed" else \
                    "NOT REPORTING" if not d["reporting"] else ("BEHIND" if d["behind"] else "in step")
                print(f"  {d['door']} {d['label']:<16} {d['status']:<9} {state}")
        return 0

    return _with_service(args, settings, listing)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """The site service alone (no camera): a kiosk publishing, or a door keeping its copy."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def serve(service) -> int:
        print(service.status(), flush=True)
        while not stop.wait(1.0):
            pass
        return 0

    return _with_service(args, settings, serve)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from .fleet.simulate import simulate

    if not 0 <= args.remove < args.doors:
        raise ConsentryError("--remove must leave at least one door")
    result = simulate(doors=args.doors, subjects=args.subjects, samples=args.samples, remove=args.remove,
                      out=lambda text: print(text, file=sys.stderr, flush=True))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def add_commands(sub: argparse._SubParsersAction, wrap: Callable) -> None:
    fleet = sub.add_parser("fleet", help="a site of many doors sharing one enrolment over MQTT (docs/fleet.md)")
    cmds = fleet.add_subparsers(dest="fleet_command", required=True)

    def add(name: str, fn, help_text: str) -> argparse.ArgumentParser:
        sp = cmds.add_parser(name, help=help_text)
        sp.set_defaults(func=wrap(fn))
        return sp

    sp = add("init", cmd_init, "make this enrolment kiosk the site's identity (signing key, data key)")
    sp.add_argument("--label", default="site", help="a name for the site, shown to doors joining it")
    sp = add("join", cmd_join, "ask to join the site on the configured broker; waits for staff approval")
    sp.add_argument("--site-key", required=True, metavar="FINGERPRINT",
                    help="the site signing key's fingerprint, read on the kiosk (staff page or `fleet init`)")
    sp.add_argument("--site", help="the site id (needed when more than one site announces itself)")
    sp.add_argument("--label", help="a name for this door on the staff page (default: mqtt.device_id)")
    sp.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for approval")
    sp = add("approve", cmd_approve, "approve a door by the code it shows (the staff page does the same)")
    sp.add_argument("door")
    sp.add_argument("code")
    sp = add("reject", cmd_reject, "refuse a pending join request")
    sp.add_argument("door")
    sp = add("remove", cmd_remove, "remove a door: rotate the site key and transform, re-seal every record for the "
             "remaining doors (stop the kiosk appliance first, or use its staff page)")
    sp.add_argument("door")
    sp = add("doors", cmd_doors, "the site's doors, and which are behind")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--wait", type=float, default=1.0, help="seconds to collect door reports")
    add("serve", cmd_serve, "run this device's part in its site without the camera")
    sp = add("simulate", cmd_simulate, "N doors x M subjects against a mosquitto on a loopback port")
    sp.add_argument("--doors", type=int, default=50)
    sp.add_argument("--subjects", type=int, default=10000)
    sp.add_argument("--samples", type=int, default=30, help="enrolments and revocations timed to every door")
    sp.add_argument("--remove", type=int, default=0, help="then remove this many doors and time the key rotation")
    sp.add_argument("--json", action="store_true")

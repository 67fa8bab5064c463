"""The public privacy page and the model notice on the consent screen: what this device keeps,
what its recognition model was trained on (from models/manifest.json, so the page and
`consentry models --json` cannot disagree), and that no face seen here trains anything."""

from __future__ import annotations

import logging
from html import escape

from ..errors import ConsentryError
from ..runtime import Manifest

log = logging.getLogger(__name__)

# Plain words for the one model that tells people apart; the figures are checked against
# dlib's own model notes (github.com/davisking/dlib-models) and kept in the manifest.
MODEL_NOTICE = ("How this device recognises faces: it uses dlib's face recognition model, which its author "
                "trained on about 3 million photos of 7,485 people collected from the web. Those people were "
                "not asked for their consent. No face seen by this device trains or changes that model, or any "
                "other: they stay exactly as shipped.")

KEPT = (
    ("Faces of people who did not enrol", "Nothing. A face that matches nobody is thrown away at once; the "
     "device keeps only an hourly count of how many unknown faces it saw."),
    ("People who enrolled and agreed", "A template (128 numbers computed from the face), your name and your "
     "consent record, all encrypted on this device. No photo or video: images are used for a moment and "
     "erased."),
    ("How long", "Until you withdraw, until your consent expires ({days} days at most by default), or after a "
     "long time without being seen here, whichever comes first."),
    ("How to withdraw", "Use Forget me with your revocation code or your face, or ask staff. Your template, "
     "name and key are deleted at once and cannot be recovered."),
    ("Where it goes", "Nowhere outside this site: nothing is sent to the cloud. Other doors of the same site, "
     "if there are any, receive your template encrypted, never your name."),
)

ROLES = {"detector": "Finding faces", "landmarks": "Placing points on a face", "landmarks5": "Aligning a face",
         "embedder": "Recognising: telling people apart", "antispoof": "Telling a live face from a photo or screen"}


def model_entries(manifest: Manifest | None = None) -> list:
    """The manifest's entries, one per distinct network family, or [] if it cannot be read."""
    try:
        entries = (manifest or Manifest.load()).entries
    except ConsentryError as exc:
        log.warning("privacy page without the model list: %s", exc)
        return []
    seen, unique = set(), []
    for entry in entries:
        summary = entry.training_data.get("summary", "")
        if summary not in seen:
            seen.add(summary)
            unique.append(entry)
    return unique


def privacy_body(retention_days: int, entries: list) -> str:
    kept = "".join(f"<tr><th scope='row'>{escape(k)}</th><td>{escape(v.format(days=retention_days))}</td></tr>"
                   for k, v in KEPT)
    rows = "".join(
        f"<tr><th scope='row'>{escape(ROLES.get(e.role, e.role))}</th>"
        f"<td>{escape(e.training_data.get('summary', ''))}</td>"
        f"<td>{escape(e.training_data.get('consent', ''))}</td><td>{escape(e.training_data.get('reference', ''))}"
        "</td></tr>" for e in entries)
    models = (f"<table id='models'><caption>Every model this device runs</caption><tr><th scope='col'>What it does</th>"
              f"<th scope='col'>Trained on</th><th scope='col'>Consent of the people pictured</th>"
              f"<th scope='col'>Source of these figures</th></tr>{rows}</table>") if rows else ""
    return ("<h1>Privacy</h1>"
            "<h2>What this device keeps</h2>"
            f"<table id='kept'>{kept}</table>"
            "<h2>What the recognition model was trained on</h2>"
            f"<p id='model-notice'>{escape(MODEL_NOTICE)}</p>"
            "<p>We did not choose that data and cannot change it. We tell you so that you can decide; if you do "
            "not enrol, your face is never stored.</p>"
            "<h2>No face seen here trains anything</h2>"
            "<p id='no-training'>The models are fixed files, checked against their fingerprints every time the "
            "device starts. Nothing this camera sees is used to train, tune or improve them, here or elsewhere.</p>"
            f"{models}"
            "<p><a href='/forget'>Forget me</a> · <a href='/enroll'>Enrol</a> · <a href='/'>Home</a></p>")

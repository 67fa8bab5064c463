"""The public privacy page and the model notice on the consent screen: what this device keeps,
what its recognition model was trained on (from models/manifest.json, so the page and
`consentry models --json` cannot disagree), and that no face seen here trains anything."""

from __future__ import annotations

import logging
from html import escape

from ..errors import ConsentryError
from ..runtime import Manifest
from .i18n import N_, _

log = logging.getLogger(__name__)

# Plain words for the one model that tells people apart; the figures are checked against
# dlib's own model notes (github.com/davisking/dlib-models) and kept in the manifest.
MODEL_NOTICE = N_("How this device recognises faces: it uses dlib's face recognition model, which its author "
                "trained on about 3 million photos of 7,485 people collected from the web. Those people were "
                "not asked for their consent. No face seen by this device trains or changes that model, or any "
                "other: they stay exactly as shipped.")

KEPT = (
    (N_("Faces of people who did not enrol"), N_("Nothing. A face that matches nobody is thrown away at once; the "
     "device keeps only an hourly count of how many unknown faces it saw.")),
    (N_("People who enrolled and agreed"), N_("A template (128 numbers computed from the face), your name and your "
     "consent record, all encrypted on this device. No photo or video: images are used for a moment and "
     "erased.")),
    (N_("How long"), N_("Until you withdraw, until your consent expires ({days} days at most by default), or after a "
     "long time without being seen here, whichever comes first.")),
    (N_("How to withdraw"), N_("Use Forget me with your revocation code or your face, or ask staff. Your template, "
     "name and key are deleted at once and cannot be recovered.")),
    (N_("Where it goes"), N_("Nowhere outside this site: nothing is sent to the cloud. Other doors of the same site, "
     "if there are any, receive your template encrypted, never your name.")),
)

ROLES = {"detector": N_("Finding faces"), "landmarks": N_("Placing points on a face"),
         "landmarks5": N_("Aligning a face"), "embedder": N_("Recognising: telling people apart"),
         "antispoof": N_("Telling a live face from a photo or screen")}


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
    kept = "".join(f"<tr><th scope='row'>{escape(_(k))}</th><td>{escape(_(v).format(days=retention_days))}</td></tr>"
                   for k, v in KEPT)
    # The manifest's provenance is quoted as its sources give it, in English (marked so).
    rows = "".join(
        f"<tr><th scope='row'>{escape(_(ROLES.get(e.role, e.role)))}</th>"
        f"<td lang='en'>{escape(e.training_data.get('summary', ''))}</td>"
        f"<td lang='en'>{escape(e.training_data.get('consent', ''))}</td>"
        f"<td lang='en'>{escape(e.training_data.get('reference', ''))}</td></tr>" for e in entries)
    models = ("<table id='models'><caption>" + _("Every model this device runs") + "</caption><tr><th scope='col'>"
              + _("What it does") + "</th><th scope='col'>" + _("Trained on") + "</th><th scope='col'>"
              + _("Consent of the people pictured") + "</th><th scope='col'>" + _("Source of these figures")
              + f"</th></tr>{rows}</table>") if rows else ""
    return ("<h1>" + _("Privacy") + "</h1>"
            "<h2>" + _("What this device keeps") + "</h2>"
            f"<table id='kept'>{kept}</table>"
            "<h2>" + _("What the recognition model was trained on") + "</h2>"
            f"<p id='model-notice'>{escape(_(MODEL_NOTICE))}</p>"
            "<p>" + _("We did not choose that data and cannot change it. We tell you so that you can decide; if you "
                      "do not enrol, your face is never stored.") + "</p>"
            "<h2>" + _("No face seen here trains anything") + "</h2>"
            "<p id='no-training'>" + _("The models are fixed files, checked against their fingerprints every time "
                                       "the device starts. Nothing this camera sees is used to train, tune or "
                                       "improve them, here or elsewhere.") + "</p>"
            f"{models}"
            "<p><a href='/forget'>" + _("Forget me") + "</a> · <a href='/mydata'>" + _("What do you hold about me?")
            + "</a> · <a href='/enroll'>" + _("Enrol") + "</a> · <a href='/'>" + _("Home") + "</a></p>")

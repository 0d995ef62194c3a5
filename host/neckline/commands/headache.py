"""`neckline headache log|edit|delete|list|import|export`: the headache log in InfluxDB."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from neckline.errors import NecklineError
from neckline.headache.csvio import format_time, read_headache_csv, write_headache_csv
from neckline.headache.influx import resolve_target
from neckline.headache.model import HEADACHE_TYPES, EntryError, HeadacheEntry, onset_id
from neckline.headache.store import HeadacheStore
from neckline.headache.timeparse import (
    AMBIGUOUS_CHOICES,
    DATE_ORDERS,
    TimeOptions,
    TimeParseError,
    parse_cli_time,
    zone,
    zone_name,
)

FUTURE_SLACK_S = 300.0

TIME_HELP = ("a time such as '2026-03-29 14:30', '14:30' (today), 'yesterday 22:00', '-2h', "
             "'90m ago' or 'now'; without an offset it is local time (see --tz)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "headache",
        help="log, edit, list, import and export headaches",
        description="Keep the headache log that `neckline correlate` compares with neck strain. "
        "Entries live in InfluxDB (measurement `headache`); see docs/headaches.md.",
    )
    actions = parser.add_subparsers(dest="headache_command", metavar="ACTION", required=True)

    log = actions.add_parser("log", help="log a headache (onset: now unless given)",
                             description="Log a headache. Without --severity the entry is "
                             "marked as needing details; add them later with `edit`.")
    log.add_argument("--onset", default="now", help=f"when it started: {TIME_HELP}")
    _detail_options(log)
    _tz_option(log)
    log.set_defaults(func=_log)

    edit = actions.add_parser("edit", help="change an entry (by id or a unique id prefix)")
    edit.add_argument("id", help="the entry's id, or enough of its start to be unique")
    edit.add_argument("--onset", help=f"new onset: {TIME_HELP}")
    _detail_options(edit, editing=True)
    _tz_option(edit)
    edit.set_defaults(func=_edit)

    delete = actions.add_parser("delete", help="delete an entry (by id or a unique id prefix)")
    delete.add_argument("id", help="the entry's id, or enough of its start to be unique")
    delete.set_defaults(func=_delete)

    lst = actions.add_parser("list", help="show the log")
    lst.add_argument("--since", help=f"only onsets from this time: {TIME_HELP}")
    lst.add_argument("--until", help="only onsets before this time")
    lst.add_argument("--type", action="append", choices=HEADACHE_TYPES,
                     help="only this type (repeat for several)")
    lst.add_argument("--needs-details", action="store_true",
                     help="only entries still waiting for a severity")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _tz_option(lst)
    lst.set_defaults(func=_list)

    imp = actions.add_parser(
        "import", help="import a CSV file (all rows or none; safe to repeat)",
        description="Import headaches from CSV. Columns: onset, severity, type (required); "
        "end, aura, medication, notes, id, needs_details, source (optional). Every row is "
        "checked first; any problem is reported with its line number and nothing is imported. "
        "Rows already in the log (same id, or same onset minute) are skipped, so importing a "
        "file twice adds nothing the second time.",
    )
    imp.add_argument("file", type=Path, help="the CSV file")
    _tz_option(imp)
    imp.add_argument("--date-order", choices=DATE_ORDERS,
                     help="for dates like 03/04/2026: day first (dmy) or month first (mdy)")
    imp.add_argument("--ambiguous", choices=AMBIGUOUS_CHOICES, default="error",
                     help="local times that occur twice when clocks go back: refuse (default), "
                     "or take the earlier or later one")
    imp.add_argument("--dry-run", action="store_true", help="check the file, import nothing")
    imp.set_defaults(func=_import)

    exp = actions.add_parser("export", help="write the log as CSV (re-importable)")
    exp.add_argument("file", help="the CSV file to write, or - for standard output")
    exp.add_argument("--tz", default="UTC",
                     help="write times in this zone with their offset (default UTC, 'Z')")
    exp.add_argument("--since", help="only onsets from this time")
    exp.add_argument("--until", help="only onsets before this time")
    exp.set_defaults(func=_export)


def _tz_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tz", default="local",
                   help="time zone of times given without an offset: an IANA name such as "
                   "Europe/Berlin, UTC, or 'local' (this machine's, the default)")


def _detail_options(p: argparse.ArgumentParser, editing: bool = False) -> None:
    p.add_argument("--severity", type=int, help="0 (none) to 10 (worst imaginable)")
    p.add_argument("--type", choices=HEADACHE_TYPES,
                   help="migraine, tension, other or unknown" + ("" if editing else
                                                               " (default unknown)"))
    p.add_argument("--end", help="when it ended (same forms as the onset)")
    if editing:
        p.add_argument("--no-end", action="store_true", help="remove the end (still going)")
    aura = p.add_mutually_exclusive_group()
    aura.add_argument("--aura", dest="aura", action="store_true", default=None,
                      help="there was an aura")
    aura.add_argument("--no-aura", dest="aura", action="store_false", help="there was no aura")
    p.add_argument("--medication", help="what was taken, free text")
    p.add_argument("--notes", help="anything else, free text")


def _options(args: argparse.Namespace) -> TimeOptions:
    try:
        return TimeOptions(tz=zone(getattr(args, "tz", "local")),
                           date_order=getattr(args, "date_order", None),
                           ambiguous=getattr(args, "ambiguous", "error"))
    except TimeParseError as exc:
        raise NecklineError(str(exc)) from None


def _time(text: str, what: str, options: TimeOptions, now: datetime) -> datetime:
    try:
        moment = parse_cli_time(text, options, now)
    except TimeParseError as exc:
        raise NecklineError(f"{what}: {exc}") from None
    if (moment - now).total_seconds() > FUTURE_SLACK_S:
        raise NecklineError(f"{what} {format_time(moment, options.tz)} is in the future")
    return moment


def _store() -> HeadacheStore:
    return HeadacheStore(resolve_target())


def _describe(e: HeadacheEntry, tz: tzinfo) -> str:
    sev = "?" if e.severity is None else str(e.severity)
    end = f" until {e.end.astimezone(tz):%H:%M}" if e.end else ""
    flag = "  [needs details]" if e.needs_details else ""
    return (f"{e.id}  {e.onset.astimezone(tz):%Y-%m-%d %H:%M}{end}  severity {sev}  {e.type}"
            f"{'  aura' if e.aura else ''}{flag}")


def _entry(base: HeadacheEntry, **changes: Any) -> HeadacheEntry:
    try:
        return base.with_changes(**changes) if changes else base
    except EntryError as exc:
        raise NecklineError(str(exc)) from None


def _log(args: argparse.Namespace) -> int:
    options = _options(args)
    now = datetime.now(UTC)
    onset = _time(args.onset, "--onset", options, now)
    if args.onset.strip().lower() == "now":
        onset = onset.replace(second=0, microsecond=0)  # a diary entry is to the minute
    end = _time(args.end, "--end", options, now) if args.end else None
    try:
        entry = HeadacheEntry(
            id=onset_id(onset), onset=onset, end=end, severity=args.severity,
            type=args.type or "unknown", aura=bool(args.aura), medication=args.medication or "",
            notes=args.notes or "", needs_details=args.severity is None, source="cli",
        )
    except EntryError as exc:
        raise NecklineError(str(exc)) from None
    _store().add(entry)
    print(f"logged: {_describe(entry, options.tz)}")
    if entry.needs_details:
        print(f"add the severity and type later: neckline headache edit {entry.id} "
              "--severity N --type TYPE")
    return 0


def _edit(args: argparse.Namespace) -> int:
    options = _options(args)
    now = datetime.now(UTC)
    store = _store()
    old = store.find(args.id)
    changes: dict[str, Any] = {}
    if args.onset:
        changes["onset"] = _time(args.onset, "--onset", options, now)
    if args.end and args.no_end:
        raise NecklineError("--end and --no-end contradict each other")
    if args.end:
        changes["end"] = _time(args.end, "--end", options, now)
    if args.no_end:
        changes["end"] = None
    for name in ("severity", "type", "aura", "medication", "notes"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if not changes:
        raise NecklineError("nothing to change: give at least one of --onset, --end, --no-end, "
                            "--severity, --type, --aura/--no-aura, --medication, --notes")
    severity = changes.get("severity", old.severity)
    changes["needs_details"] = severity is None
    new = _entry(old, **changes)
    store.replace(old, new)
    print(f"updated: {_describe(new, options.tz)}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    store = _store()
    entry = store.find(args.id)
    store.delete(entry)
    print(f"deleted: {_describe(entry, UTC)} (UTC)")
    return 0


def _list(args: argparse.Namespace) -> int:
    options = _options(args)
    now = datetime.now(UTC)
    since = _time(args.since, "--since", options, now) if args.since else None
    until = _time(args.until, "--until", options, now) if args.until else None
    store = _store()
    entries = store.list(since, until)
    if args.type:
        entries = [e for e in entries if e.type in args.type]
    if args.needs_details:
        entries = [e for e in entries if e.needs_details]
    if args.json:
        print(json.dumps([_as_json(e) for e in entries], indent=2))
    elif not entries:
        print("no headaches logged" + (" that match" if args.type or args.needs_details
                                       or since or until else ""))
    else:
        print(f"{'id':12}  {'onset (' + zone_name(options.tz) + ')':22} {'end':5}  sev  "
              f"{'type':9} aura  notes")
        for e in entries:
            sev = "?" if e.severity is None else str(e.severity)
            end = f"{e.end.astimezone(options.tz):%H:%M}" if e.end else ""
            note = e.notes if len(e.notes) <= 40 else e.notes[:39] + "…"
            flag = "[needs details] " if e.needs_details else ""
            print(f"{e.id:12}  {e.onset.astimezone(options.tz):%Y-%m-%d %H:%M}       {end:5}  "
                  f"{sev:>3}  {e.type:9} {'yes' if e.aura else 'no':4}  {flag}{note}")
        print(f"{len(entries)} headache(s)")
    if store.unreadable:
        print(f"warning: {store.unreadable} stored point(s) are not valid headache entries "
              "and were skipped", file=sys.stderr)
    return 0


def _as_json(e: HeadacheEntry) -> dict[str, Any]:
    return {
        "id": e.id, "onset": format_time(e.onset), "end": format_time(e.end) or None,
        "severity": e.severity, "type": e.type, "aura": e.aura, "medication": e.medication,
        "notes": e.notes, "needs_details": e.needs_details, "source": e.source,
    }


def _import(args: argparse.Namespace) -> int:
    options = _options(args)
    parsed = read_headache_csv(args.file, options)
    if parsed.ignored_columns:
        print(f"note: ignoring column(s) {', '.join(parsed.ignored_columns)}")
    if parsed.date_order:
        order = "day/month" if parsed.date_order == "dmy" else "month/day"
        print(f"note: slashed dates read as {order}")
    if args.dry_run:
        print(f"{args.file}: {len(parsed.entries)} valid row(s); nothing imported (--dry-run)")
        return 0
    outcome = _store().import_entries(parsed.entries)
    print(f"imported {len(outcome.added)} headache(s) from {args.file}; "
          f"{len(outcome.skipped)} already in the log")
    for entry, reason in outcome.skipped[:10]:
        line = parsed.lines[parsed.entries.index(entry)]
        print(f"  line {line}: skipped, {reason}")
    if len(outcome.skipped) > 10:
        print(f"  ... and {len(outcome.skipped) - 10} more skipped")
    return 0


def _export(args: argparse.Namespace) -> int:
    try:
        tz = zone(args.tz)
    except TimeParseError as exc:
        raise NecklineError(str(exc)) from None
    options = TimeOptions(tz=tz)
    now = datetime.now(UTC)
    since = _time(args.since, "--since", options, now) if args.since else None
    until = _time(args.until, "--until", options, now) if args.until else None
    entries = _store().list(since, until)
    if args.file == "-":
        write_headache_csv(sys.stdout, entries, tz)
        return 0
    path = Path(args.file)
    try:
        with path.open("w", encoding="utf-8", newline="") as fh:
            n = write_headache_csv(fh, entries, tz)
    except OSError as exc:
        raise NecklineError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"exported {n} headache(s) to {path}")
    return 0

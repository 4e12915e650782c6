"""``mosaic``: the command line. One function per command; each returns its exit code.

Exit codes: 0 done, 1 failed, 2 usage (bad arguments, no server or login), 3 validation problems
found (sheet errors, invalid or unplaced files, a study not ready), 130 interrupted (run the same
command again to continue).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx

from mosaic_client import __version__
from mosaic_client.api import API, Api, ApiError, ClientError, NotLoggedInError, UsageError
from mosaic_client.config import CredentialStore, Login
from mosaic_client.downloads import Downloader, study_files, targets_for
from mosaic_client.matching import collect_files, duplicates, place_files, read_map
from mosaic_client.output import Output, RichProgress, human_size
from mosaic_client.state import UploadState
from mosaic_client.uploads import DEFAULT_CHUNK, FileResult, Interrupted, Uploader, exit_code

DONE, FAILED, USAGE, PROBLEMS, INTERRUPTED = 0, 1, 2, 3, 130
UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")

EXAMPLES = """\
examples:
  export MOSAIC_URL=https://mosaic.example.org
  mosaic login --email ada@example.org
  mosaic create --title "Liver RNA-seq" --description "8 mice" --author "Ada L" --sheet samples.csv
  mosaic sheet MOSAIC-0001 samples.csv --mode append --report report.csv
  mosaic upload MOSAIC-0001 run42/ --jobs 4 --dry-run
  mosaic upload MOSAIC-0001 run42/ --jobs 4
  mosaic status MOSAIC-0001 && mosaic submit MOSAIC-0001
  mosaic download MOSAIC-0001 --out ./MOSAIC-0001 --jobs 4

environment:
  MOSAIC_URL         the server (instead of --url)
  MOSAIC_TOKEN       an access token to use instead of the stored login (CI pipelines)
  MOSAIC_CONFIG_DIR  where the login and the upload resume state are kept

exit codes: 0 done, 1 failed, 2 usage, 3 validation problems found, 130 interrupted
"""

COMMAND_EXAMPLES = {
    "login": "  mosaic login --email ada@example.org\n"
    '  echo "$PASSWORD" | mosaic login --email ada@example.org --url http://127.0.0.1:8000',
    "logout": "  mosaic logout",
    "whoami": "  mosaic whoami --json",
    "create": '  mosaic create --title "Liver RNA-seq" --description "Eight mice" \\\n'
    '      --author "Ada Lovelace" --author "Alan Turing" --sheet samples.csv\n'
    "  ACCESSION=$(mosaic create --title T --description D --author A)",
    "sheet": "  mosaic sheet MOSAIC-0001 samples.xlsx                  # validate only\n"
    "  mosaic sheet MOSAIC-0001 samples.csv --mode append --report errors.csv",
    "upload": "  mosaic upload MOSAIC-0001 run42/ --dry-run     # the plan, and unplaced files\n"
    "  mosaic upload MOSAIC-0001 run42/ extra/*.fq.gz --jobs 4\n"
    "  mosaic upload MOSAIC-0001 run42/ --map files.tsv     # file<TAB>sample_id per line\n"
    "Run the same command again after a cut, Ctrl+C or a crash: it continues where it stopped.",
    "status": "  mosaic status MOSAIC-0001\n  mosaic status MOSAIC-0001 --json | jq .ready",
    "submit": "  mosaic submit MOSAIC-0001",
    "download": "  mosaic download MOSAIC-0001 --out data/ --jobs 4    # data/<sample_id>/<file>\n"
    "  mosaic download 3f1c...-uuid-of-a-file --out data/",
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--url", help="the MOSAIC server (default: MOSAIC_URL, or the last login)")
    common.add_argument(
        "--json", action="store_true", help="machine-readable output (nothing else on stdout)"
    )
    parser = Parser(
        prog="mosaic",
        description="Deposit sequencing studies in MOSAIC: sample sheets, FASTQ uploads that "
        "validate as they go and resume after a cut, downloads verified by SHA-256.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mosaic-client {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog="examples:\n" + COMMAND_EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    login = command("login", "log in and store the tokens (password from a prompt or stdin)")
    login.add_argument("--email", help="your account's email (asked if not given)")
    command("logout", "end the stored session and forget its tokens")
    command("whoami", "show the account the client acts as")

    create = command("create", "create a draft study and print its accession")
    create.add_argument("--title", required=True)
    create.add_argument("--description", required=True)
    create.add_argument(
        "--author", action="append", required=True, dest="authors", help="repeat for each"
    )
    create.add_argument("--release-date", help="YYYY-MM-DD: public from that day once published")
    create.add_argument("--sheet", type=Path, help="a sample sheet to add (append) at once")

    sheet = command("sheet", "check a sample sheet against a study, or apply it")
    sheet.add_argument("study", help="accession or id")
    sheet.add_argument("file", type=Path, help="csv, tsv, txt, json or xlsx")
    sheet.add_argument("--mode", choices=("validate", "append", "replace"), default="validate")
    sheet.add_argument(
        "--report", type=Path, help="save your sheet with an errors column (.csv or .xlsx)"
    )

    upload = command("upload", "upload FASTQ files and folders, each to its sample")
    upload.add_argument("study", help="accession or id")
    upload.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files and folders")
    upload.add_argument("--jobs", type=_positive, default=2, help="files at a time (default 2)")
    upload.add_argument("--map", type=Path, help="two columns: file name or path, sample id")
    upload.add_argument(
        "--dry-run", action="store_true", help="print the plan and what cannot be placed"
    )
    upload.add_argument(
        "--chunk-size",
        type=_size,
        default=DEFAULT_CHUNK,
        help="bytes per tus request, e.g. 64M (default); any size resumes just as well",
    )

    status = command("status", "the study's readiness for submission")
    status.add_argument("study", help="accession or id")
    submit = command("submit", "submit the study for review (or publish it)")
    submit.add_argument("study", help="accession or id")

    download = command("download", "download a study's files (or one file), verified")
    download.add_argument("target", metavar="STUDY|FILE_ID")
    download.add_argument("--out", type=Path, required=True, help="folder to write into")
    download.add_argument("--jobs", type=_positive, default=2, help="files at a time (default 2)")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]?)(i?B)?", text.strip(), re.IGNORECASE)
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 64M")
    factor = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match.group(2).upper()]
    return int(match.group(1)) * factor


# -------------------------------------------------------------------------------------------
# Context shared by the commands.


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.output = Output(as_json=args.json)
        self.store = CredentialStore()
        url = args.url or os.environ.get("MOSAIC_URL") or self.store.default_url()
        if not url:
            raise UsageError("no server: pass --url or set MOSAIC_URL")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--url must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self._api: Api | None = None

    @property
    def api(self) -> Api:
        if self._api is None:
            token = os.environ.get("MOSAIC_TOKEN") or None
            self._api = Api(self.url, store=self.store, token=token)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def _study_path(study: str) -> str:
    return f"{API}/studies/{study}"


# -------------------------------------------------------------------------------------------
# Commands.


def cmd_login(ctx: Context) -> int:
    email = ctx.args.email
    interactive = sys.stdin.isatty()
    if not email:
        if not interactive:
            raise UsageError("--email is required when stdin is not a terminal")
        email = input("Email: ").strip()
    password = getpass.getpass("Password: ") if interactive else sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("no password given")
    response = httpx.post(
        f"{ctx.url}{API}/auth/login", json={"email": email, "password": password}, timeout=60.0
    )
    if response.status_code != 200:
        raise ApiError(response)
    pair = response.json()
    ctx.store.put(
        Login(
            url=ctx.url,
            email=email,
            access_token=pair["access_token"],
            refresh_token=pair["refresh_token"],
        )
    )
    if ctx.output.as_json:
        ctx.output.json({"url": ctx.url, "email": email, "credentials": str(ctx.store.path)})
    else:
        ctx.output.line(f"Logged in to {ctx.url} as {email}")
        ctx.output.note(f"tokens stored in {ctx.store.path}")
    return DONE


def cmd_logout(ctx: Context) -> int:
    login = ctx.store.get(ctx.url)
    if login is not None:
        with contextlib.suppress(httpx.HTTPError):  # the tokens are forgotten here either way
            httpx.post(
                f"{ctx.url}{API}/auth/logout",
                json={"refresh_token": login.refresh_token},
                headers={"Authorization": f"Bearer {login.access_token}"},
                timeout=30.0,
            )
        ctx.store.remove(ctx.url)
    if ctx.output.as_json:
        ctx.output.json({"url": ctx.url, "logged_out": login is not None})
    else:
        ctx.output.line(f"Logged out of {ctx.url}" if login else f"Not logged in to {ctx.url}")
    return DONE


def cmd_whoami(ctx: Context) -> int:
    ctx.api.require_login()
    user = ctx.api.json("GET", f"{API}/auth/me")
    if ctx.output.as_json:
        ctx.output.json({"url": ctx.url, **user})
    else:
        ctx.output.line(f"{user['email']} ({user['full_name']}, {user['role']}) on {ctx.url}")
    return DONE


def _sheet_issues(report: dict[str, Any], key: str) -> list[list[Any]]:
    return [
        [issue.get("row"), issue.get("column"), issue.get("code"), issue.get("message")]
        for issue in report.get(key) or []
    ]


def _post_sheet(
    ctx: Context, study: str, path: Path, mode: str, report: str | None = None
) -> httpx.Response:
    params = {"mode": mode, **({"report": report} if report else {})}
    with path.open("rb") as handle:
        return ctx.api.send(
            "POST",
            f"{_study_path(study)}/sample-sheet",
            params=params,
            files={"file": (path.name, handle.read())},
            ok=(422,),
        )


def _sheet_report(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if response.status_code == 422:
        if body.get("code") != "SHEET_INVALID" or "report" not in body:
            raise ApiError(response)
        report: dict[str, Any] = body["report"]
        return report
    return dict(body)


def _show_sheet(ctx: Context, report: dict[str, Any], *, stderr: bool = False) -> None:
    errors = _sheet_issues(report, "errors")
    warnings = _sheet_issues(report, "warnings")
    columns = ("row", "column", "code", "message")
    if errors:
        ctx.output.table(f"{len(errors)} error(s)", columns, errors, stderr=stderr)
    if warnings:
        ctx.output.table(f"{len(warnings)} warning(s)", columns, warnings, stderr=stderr)


def cmd_create(ctx: Context) -> int:
    args = ctx.args
    ctx.api.require_login()
    if args.sheet is not None and not args.sheet.is_file():
        raise UsageError(f"no such sheet: {args.sheet}")
    body: dict[str, Any] = {
        "title": args.title,
        "description": args.description,
        "authors": args.authors,
    }
    if args.release_date:
        body["release_date"] = args.release_date
    study = ctx.api.json("POST", f"{API}/studies", json=body)
    result: dict[str, Any] = {"accession": study["accession"], "id": study["id"]}
    code = DONE
    if args.sheet is not None:
        report = _sheet_report(_post_sheet(ctx, study["accession"], args.sheet, "append"))
        result["sheet"] = report
        if not report.get("valid"):
            code = PROBLEMS
    if ctx.output.as_json:
        ctx.output.json(result)
        return code
    ctx.output.line(study["accession"])
    if "sheet" in result:
        report = result["sheet"]
        _show_sheet(ctx, report, stderr=True)
        if code == PROBLEMS:
            ctx.output.note(
                f"The study was created, but the sheet has errors: nothing from it was saved. "
                f"Fix it and run: mosaic sheet {study['accession']} {args.sheet} --mode append",
                style="red",
            )
        else:
            ctx.output.note(f"{report.get('created', 0)} sample(s) added from {args.sheet}")
    return code


def cmd_sheet(ctx: Context) -> int:
    args = ctx.args
    ctx.api.require_login()
    if not args.file.is_file():
        raise UsageError(f"no such sheet: {args.file}")
    report = _sheet_report(_post_sheet(ctx, args.study, args.file, args.mode))
    if args.report is not None:
        kind = "xlsx" if args.report.suffix.lower() == ".xlsx" else "csv"
        annotated = _post_sheet(ctx, args.study, args.file, "validate", kind)
        args.report.write_bytes(annotated.content)
    if ctx.output.as_json:
        ctx.output.json(report)
    else:
        _show_sheet(ctx, report)
        applied = report.get("created", 0) + report.get("replaced", 0)
        verdict = "valid" if report.get("valid") else "invalid"
        done = f"; {report.get('created', 0)} sample(s) saved" if applied else ""
        ctx.output.line(f"{args.file}: {verdict}, {report.get('row_count', 0)} row(s){done}")
        if args.report is not None:
            ctx.output.note(f"annotated sheet saved to {args.report}")
    return DONE if report.get("valid") else PROBLEMS


def _study_samples(ctx: Context, study: str) -> list[dict[str, Any]]:
    return list(ctx.api.pages(f"{_study_path(study)}/samples"))


def cmd_upload(ctx: Context) -> int:
    args = ctx.args
    ctx.api.require_login()
    study = ctx.api.json("GET", _study_path(args.study))
    accession = study["accession"]
    samples = _study_samples(ctx, accession)
    sample_ids = [sample["sample_id"] for sample in samples]
    mapping = None
    if args.map is not None:
        try:
            mapping = read_map(args.map)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--map: {exc}") from exc
    files, missing = collect_files(args.paths)
    placed, unplaced = place_files(files, sample_ids, mapping)
    unplaced = missing + unplaced + duplicates(placed)
    if args.dry_run or unplaced:
        _show_plan(ctx, accession, placed, unplaced, dry_run=args.dry_run)
        if unplaced and not args.dry_run:
            ctx.output.note(
                "Nothing was uploaded: every file must belong to a sample. Rename the files, "
                "give a --map, or add the samples with `mosaic sheet`.",
                style="red",
            )
        return PROBLEMS if unplaced else DONE
    if study.get("status") != "draft":
        raise ClientError(f"{accession} is {study.get('status')}: only drafts accept files")
    stored = {sample["sample_id"]: list(sample.get("files") or []) for sample in samples}
    state = UploadState(ctx.url, accession)
    total = sum(item.path.stat().st_size for item in placed)
    with RichProgress(ctx.output.err, total=total, label=f"{accession}") as progress:
        uploader = Uploader(
            ctx.api,
            accession,
            stored=stored,
            state=state,
            jobs=args.jobs,
            chunk_size=args.chunk_size,
            progress=progress,
        )
        try:
            results = uploader.run(placed)
        except Interrupted as interrupted:
            progress.bar.stop()
            _stop_interrupted_upload(ctx, accession, len(placed), interrupted)
    return _show_upload_results(ctx, accession, results)


def _stop_interrupted_upload(
    ctx: Context, accession: str, total: int, interrupted: Interrupted
) -> NoReturn:
    """Report what an interrupted upload finished, then leave at once."""
    if ctx.output.as_json:
        ctx.output.json(
            {
                "study": accession,
                "interrupted": True,
                "files": [result.as_json() for result in interrupted.results],
            }
        )
    finished = sum(result.status != "failed" for result in interrupted.results)
    ctx.output.note(
        f"Interrupted: {finished} of {total} file(s) done. Run the same command "
        "again to continue where it stopped.",
        style="yellow",
    )
    _exit_now(INTERRUPTED)


def _show_upload_results(ctx: Context, accession: str, results: list[FileResult]) -> int:
    """Each file's outcome (JSON, or a table and a summary line); the exit code."""
    if ctx.output.as_json:
        counts: dict[str, int] = {}
        for result in results:
            counts[result.status] = counts.get(result.status, 0) + 1
        ctx.output.json(
            {"study": accession, "files": [r.as_json() for r in results], "counts": counts}
        )
        return exit_code(results)
    rows = [
        [
            _display(result.path),
            result.sample_id,
            result.status,
            "" if result.read_count is None else f"{result.read_count:,}",
            _upload_detail(result),
        ]
        for result in results
    ]
    ctx.output.table(accession, ("file", "sample", "status", "reads", "errors, notes"), rows)
    summary = ", ".join(
        f"{sum(r.status == status for r in results)} {status}"
        for status in ("valid", "invalid", "skipped", "failed")
        if any(r.status == status for r in results)
    )
    ctx.output.line(summary)
    return exit_code(results)


def _upload_detail(result: FileResult) -> str:
    """The table's note on a file: its first errors, else where it resumed, else the message."""
    detail = result.message or ""
    if result.resumed_from and result.status != "failed":
        detail = f"resumed at {human_size(result.resumed_from)} of {human_size(result.size)}"
    if result.errors:
        detail = "; ".join(
            f"line {error.get('line')}: {error.get('code')} {error.get('message')}"
            for error in result.errors[:3]
        )
    return detail


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _show_plan(
    ctx: Context, accession: str, placed: Sequence[Any], unplaced: Sequence[Any], *, dry_run: bool
) -> None:
    if ctx.output.as_json:
        ctx.output.json(
            {
                "study": accession,
                "dry_run": dry_run,
                "plan": [
                    {
                        "file": str(item.path),
                        "sample_id": item.sample_id,
                        "read": item.read,
                        "size": item.path.stat().st_size,
                        "matched_by": item.how,
                    }
                    for item in placed
                ],
                "unplaced": [{"file": str(u.path), "reason": u.reason} for u in unplaced],
            }
        )
        return
    if dry_run:
        ctx.output.table(
            f"{accession}: {len(placed)} file(s) to upload",
            ("file", "sample", "read", "size", "matched by"),
            [
                [
                    _display(i.path),
                    i.sample_id,
                    i.read,
                    human_size(i.path.stat().st_size),
                    i.how,
                ]
                for i in placed
            ],
        )
    if unplaced:
        ctx.output.table(
            f"{len(unplaced)} file(s) that cannot be placed",
            ("file", "reason"),
            [[_display(u.path), u.reason] for u in unplaced],
        )


def cmd_status(ctx: Context) -> int:
    ctx.api.require_login()
    study = ctx.api.json("GET", _study_path(ctx.args.study))
    readiness = ctx.api.json("GET", f"{_study_path(ctx.args.study)}/readiness")
    code = DONE if readiness.get("ready") else PROBLEMS
    if ctx.output.as_json:
        ctx.output.json(
            {
                "accession": study["accession"],
                "status": study["status"],
                "sample_count": study.get("sample_count"),
                "file_count": study.get("file_count"),
                "total_bytes": study.get("total_bytes"),
                **readiness,
            }
        )
        return code
    ctx.output.line(
        f"{study['accession']} ({study['status']}): {study.get('sample_count')} sample(s), "
        f"{study.get('file_count')} file(s), {human_size(int(study.get('total_bytes') or 0))}"
    )
    problems = readiness.get("problems") or []
    if problems:
        ctx.output.table(
            f"{len(problems)} problem(s) before it can be submitted",
            ("sample", "code", "message"),
            [[p.get("sample_id") or "(study)", p.get("code"), p.get("message")] for p in problems],
        )
    else:
        ctx.output.line("ready to submit")
    return code


def cmd_submit(ctx: Context) -> int:
    ctx.api.require_login()
    try:
        study = ctx.api.json("POST", f"{_study_path(ctx.args.study)}/submit")
    except ApiError as exc:
        if exc.code != "STUDY_INCOMPLETE":
            raise
        if ctx.output.as_json:
            ctx.output.json({"submitted": False, "code": exc.code, "problems": exc.errors})
        else:
            ctx.output.table(
                "not submitted: the study is not ready",
                ("sample", "code", "message"),
                [
                    [p.get("sample_id") or "(study)", p.get("code"), p.get("message")]
                    for p in exc.errors
                    if isinstance(p, dict)
                ],
            )
        return PROBLEMS
    if ctx.output.as_json:
        ctx.output.json({"submitted": True, "accession": study["accession"], **study})
    else:
        ctx.output.line(f"{study['accession']} is now {study['status']}")
    return DONE


def cmd_download(ctx: Context) -> int:
    args = ctx.args
    target = args.target
    files: list[dict[str, Any]] | None = None
    if UUID.match(target):
        response = ctx.api.send("GET", f"{API}/files/{target}", ok=(404,))
        if response.status_code == 200:
            files = [response.json()]
    flat = files is not None
    if files is None:
        files = study_files(ctx.api, target)
    targets = targets_for(files, args.out, flat=flat)
    total = sum(int(file["size"]) for file in files)
    downloader = Downloader(ctx.api, jobs=args.jobs)
    with RichProgress(ctx.output.err, total=total, label="download") as progress:
        downloader.progress = progress
        try:
            results = downloader.run(files, targets)
        except KeyboardInterrupt:
            progress.bar.stop()
            if ctx.output.as_json:
                ctx.output.json({"target": target, "interrupted": True})
            ctx.output.note("Interrupted: run the same command again to continue.", "yellow")
            _exit_now(INTERRUPTED)
    code = FAILED if any(result.status == "failed" for result in results) else DONE
    if ctx.output.as_json:
        ctx.output.json({"target": target, "files": [result.as_json() for result in results]})
        return code
    ctx.output.table(
        f"{len(results)} file(s) into {args.out}",
        ("file", "sample", "size", "status", "note"),
        [
            [_display(r.path), r.sample_id, human_size(r.size), r.status, r.message or ""]
            for r in results
        ],
    )
    return code


COMMANDS: dict[str, Callable[[Context], int]] = {
    "login": cmd_login,
    "logout": cmd_logout,
    "whoami": cmd_whoami,
    "create": cmd_create,
    "sheet": cmd_sheet,
    "upload": cmd_upload,
    "status": cmd_status,
    "submit": cmd_submit,
    "download": cmd_download,
}


def _exit_now(code: int) -> NoReturn:
    """Leave without waiting for transfer threads that may sit on a stalled connection (every
    state worth keeping is already on disk)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a run as Ctrl+C does: cleanly, resumable


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE
    with_json = bool(getattr(args, "json", False))
    output = Output(as_json=with_json)
    # Ctrl+C and SIGTERM stop a run cleanly, even when started with SIGINT ignored (a shell
    # does that to background jobs, and Python then installs no KeyboardInterrupt of its own).
    previous = signal.signal(signal.SIGTERM, _terminate)
    previous_interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    ctx: Context | None = None
    try:
        ctx = Context(args)
        return COMMANDS[args.command](ctx)
    except KeyboardInterrupt:
        output.note("Interrupted.", style="yellow")
        return INTERRUPTED
    except (ClientError, httpx.HTTPError, OSError) as exc:
        return _fail(output, exc)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_interrupt)
        if ctx is not None:
            ctx.close()


def _fail(output: Output, exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        code = exc.exit_code
        if isinstance(exc, NotLoggedInError):
            code = USAGE
    else:
        code = FAILED
    if isinstance(exc, httpx.TransportError):
        message = f"cannot reach the server: {exc}"
    elif isinstance(exc, OSError):
        message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    else:
        message = str(exc)
    if output.as_json:
        error: dict[str, Any] = {"message": message, "exit_code": code}
        if isinstance(exc, ApiError):
            error |= {"code": exc.code, "status": exc.status_code, "errors": exc.errors}
        output.json({"error": error})
    else:
        output.note(f"error: {message}", style="red")
    return code


if __name__ == "__main__":
    raise SystemExit(main())

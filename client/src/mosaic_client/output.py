"""What the user sees: tables and messages through rich, JSON on stdout with ``--json``, progress
bars on stderr (only when stderr is a terminal)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table


class Output:
    """stdout for results, stderr for everything else; in JSON mode stdout gets one document."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.out = Console(highlight=False, soft_wrap=False)
        self.err = Console(stderr=True, highlight=False)

    def json(self, document: Any) -> None:
        sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def line(self, text: str) -> None:
        """A result line on stdout (text mode only)."""
        if not self.as_json:
            self.out.print(text, markup=False)

    def note(self, text: str, style: str | None = None) -> None:
        """A message for the person on stderr."""
        self.err.print(text, style=style, markup=False)

    def table(
        self,
        title: str | None,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        stderr: bool = False,
    ) -> None:
        table = Table(title=title, title_justify="left", show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        (self.err if stderr else self.out).print(table)


class RichProgress:
    """A bar per active file and one for the whole run: bytes, rate, time left."""

    def __init__(self, console: Console, *, total: int, label: str) -> None:
        self.bar = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
            transient=False,
        )
        self.overall = self.bar.add_task(label, total=total)
        self.tasks: dict[str, TaskID] = {}
        self.names: dict[str, str] = {}
        self.shown: dict[str, int] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    @staticmethod
    def _name(name: str) -> str:
        return name if len(name) <= 36 else name[:16] + "…" + name[-19:]

    def start(self, key: str, name: str, size: int) -> None:
        with self.lock:
            self.names[key] = self._name(name)
            task = self.tasks.get(key)
            if task is None:
                self.tasks[key] = self.bar.add_task(f"  {self.names[key]}", total=size)
            else:
                self.bar.reset(task, total=size)

    def hashing(self, key: str, count: int) -> None:
        with self.lock:
            task = self.tasks.get(key)
            if task is not None:
                description = f"  {self.names.get(key, '')} (SHA-256)"
                self.bar.update(task, advance=count, description=description)

    def uploading(self, key: str, offset: int) -> None:
        with self.lock:
            task = self.tasks.get(key)
            if task is not None:
                description = f"  {self.names.get(key, '')}"
                self.bar.update(task, completed=offset, description=description)
            self.bar.advance(self.overall, offset - self.shown.get(key, 0))
            self.shown[key] = offset

    def sent(self, key: str, count: int) -> None:
        with self.lock:
            task = self.tasks.get(key)
            if task is not None:
                self.bar.advance(task, count)
            self.bar.advance(self.overall, count)
            self.shown[key] = self.shown.get(key, 0) + count

    def done(self, key: str, size: int) -> None:
        with self.lock:
            task = self.tasks.pop(key, None)
            if task is not None:
                self.bar.remove_task(task)
            self.bar.advance(self.overall, size - self.shown.get(key, 0))
            self.shown[key] = size


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # unreachable

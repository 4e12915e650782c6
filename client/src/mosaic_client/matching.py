"""Which sample each FASTQ file belongs to.

A file is placed by its name: the sample id is a prefix of the name, followed by ``_``, ``.`` or
``-`` (``LIV_M1_R1.fastq.gz`` -> ``LIV_M1``); when several sample ids fit, the longest wins
(``LIV_M10_R1`` -> ``LIV_M10``, not ``LIV_M1``). Sample ids are compared ignoring case, as the
server compares them. A ``--map`` file (two columns: file, sample id; comma, tab or spaces
between them; an optional header) overrides the names: its first column is a file name or a
path (relative to the map file's folder). Files the map does not name fall back to their names.
The read (R1/R2/single) is guessed from the name as the server guesses it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FASTQ_SUFFIXES = (".fastq.gz", ".fq.gz", ".fastq", ".fq")
SEPARATORS = "_.-"
# The server's guess (src/sampleFileUpload/utils.py): _R1/_R2 first, then _1/_2 before a dot.
_ILLUMINA_READ = re.compile(r"(?:^|[._-])R([12])(?=[._-])", re.IGNORECASE)
_NUMBERED_READ = re.compile(r"_([12])\.f(?:ast)?q(?:\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Placed:
    path: Path
    sample_id: str
    read: str
    how: str  # "name" or "map"


@dataclass(frozen=True)
class Unplaced:
    path: Path
    reason: str


def is_fastq_name(name: str) -> bool:
    return name.lower().endswith(FASTQ_SUFFIXES)


def guess_read(filename: str) -> str:
    match = _ILLUMINA_READ.search(filename) or _NUMBERED_READ.search(filename)
    if match is None:
        return "single"
    return "R1" if match.group(1) == "1" else "R2"


def sample_for_name(filename: str, sample_ids: Iterable[str]) -> str | None:
    """The longest sample id that is a prefix of ``filename`` up to a separator."""
    lowered = filename.lower()
    best: str | None = None
    for sample_id in sample_ids:
        candidate = sample_id.lower()
        if not lowered.startswith(candidate) or len(lowered) == len(candidate):
            continue
        if lowered[len(candidate)] not in SEPARATORS:
            continue
        if best is None or len(sample_id) > len(best):
            best = sample_id
    return best


def collect_files(paths: Sequence[Path]) -> tuple[list[Path], list[Unplaced]]:
    """The files named and the FASTQ files inside the folders named (recursively, hidden ones
    left out), each once, in a stable order; paths that do not exist are reported."""
    found: list[Path] = []
    missing: list[Unplaced] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            found.append(path)

    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if any(part.startswith(".") for part in relative):
                    continue
                if child.is_file() and is_fastq_name(child.name):
                    add(child)
        elif path.is_file():
            add(path)
        else:
            missing.append(Unplaced(path, "no such file or folder"))
    return found, missing


def read_map(map_path: Path) -> dict[str, str]:
    """A two-column map: file (name or path) -> sample id. Keys are file names, or resolved
    paths when the first column holds a folder part."""
    text = map_path.read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        return {}
    first = lines[0]
    if "\t" in first:
        rows = list(csv.reader(lines, delimiter="\t"))
    elif "," in first:
        rows = list(csv.reader(lines))
    else:
        rows = [line.split() for line in lines]
    mapping: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row if cell.strip()]
        if number == 1 and len(cells) >= 2 and cells[1].lower() in {"sample", "sample_id"}:
            continue  # a header
        if len(cells) != 2:
            raise ValueError(f"{map_path}: line {number} does not have two columns: {row!r}")
        name, sample_id = cells
        if "/" in name or "\\" in name:
            mapping[str((map_path.parent / name).resolve())] = sample_id
        else:
            mapping[name] = sample_id
    return mapping


def place_files(
    files: Sequence[Path], sample_ids: Sequence[str], mapping: dict[str, str] | None = None
) -> tuple[list[Placed], list[Unplaced]]:
    """Each file's sample (by the map, else by its name) and read, or why it has none."""
    by_lower = {sample_id.lower(): sample_id for sample_id in sample_ids}
    placed: list[Placed] = []
    unplaced: list[Unplaced] = []
    for path in files:
        name = path.name
        if not is_fastq_name(name):
            unplaced.append(Unplaced(path, "not a FASTQ name (.fastq, .fq, .fastq.gz, .fq.gz)"))
            continue
        mapped = None
        if mapping:
            mapped = mapping.get(str(path.resolve()), mapping.get(name))
        if mapped is not None:
            sample_id = by_lower.get(mapped.lower())
            if sample_id is None:
                unplaced.append(Unplaced(path, f"the map names sample {mapped!r}, not in study"))
                continue
            placed.append(Placed(path, sample_id, guess_read(name), "map"))
            continue
        sample_id = sample_for_name(name, sample_ids)
        if sample_id is None:
            unplaced.append(Unplaced(path, "no sample id of the study starts the name"))
            continue
        placed.append(Placed(path, sample_id, guess_read(name), "name"))
    return placed, unplaced


def duplicates(placed: Sequence[Placed]) -> list[Unplaced]:
    """Two files that would land under the same name in the same sample."""
    seen: dict[tuple[str, str], Path] = {}
    clashes: list[Unplaced] = []
    for item in placed:
        key = (item.sample_id.lower(), item.path.name)
        if key in seen:
            clashes.append(Unplaced(item.path, f"same name as {seen[key]} in {item.sample_id}"))
        else:
            seen[key] = item.path
    return clashes

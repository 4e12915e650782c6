"""File-to-sample matching: by name prefix (longest sample id wins, at a separator), by a map,
and the read guessed as the server guesses it."""

from __future__ import annotations

from pathlib import Path

import pytest
from mosaic_client.matching import (
    collect_files,
    duplicates,
    guess_read,
    place_files,
    read_map,
    sample_for_name,
)

from src.sampleFileUpload.files.utils import parse_read

SAMPLES = ["LIV_M1", "LIV_M10", "LIV_M2", "kid.1"]


class TestSampleForName:
    @pytest.mark.parametrize(
        ("name", "sample_id"),
        [
            ("LIV_M1_R1.fastq.gz", "LIV_M1"),
            ("LIV_M10_R1.fastq.gz", "LIV_M10"),  # longest wins over LIV_M1
            ("LIV_M10.fq", "LIV_M10"),
            ("LIV_M2-lane1_R2.fastq.gz", "LIV_M2"),
            ("liv_m2_R1.fastq.gz", "LIV_M2"),  # ids compare ignoring case, as on the server
            ("kid.1_R1.fq.gz", "kid.1"),
        ],
    )
    def test_the_longest_prefix_up_to_a_separator(self, name: str, sample_id: str) -> None:
        assert sample_for_name(name, SAMPLES) == sample_id

    @pytest.mark.parametrize(
        "name", ["LIV_M100_R1.fastq.gz", "LIV_M3_R1.fastq.gz", "xLIV_M1_R1.fq", "LIV_M1"]
    )
    def test_no_sample_without_a_separator_after_the_id(self, name: str) -> None:
        assert sample_for_name(name, SAMPLES) is None


class TestGuessRead:
    @pytest.mark.parametrize(
        "name",
        [
            "LIV_M1_R1.fastq.gz",
            "LIV_M1_S1_L001_R2_001.fastq.gz",
            "x_1.fq",
            "x_2.fastq",
            "x.fastq.gz",
            "R1_x.fq",
            "x_R3.fq",
            "x_12.fq",
            "x.r2.fq.gz",
        ],
    )
    def test_agrees_with_the_server(self, name: str) -> None:
        assert guess_read(name) == parse_read(None, name).value


class TestMap:
    def test_tab_comma_and_space_separated_with_or_without_header(self, tmp_path: Path) -> None:
        for text in (
            "file\tsample_id\na.fq\tLIV_M1\n",
            "a.fq,LIV_M1\n",
            "# comment\na.fq   LIV_M1\n\n",
        ):
            path = tmp_path / "map.txt"
            path.write_text(text)
            assert read_map(path) == {"a.fq": "LIV_M1"}

    def test_paths_are_relative_to_the_map(self, tmp_path: Path) -> None:
        (tmp_path / "lane1").mkdir()
        path = tmp_path / "map.tsv"
        path.write_text("lane1/a.fq\tLIV_M2\n")
        assert read_map(path) == {str((tmp_path / "lane1" / "a.fq").resolve()): "LIV_M2"}

    def test_a_row_without_two_columns_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "map.tsv"
        path.write_text("a.fq\tLIV_M1\tR1\n")
        with pytest.raises(ValueError, match="line 1"):
            read_map(path)

    def test_the_map_overrides_names_and_the_rest_fall_back(self, tmp_path: Path) -> None:
        files = [tmp_path / "odd_name_R1.fq", tmp_path / "LIV_M1_R2.fq", tmp_path / "x.fq"]
        placed, unplaced = place_files(
            files, SAMPLES, {"odd_name_R1.fq": "liv_m10", "x.fq": "NOPE"}
        )
        assert [(p.path.name, p.sample_id, p.read, p.how) for p in placed] == [
            ("odd_name_R1.fq", "LIV_M10", "R1", "map"),
            ("LIV_M1_R2.fq", "LIV_M1", "R2", "name"),
        ]
        assert [(u.path.name, "NOPE" in u.reason) for u in unplaced] == [("x.fq", True)]


class TestCollect:
    def test_folders_recursively_fastq_only_hidden_left_out(self, tmp_path: Path) -> None:
        run = tmp_path / "run"
        (run / "lane1").mkdir(parents=True)
        (run / ".snapshot").mkdir()
        for name in ("lane1/LIV_M1_R1.fastq.gz", "LIV_M2_R1.fq", "notes.txt", ".snapshot/a.fq"):
            (run / name).write_bytes(b"")
        extra = tmp_path / "LIV_M1_R2.fq"
        extra.write_bytes(b"")
        files, missing = collect_files([run, extra, run / "lane1", tmp_path / "absent.fq"])
        assert [f.name for f in files] == ["LIV_M2_R1.fq", "LIV_M1_R1.fastq.gz", "LIV_M1_R2.fq"]
        assert [m.path.name for m in missing] == ["absent.fq"]

    def test_non_fastq_names_and_clashes_cannot_be_placed(self, tmp_path: Path) -> None:
        files = [tmp_path / "LIV_M1_R1.txt", tmp_path / "a" / "LIV_M1.fq", tmp_path / "LIV_M1.fq"]
        placed, unplaced = place_files(files, SAMPLES)
        assert "not a FASTQ name" in unplaced[0].reason
        clashes = duplicates(placed)
        assert [c.path for c in clashes] == [tmp_path / "LIV_M1.fq"]

"""The sheet import's collector scope: raised while imports run, put back by the last one out."""

from __future__ import annotations

import gc

from src.sampleFileUpload.sheets.utils import SHEET_GC_THRESHOLD, fewer_collections


def test_overlapping_scopes_raise_the_threshold_and_the_last_one_restores_it() -> None:
    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    assert gc.get_threshold() == (SHEET_GC_THRESHOLD, before[1], before[2])
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == SHEET_GC_THRESHOLD  # the second import still runs
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_an_error_inside_still_restores_the_threshold() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections():
            raise ValueError("refused")
    except ValueError:
        pass
    assert gc.get_threshold() == before


def test_a_switched_off_threshold_is_left_alone() -> None:
    before = gc.get_threshold()
    gc.set_threshold(0, before[1], before[2])
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)

"""The sample checklist: every rule, alias and normalisation, for JSON samples and sheet rows."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator

from src.study.checklist import (
    FIELD_NAMES,
    SEX_VALUES,
    SHEET_HEADERS,
    ChecklistError,
    ResolvedColumns,
    SampleIds,
    checklist_fields,
    example_sample,
    match_header,
    normalise_field,
    pydantic_check,
    validate_sample,
)
from src.study.constants import ChecklistCode

TODAY = date(2024, 6, 15)


def check(**raw: object):  # type: ignore[no-untyped-def]
    return validate_sample({"sample_id": "S1", "organism": "Mus musculus", **raw}, today=TODAY)


def codes(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [issue.code for issue in result.errors]


class TestChecklistData:
    def test_fields_in_sheet_order_with_original_headers(self) -> None:
        assert SHEET_HEADERS == (
            "Sample",
            "Sample_ID",
            "SampleGroup",
            "Sample_Project",
            "Description",
            "Organism",
            "Tissue",
            "Sex",
            "Cell_Line",
            "Mouse_Model",
            "Biomaterial_Provider",
            "Date_Sample_Prep",
            "Biological_Repeat",
        )

    def test_served_checklist_is_json_data(self) -> None:
        fields = {f["name"]: f for f in checklist_fields()}
        assert set(fields) == set(FIELD_NAMES)
        assert fields["sample_id"]["required"] is True
        assert fields["organism"]["required"] is True
        assert fields["tissue"]["required"] is False
        assert fields["sex"]["allowed_values"] == list(SEX_VALUES)
        assert fields["biological_repeat"]["type"] == "integer"
        assert fields["date_sample_prep"]["type"] == "date"
        assert "Species" in fields["organism"]["aliases"]
        for entry in fields.values():
            assert set(entry) >= {"name", "header", "aliases", "required", "type", "description"}

    def test_example_sample_is_valid_and_clean(self) -> None:
        result = validate_sample(example_sample())
        assert result.valid
        assert result.warnings == []


class TestMatchHeader:
    @pytest.mark.parametrize(
        "header", ["Sample_ID", "sample id", "SampleID", "sample-id", "SAMPLE_ID", " sample_id "]
    )
    def test_sample_id_spellings(self, header: str) -> None:
        assert match_header(header) == "sample_id"

    @pytest.mark.parametrize(
        ("header", "name"),
        [
            ("Sample", "sample"),
            ("Sample name", "sample"),
            ("SampleGroup", "sample_group"),
            ("sample_group", "sample_group"),
            ("Group", "sample_group"),
            ("Species", "organism"),
            ("scientific_name", "organism"),
            ("Gender", "sex"),
            ("Cell line", "cell_line"),
            ("Mouse strain", "mouse_model"),
            ("Biomaterial-Provider", "biomaterial_provider"),
            ("Sample prep date", "date_sample_prep"),
            ("Biological replicate", "biological_repeat"),
            ("Replicate", "biological_repeat"),
            ("Organism part", "tissue"),
        ],
    )
    def test_aliases(self, header: str, name: str) -> None:
        assert match_header(header) == name

    def test_unknown_header(self) -> None:
        assert match_header("Weight") is None
        assert match_header("") is None


class TestRequired:
    def test_sample_id_and_organism_required(self) -> None:
        result = validate_sample({"tissue": "liver"}, today=TODAY)
        assert sorted((i.field, i.code) for i in result.errors) == [
            ("organism", ChecklistCode.REQUIRED),
            ("sample_id", ChecklistCode.REQUIRED),
        ]

    def test_blank_value_is_missing(self) -> None:
        result = validate_sample({"Sample_ID": "   ", "Organism": "human"}, today=TODAY)
        assert [(i.field, i.code) for i in result.errors] == [("Sample_ID", ChecklistCode.REQUIRED)]

    def test_sample_defaults_to_sample_id(self) -> None:
        assert check().values["sample"] == "S1"
        assert check(sample="Liver 1").values["sample"] == "Liver 1"


class TestSampleId:
    @pytest.mark.parametrize("value", ["S1", "a.b-c_D", "x" * 64, "-lead", "0"])
    def test_valid(self, value: str) -> None:
        assert check(sample_id=value).values["sample_id"] == value

    @pytest.mark.parametrize("value", ["x" * 65, "S 1", "S/1", "sämple", "S1!", "S1;DROP"])
    def test_invalid(self, value: str) -> None:
        assert codes(check(sample_id=value)) == [ChecklistCode.INVALID_SAMPLE_ID]

    def test_trimmed_and_case_kept(self) -> None:
        assert check(sample_id="  abC1 ").values["sample_id"] == "abC1"

    def test_json_number_becomes_text(self) -> None:
        assert check(sample_id=12).values["sample_id"] == "12"


class TestSampleIds:
    """The one uniqueness rule of a batch, used by JSON sample lists and by sheets."""

    def test_first_use_is_recorded(self) -> None:
        ids = SampleIds()
        assert ids.earlier_use("S1", 2) is None
        assert ids.earlier_use("S2", 3) is None

    def test_repeat_ignoring_case_names_the_first_use(self) -> None:
        ids = SampleIds()
        ids.earlier_use("liv_M1", 2)
        assert ids.earlier_use("LIV_m1", 5) == 2
        assert ids.earlier_use("liv_m1", 9) == 2

    def test_same_position_again_is_not_a_repeat(self) -> None:
        ids = SampleIds()
        ids.earlier_use("S1", 4)
        assert ids.earlier_use("S1", 4) is None


class TestOrganism:
    @pytest.mark.parametrize(
        ("written", "canonical"),
        [
            ("mus musculus", "Mus musculus"),
            ("MUS  MUSCULUS", "Mus musculus"),
            ("Homo Sapiens", "Homo sapiens"),
            ("human", "Homo sapiens"),
            ("Mouse", "Mus musculus"),
            ("rat", "Rattus norvegicus"),
            ("zebrafish", "Danio rerio"),
            ("fly", "Drosophila melanogaster"),
            ("worm", "Caenorhabditis elegans"),
            ("yeast", "Saccharomyces cerevisiae"),
            ("arabidopsis", "Arabidopsis thaliana"),
            ("E. coli", "Escherichia coli"),
        ],
    )
    def test_known_names_normalised_and_reported(self, written: str, canonical: str) -> None:
        result = check(organism=written)
        assert result.valid
        assert result.values["organism"] == canonical
        assert [(w.code, w.value) for w in result.warnings] == [(ChecklistCode.NORMALISED, written)]
        assert f'"{written}" -> "{canonical}"' in result.warnings[0].message

    def test_canonical_name_has_no_warning(self) -> None:
        assert check(organism="Mus musculus").warnings == []

    def test_unknown_organism_kept_as_written(self) -> None:
        result = check(organism=" Xenopus laevis ")
        assert result.values["organism"] == "Xenopus laevis"
        assert result.warnings == []


class TestSex:
    @pytest.mark.parametrize("value", SEX_VALUES)
    def test_vocabulary_accepted_without_warning(self, value: str) -> None:
        result = check(sex=value)
        assert result.values["sex"] == value
        assert result.warnings == []

    @pytest.mark.parametrize(
        ("written", "canonical"),
        [
            ("F", "female"),
            ("f", "female"),
            ("M", "male"),
            ("Female", "female"),
            ("MALE", "male"),
            ("na", "not applicable"),
            ("n/a", "not applicable"),
            ("N/A", "not applicable"),
            ("not_applicable", "not applicable"),
            ("Not-Collected", "not collected"),
            ("pooled", "mixed"),
            ("unk", "unknown"),
        ],
    )
    def test_aliases_normalised_and_reported(self, written: str, canonical: str) -> None:
        result = check(sex=written)
        assert result.values["sex"] == canonical
        assert [w.code for w in result.warnings] == [ChecklistCode.NORMALISED]
        assert result.warnings[0].message == f'sex "{written}" -> "{canonical}"'

    def test_warning_names_the_column_as_written(self) -> None:
        result = validate_sample({"Sample_ID": "S1", "Organism": "human", "Sex": "F"})
        assert result.warnings[1].field == "Sex"
        assert result.warnings[1].message == 'Sex "F" -> "female"'

    @pytest.mark.parametrize("value", ["woman", "x", "females", "2"])
    def test_invalid(self, value: str) -> None:
        result = check(sex=value)
        assert codes(result) == [ChecklistCode.INVALID_SEX]
        assert result.errors[0].value == value
        assert result.values["sex"] is None


class TestDate:
    @pytest.mark.parametrize("value", ["2024-06-15", "2024-06", "2024", "1999-12-31", "2024-02-29"])
    def test_valid_kept_as_written(self, value: str) -> None:
        assert check(date_sample_prep=value).values["date_sample_prep"] == value

    @pytest.mark.parametrize("value", ["03/04/2022", "3/4/22", "04.03.2022", "03-04-2022"])
    def test_ambiguous(self, value: str) -> None:
        assert codes(check(date_sample_prep=value)) == [ChecklistCode.AMBIGUOUS_DATE]

    @pytest.mark.parametrize(
        "value", ["2023-02-29", "2023-13", "2023-00-10", "25/12/2022", "yesterday", "2023-1-5"]
    )
    def test_invalid(self, value: str) -> None:
        assert codes(check(date_sample_prep=value)) == [ChecklistCode.INVALID_DATE]

    def test_year_first_slashes_get_a_suggestion(self) -> None:
        result = check(date_sample_prep="2022/3/4")
        assert codes(result) == [ChecklistCode.INVALID_DATE]
        assert "2022-03-04" in result.errors[0].message

    @pytest.mark.parametrize("value", ["2024-06-16", "2024-07", "2025"])
    def test_future(self, value: str) -> None:
        assert codes(check(date_sample_prep=value)) == [ChecklistCode.DATE_IN_FUTURE]

    def test_date_object_from_json(self) -> None:
        assert check(date_sample_prep=date(2020, 1, 2)).values["date_sample_prep"] == "2020-01-02"


class TestBiologicalRepeat:
    @pytest.mark.parametrize(("value", "number"), [("1", 1), (" 12 ", 12), (3, 3), (2.0, 2)])
    def test_valid(self, value: object, number: int) -> None:
        assert check(biological_repeat=value).values["biological_repeat"] == number

    @pytest.mark.parametrize("value", ["0", "-1", "1.5", "one", "3.0", 0, -2, 2.5, True])
    def test_invalid(self, value: object) -> None:
        assert codes(check(biological_repeat=value)) in (
            [ChecklistCode.INVALID_INTEGER],
            [ChecklistCode.INVALID_TYPE],
        )


class TestFreeText:
    def test_kept_as_written_trimmed_never_upper_cased(self) -> None:
        result = check(tissue="  liver LEFT lobe ", mouse_model="c57bl/6J", description="a\r\nb")
        assert result.values["tissue"] == "liver LEFT lobe"
        assert result.values["mouse_model"] == "c57bl/6J"
        assert result.values["description"] == "a\nb"

    def test_too_long(self) -> None:
        assert check(tissue="x" * 1024).valid
        result = check(tissue="x" * 1025)
        assert codes(result) == [ChecklistCode.TOO_LONG]

    def test_control_character(self) -> None:
        assert codes(check(tissue="liv\x07er")) == [ChecklistCode.CONTROL_CHARACTER]

    def test_nested_value(self) -> None:
        assert codes(check(tissue={"a": 1})) == [ChecklistCode.INVALID_TYPE]


class TestAttributes:
    def test_unknown_fields_become_attributes_with_warning(self) -> None:
        result = check(Weight=2.5, Batch="b1", Empty="  ")
        assert result.attributes == {"Weight": "2.5", "Batch": "b1"}
        assert sorted(w.field for w in result.warnings if w.code == "UNKNOWN_COLUMN") == [
            "Batch",
            "Weight",
        ]

    def test_explicit_attributes_are_silent(self) -> None:
        result = check(attributes={"Batch": "b1", "n": 3})
        assert result.attributes == {"Batch": "b1", "n": "3"}
        assert result.warnings == []

    def test_nested_attribute_is_an_error(self) -> None:
        result = check(attributes={"Batch": ["a"]})
        assert codes(result) == [ChecklistCode.INVALID_ATTRIBUTES]

    def test_two_spellings_of_one_field(self) -> None:
        result = validate_sample({"Sample_ID": "S1", "sample id": "S2", "Organism": "human"})
        assert codes(result) == [ChecklistCode.DUPLICATE_FIELD]


class TestNormaliseField:
    def test_returns_value_and_warning(self) -> None:
        value, warning = normalise_field("sex", "F")
        assert value == "female"
        assert warning is not None
        assert warning.code == ChecklistCode.NORMALISED

    def test_raises_with_code(self) -> None:
        with pytest.raises(ChecklistError) as caught:
            normalise_field("date_sample_prep", "03/04/2022")
        assert caught.value.code == ChecklistCode.AMBIGUOUS_DATE

    def test_blank_optional_is_none(self) -> None:
        assert normalise_field("tissue", " ") == (None, None)


class SampleIn(BaseModel):
    sample_id: str
    sex: str | None = None

    @field_validator("sample_id", "sex", mode="before")
    @classmethod
    def _checklist(cls, value: object, info):  # type: ignore[no-untyped-def]
        return pydantic_check(info.field_name, value)


class TestPydantic:
    def test_normalises(self) -> None:
        assert SampleIn(sample_id="S1", sex="MALE").sex == "male"

    def test_error_type_is_the_checklist_code(self) -> None:
        with pytest.raises(ValidationError) as caught:
            SampleIn(sample_id="S 1", sex="x")
        types = sorted(e["type"] for e in caught.value.errors())
        assert types == ["INVALID_SAMPLE_ID", "INVALID_SEX"]


# Columns a sheet may have: fields (a second spelling of one is a duplicate), attributes
# reported or explicit, and a name that is not a valid attribute name.
_COLUMNS = [
    ("sample_id", "Sample_ID"),
    ("sample", "Sample"),
    ("organism", "Organism"),
    ("sex", "Sex"),
    ("date_sample_prep", "Date"),
    ("biological_repeat", "Rep"),
    ("description", "Description"),
    ("tissue", "Tissue"),
    ("sample_id", "sample id"),
    (None, "Batch"),
    (None, " Weight "),
    ("attributes", "Note"),
    (None, "   "),
]
_CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "S1",
            "s1",
            "S 1",
            "mouse",
            "Mus musculus",
            "F",
            "robot",
            "2023-05",
            "03/04/2022",
            "2999-01-01",
            "1",
            "0",
            "x\ry",
            "a\x07b",
            " padded ",
            "\u00e9t\u00e9",
            "\xa0nbsp",
            "x" * 1100,
        ]
    ),
    st.text(max_size=8),
    st.integers(-3, 3),
    st.none(),
    st.just(2.5),
    st.just([1]),
)


@hyp_settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(_COLUMNS))), min_size=1, max_size=8, unique=True),
    st.data(),
    st.booleans(),
)
def test_rows_checked_at_once_are_checked_as_one_by_one(
    picked: list[int], data: st.DataObject, report_unknown: bool
) -> None:
    columns = [_COLUMNS[index] for index in picked]
    rows = data.draw(st.lists(st.lists(_CELLS, min_size=len(columns), max_size=len(columns))))
    one_by_one = ResolvedColumns(columns, today=TODAY, report_unknown=report_unknown)
    at_once = ResolvedColumns(columns, today=TODAY, report_unknown=report_unknown)
    assert at_once.check_rows(rows) == [one_by_one.check(row) for row in rows]
    assert at_once.check_rows(rows) == [one_by_one.check(row) for row in rows]  # remembered


def test_rows_of_another_width_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per column"):
        ResolvedColumns([("sample_id", "Sample_ID")]).check_rows([["S1", "extra"]])

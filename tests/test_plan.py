"""Planning semantics: compound codes, private blocks, repeating groups, depth, SR, dates."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, EnhancedCTImageStorage

from deid import ActionCode, Policy, ProfileOption, Rule, build_plan, load_policy
from deid.plan import ITEM_TAG
from deid.plancache import Context as _Context
from deid.plancache import PlanCache
from tests.factories import item, make_dataset, roundtrip, sequence_of, to_bytes

BASIC = Policy()
SAFE_PRIVATE = Policy(options=frozenset({ProfileOption.RETAIN_SAFE_PRIVATE}))


def action(plan, tag: int, path=()) -> str:
    decision = plan.find(tag, path)
    assert decision is not None, f"no decision for {tag:08X} at {path}"
    return decision.action.value


def test_every_element_at_every_depth_gets_one_decision() -> None:
    ds = make_dataset()
    ds.ReferencedStudySequence = sequence_of(item(ReferencedSOPInstanceUID="1.2.3.9"))
    plan = build_plan(ds, BASIC)
    top = [d for d in plan.decisions if not d.path and not d.in_file_meta]
    assert sorted(d.tag for d in top) == sorted(int(t) for t in ds.keys())
    meta = [d for d in plan.decisions if d.in_file_meta]
    assert sorted(d.tag for d in meta) == sorted(int(t) for t in ds.file_meta.keys())


def test_file_meta_is_replaced_and_its_instance_uid_remapped() -> None:
    plan = build_plan(make_dataset(), BASIC)
    meta = {d.tag: d for d in plan.decisions if d.in_file_meta}
    assert meta[0x00020003].action is ActionCode.U
    assert meta[0x00020016].action is ActionCode.X  # Source AE title never carried over
    assert meta[0x00020010].action is ActionCode.X
    retained = build_plan(make_dataset(), Policy(options=frozenset({ProfileOption.RETAIN_UIDS})))
    assert {d.tag: d for d in retained.decisions if d.in_file_meta}[
        0x00020003
    ].action is ActionCode.K


@pytest.mark.parametrize(
    ("sop_class", "expected", "type_"),
    [
        (CTImageStorage, "X", "3"),  # General Equipment: Type 3
        (EnhancedCTImageStorage, "D", "1"),  # Enhanced General Equipment: Type 1
        ("1.2.3.4.5.6.7", "D", "1"),  # unknown SOP Class: strictest Type of any IOD
    ],
    ids=["ct-type3", "enhanced-ct-type1", "unknown-iod"],
)
def test_compound_code_resolves_by_iod_type(sop_class: str, expected: str, type_: str) -> None:
    ds = make_dataset(sop_class=sop_class, DeviceSerialNumber="SN-1")
    decision = build_plan(ds, BASIC).find(0x00181000)
    assert decision is not None
    assert decision.code is ActionCode.X_Z_D
    assert decision.action.value == expected
    assert decision.attribute_type is not None and decision.attribute_type.value == type_


def test_compound_code_type2_gives_z_and_undefined_place_gives_x() -> None:
    ds = make_dataset()  # Patient ID is Type 2 in the Patient module
    plan = build_plan(ds, BASIC)
    assert action(plan, 0x00100020) == "Z"
    nested = make_dataset()
    nested.PerformedProtocolCodeSequence = sequence_of(item(DeviceSerialNumber="SN-1"))
    decision = build_plan(nested, BASIC).find(0x00181000, ((0x00400260, 0),))
    assert decision is not None and decision.action is ActionCode.X
    assert "not defined at this place" in decision.reason


def test_x_z_u_star_type1_keeps_sequence_and_remaps_inside() -> None:
    # GSPS: Referenced Series Sequence > Referenced Image Sequence is Type 1 -> U (keep, remap)
    gsps = "1.2.840.10008.5.1.4.1.1.11.1"
    image = item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID="1.2.826.0.1.99.1")
    series = item(SeriesInstanceUID="1.2.826.0.1.99", ReferencedImageSequence=sequence_of(image))
    ds = make_dataset(sop_class=gsps, ReferencedSeriesSequence=sequence_of(series))
    plan = build_plan(ds, BASIC)
    series_path = ((0x00081115, 0),)
    seq = plan.find(0x00081140, series_path)
    assert seq is not None and seq.code is ActionCode.X_Z_U
    assert seq.action is ActionCode.U and seq.attribute_type is not None
    assert seq.attribute_type.value == "1"
    image_path = ((0x00081115, 0), (0x00081140, 0))
    assert action(plan, 0x00081155, image_path) == "U"
    assert action(plan, 0x00081150, image_path) == "K"  # well-known SOP Class UID
    # In a CT image the same sequence at the top level is Type 3 -> removed
    ct = build_plan(make_dataset(ReferencedImageSequence=sequence_of(image)), BASIC)
    assert action(ct, 0x00081140) == "X"


def test_three_levels_deep_names_uids_and_dates() -> None:
    inner = item(PersonName="DOE^JANE", UID="1.2.826.0.1.5.5", Date="20200102", TextValue="note")
    level2 = item(ContentSequence=sequence_of(inner))
    level1 = item(PerformedProtocolCodeSequence=sequence_of(level2), CodeValue="1")
    ds = make_dataset(AnatomicRegionSequence=sequence_of(level1))
    plan = build_plan(ds, BASIC)
    path3 = ((0x00082218, 0), (0x00400260, 0), (0x0040A730, 0))
    assert action(plan, 0x0040A123, path3) == "D"
    assert action(plan, 0x0040A124, path3) == "U"
    assert action(plan, 0x0040A121, path3) == "D"
    # Content Sequence is D in the Basic Profile: free text inside it is dummied too
    decision = plan.find(0x0040A160, path3)
    assert (
        decision is not None and decision.action is ActionCode.D and decision.rule is Rule.CONTEXT
    )


def test_unlisted_person_name_is_emptied_anywhere() -> None:
    ds = make_dataset(AnatomicRegionSequence=sequence_of(item(CodeValue="1")))
    ds.AnatomicRegionSequence[0].add_new(0x00142006, "PN", "SOMEONE^ELSE")  # Evaluator Name
    ds.add_new(0x00140104, "PN", "REVIEW^ER")  # Secondary Reviewer Name: not in E.1-1
    plan = build_plan(ds, BASIC)
    for tag, path in ((0x00142006, ((0x00082218, 0),)), (0x00140104, ())):
        decision = plan.find(tag, path)
        assert decision is not None
        assert decision.action is ActionCode.Z and decision.rule is Rule.PERSON_NAME
    research = build_plan(ds, Policy(pseudonymize=frozenset({"EvaluatorName"})))
    decision = research.find(0x00142006, ((0x00082218, 0),))
    assert decision is not None and decision.pseudonym


def test_unlisted_dates_by_vr_under_each_dates_option() -> None:
    ds = make_dataset()
    ds.add_new(0x00181014, "TM", "101010")  # Time of Secondary Capture (listed)
    ds.add_new(0x00209156, "US", 1)
    ds.add_new(0x00287FE0, "UR", "x")
    ds.add_new(0x0008041F, "DT", "20200101101010")  # Study Update DateTime: unlisted
    base = build_plan(ds, BASIC)
    assert action(base, 0x0008041F) == "Z"
    full = build_plan(ds, Policy(options=frozenset({ProfileOption.RETAIN_LONG_FULL_DATES})))
    assert action(full, 0x0008041F) == "K"
    modified = build_plan(ds, Policy(options=frozenset({ProfileOption.RETAIN_LONG_MODIFIED_DATES})))
    assert action(modified, 0x0008041F) == "C"
    assert action(modified, 0x00080020) == "C"  # Study Date, listed: C under modified dates


def test_device_dates_follow_the_date_shift_when_both_options_apply() -> None:
    ds = make_dataset(DateOfLastCalibration="20230101")
    both = Policy(
        options=frozenset(
            {ProfileOption.RETAIN_DEVICE_IDENTITY, ProfileOption.RETAIN_LONG_MODIFIED_DATES}
        )
    )
    decision = build_plan(ds, both).find(0x00181200)
    assert decision is not None and decision.action is ActionCode.C
    assert decision.option is ProfileOption.RETAIN_LONG_MODIFIED_DATES
    device_only = Policy(options=frozenset({ProfileOption.RETAIN_DEVICE_IDENTITY}))
    assert action(build_plan(ds, device_only), 0x00181200) == "K"


def test_well_known_uids_are_never_remapped() -> None:
    ds = make_dataset(
        ReferencedImageSequence=sequence_of(
            item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID="1.2.826.0.1.77")
        )
    )
    ds.add_new(0x0008010C, "UI", "2.16.840.1.113883.6.96")  # Coding Scheme UID: unlisted
    plan = build_plan(ds, BASIC)
    assert action(plan, 0x00080016) == "K"
    decision = plan.find(0x00080016)
    assert decision is not None and decision.rule is Rule.WELL_KNOWN_UID


def _private(
    ds: Dataset, group: int, block: int, creator: str, elements: dict[int, tuple[str, object]]
) -> None:
    ds.add_new((group << 16) | block, "LO", creator)
    for low, (vr, value) in elements.items():
        ds.add_new((group << 16) | (block << 8) | low, vr, value)


@pytest.mark.parametrize("block", [0x10, 0x11, 0x4F], ids=lambda b: f"block-{b:02X}")
def test_safe_private_kept_by_group_creator_and_low_byte_wherever_the_block_sits(
    block: int,
) -> None:
    ds = make_dataset()
    _private(
        ds,
        0x7053,
        block,
        "Philips PET Private Group",
        {0x00: ("DS", "1.5"), 0x77: ("LO", "secret")},
    )
    _private(ds, 0x0029, 0x10, "UNKNOWN VENDOR", {0x01: ("LO", "secret")})
    plan = build_plan(ds, SAFE_PRIVATE)
    assert action(plan, (0x7053 << 16) | block) == "K"  # its creator, since one element stays
    assert action(plan, (0x7053 << 16) | (block << 8) | 0x00) == "K"
    assert action(plan, (0x7053 << 16) | (block << 8) | 0x77) == "X"
    assert action(plan, 0x00290010) == "X"
    assert action(plan, 0x00291001) == "X"
    basic = build_plan(ds, BASIC)
    assert action(basic, (0x7053 << 16) | (block << 8)) == "X"
    assert action(basic, (0x7053 << 16) | block) == "X"


def test_private_creator_text_must_match_exactly() -> None:
    ds = make_dataset()
    _private(ds, 0x7053, 0x10, "Philips PET Private Grp", {0x00: ("DS", "1.5")})
    plan = build_plan(ds, SAFE_PRIVATE)
    assert action(plan, 0x70531000) == "X"
    assert action(plan, 0x70530010) == "X"


def test_private_data_element_characteristics_mark_blocks_safe() -> None:
    ds = make_dataset()
    _private(ds, 0x0019, 0x10, "ACME 1", {0x01: ("LO", "a"), 0x02: ("LO", "b"), 0x03: ("LO", "c")})
    safe = item(
        PrivateGroupReference=0x0019,
        PrivateCreatorReference="ACME 1",
        BlockIdentifyingInformationStatus="MIXED",
        NonidentifyingPrivateElements=[0x01],
    )
    action_item = item(IdentifyingPrivateElements=[0x02], DeidentificationAction="Z")
    safe.DeidentificationActionSequence = sequence_of(action_item)
    ds.PrivateDataElementCharacteristicsSequence = sequence_of(safe)
    plan = build_plan(ds, SAFE_PRIVATE)
    assert action(plan, 0x00191001) == "K"
    assert action(plan, 0x00191002) == "Z"
    assert action(plan, 0x00191003) == "X"
    assert action(plan, 0x00190010) == "K"


def test_private_sequence_is_parsed_item_by_item() -> None:
    ds = make_dataset()
    inner = item(PatientName="DOE^JANE", CodeValue="1")
    ds.add_new(0x70530010, "LO", "Philips PET Private Group")
    ds.add_new(0x705310AA, "SQ", Sequence([inner]))  # not in E.3.10-1: removed whole
    plan = build_plan(ds, SAFE_PRIVATE)
    assert action(plan, 0x705310AA) == "X"
    assert plan.find(0x00100010, ((0x705310AA, 0),)) is None


def test_overlay_group_goes_with_its_data_and_curves_go() -> None:
    ds = make_dataset()
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60003000, "OW", b"\x00\x01")
    ds.add_new(0x60004000, "LT", "overlay for DOE")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50003000, "OW", b"\x00\x01")
    for policy in (BASIC, Policy(options=frozenset({ProfileOption.CLEAN_GRAPHICS}))):
        plan = build_plan(ds, policy)
        for tag in (0x60000010, 0x60000011, 0x60003000, 0x60004000, 0x50000005, 0x50003000):
            assert action(plan, tag) == "X", f"{tag:08X} {policy.options}"


def test_clean_structured_content_applies_table_e341() -> None:
    sr = make_dataset(sop_class="1.2.840.10008.5.1.4.1.1.88.33")
    concept = item(CodeValue="121022", CodingSchemeDesignator="DCM", CodeMeaning="Accession Number")
    accession = item(
        ValueType="TEXT", TextValue="ACC1", ConceptNameCodeSequence=sequence_of(concept)
    )
    comment_name = item(CodeValue="121106", CodingSchemeDesignator="DCM", CodeMeaning="Comment")
    comment = item(
        ValueType="TEXT", TextValue="seen by DOE", ConceptNameCodeSequence=sequence_of(comment_name)
    )
    other_name = item(CodeValue="999", CodingSchemeDesignator="99LOCAL", CodeMeaning="Local")
    other = item(ValueType="TEXT", TextValue="x", ConceptNameCodeSequence=sequence_of(other_name))
    sr.ContentSequence = sequence_of(accession, comment, other)
    options = frozenset({ProfileOption.CLEAN_STRUCTURED_CONTENT, ProfileOption.CLEAN_DESCRIPTORS})
    plan = build_plan(sr, Policy(options=options))
    first = plan.find(ITEM_TAG, ((0x0040A730, 0),))
    assert first is not None and first.action is ActionCode.X and first.rule is Rule.STRUCTURED
    assert action(plan, 0x0040A160, ((0x0040A730, 1),)) == "C"  # Comment: Clean Descriptors C
    assert action(plan, 0x0040A160, ((0x0040A730, 2),)) == "C"  # unlisted concept: text scrubbed
    no_clean = build_plan(sr, Policy(options=frozenset({ProfileOption.CLEAN_STRUCTURED_CONTENT})))
    comment_item = no_clean.find(ITEM_TAG, ((0x0040A730, 1),))
    assert comment_item is not None and comment_item.action is ActionCode.X


def test_specimen_preparation_step_content_items_are_content_items() -> None:
    """Specimen Preparation Sequence items hold their content items one level down, in
    Specimen Preparation Step Content Item Sequence: Table E.3.4-1 decides those."""
    concept = item(
        CodeValue="121041", CodingSchemeDesignator="DCM", CodeMeaning="Specimen Identifier"
    )
    identifier = item(
        ValueType="TEXT", TextValue="S19-1_A", ConceptNameCodeSequence=sequence_of(concept)
    )
    step = item(SpecimenPreparationStepContentItemSequence=sequence_of(identifier))
    specimen = item(SpecimenIdentifier="S19-1", SpecimenPreparationSequence=sequence_of(step))
    ds = make_dataset(SpecimenDescriptionSequence=sequence_of(specimen))
    where = ((0x00400560, 0), (0x00400610, 0), (0x00400612, 0))
    structured = Policy(options=frozenset({ProfileOption.CLEAN_STRUCTURED_CONTENT}))
    cleaned = build_plan(ds, structured)
    removed = cleaned.find(ITEM_TAG, where)
    assert removed is not None and removed.action is ActionCode.X
    assert removed.rule is Rule.STRUCTURED
    # without the option the step items are ordinary items: no E.3.4-1 verdict
    assert build_plan(ds, BASIC).find(ITEM_TAG, where) is None
    # and the same sequence anywhere else is no content item sequence
    elsewhere = make_dataset(SpecimenPreparationStepContentItemSequence=sequence_of(identifier))
    plan = build_plan(
        elsewhere, Policy(options=frozenset({ProfileOption.CLEAN_STRUCTURED_CONTENT}))
    )
    assert plan.find(ITEM_TAG, ((0x00400612, 0),)) is None


def test_clean_descriptors_drops_local_codes_and_scrubs_meanings() -> None:
    local = item(CodeValue="X1", CodingSchemeDesignator="99MYSITE", CodeMeaning="Dr Doe protocol")
    standard = item(CodeValue="77477000", CodingSchemeDesignator="SCT", CodeMeaning="CT")
    ds = make_dataset(ReasonForRequestedProcedureCodeSequence=sequence_of(local, standard))
    plan = build_plan(ds, Policy(options=frozenset({ProfileOption.CLEAN_DESCRIPTORS})))
    removed = plan.find(ITEM_TAG, ((0x0040100A, 0),))
    assert removed is not None and removed.action is ActionCode.X
    assert plan.find(ITEM_TAG, ((0x0040100A, 1),)) is None
    assert action(plan, 0x00080104, ((0x0040100A, 1),)) == "C"


def test_overrides_and_keep_lists_win_everywhere() -> None:
    policy = Policy(overrides={"StudyDescription": "K", "(0008,0060)": "X"})
    ds = make_dataset(
        StudyDescription="CHEST", AnatomicRegionSequence=sequence_of(item(Modality="CT"))
    )
    plan = build_plan(ds, policy)
    assert action(plan, 0x00081030) == "K"
    assert action(plan, 0x00080060) == "X"
    assert action(plan, 0x00080060, ((0x00082218, 0),)) == "X"
    assert plan.find(0x00081030).rule is Rule.OVERRIDE


def test_patient_age_is_derived_with_retain_patient_characteristics() -> None:
    plan = build_plan(
        make_dataset(), Policy(options=frozenset({ProfileOption.RETAIN_PATIENT_CHARACTERISTICS}))
    )
    decision = plan.find(0x00101010)
    assert (
        decision is not None and decision.rule is Rule.DERIVED and decision.action is ActionCode.D
    )
    assert plan.derived_age
    assert build_plan(make_dataset(), BASIC).find(0x00101010) is None


def test_group_lengths_command_and_group_0004_elements_are_removed() -> None:
    ds = make_dataset()
    ds.add_new(0x00080000, "UL", 100)
    ds.add_new(0x00000002, "UI", "1.2.3")
    ds.add_new(0x00041500, "CS", "DIR")
    plan = build_plan(ds, BASIC)
    for tag in (0x00080000, 0x00000002, 0x00041500):
        decision = plan.find(tag)
        assert (
            decision is not None
            and decision.action is ActionCode.X
            and decision.rule is Rule.STRUCTURE
        )


def test_plan_is_immutable_and_explains_without_values() -> None:
    ds = make_dataset()
    plan = build_plan(ds, load_policy("upload"))
    with pytest.raises(AttributeError):
        plan.decisions[0].action = ActionCode.K  # type: ignore[misc]
    text = "\n".join(plan.explain_lines())
    for value in (
        "DOE",
        "JOHNATHAN",
        "MRN7781234",
        "19610415",
        "20230912",
        "ACC99812",
        "ELSEWHERE",
        "1.2.826.0.1.3680043.8.498.1001",
    ):
        assert value not in text
    assert "(0010,0010)\tPatientName\tPN\tZ*" in text
    assert plan.counts()["U"] == 5


def _same_structure_pair(first: bool) -> Dataset:
    """Two objects with the same tags and VRs at every level whose values decide differently:
    a well-known vs a site UID, a local vs a standard code, a safe vs an unknown creator."""
    ds = make_dataset()
    ds.DerivationCodeSequence = sequence_of(
        item(CodeValue="1", CodingSchemeDesignator="DCM", CodeMeaning="m", CodingSchemeUID="")
    )
    ds.DerivationCodeSequence[0].add_new(0x0008010C, "UI", CTImageStorage if first else "1.2.3.4.5")
    ds.AdmittingDiagnosesCodeSequence = sequence_of(
        item(CodeValue="X1", CodingSchemeDesignator="99LOCAL" if first else "DCM", CodeMeaning="m")
    )
    creator = "Philips PET Private Group" if first else "Philips PET Private Grp"
    _private(ds, 0x7053, 0x10, creator, {0x00: ("DS", "1.5")})
    return roundtrip(to_bytes(ds))


@pytest.mark.parametrize("order", ["first-then-second", "second-then-first"])
def test_a_level_template_decides_values_per_object(order: str) -> None:
    """The per-structure templates (plancache) give every object the plan it would get alone."""
    policy = load_policy("upload")
    objects = [_same_structure_pair(True), _same_structure_pair(False)]
    if order == "second-then-first":
        objects.reverse()
    cache: dict[str, PlanCache] = {}
    shared = [build_plan(obj, policy, cache) for obj in objects]
    (per_class,) = cache.values()
    assert ((), _Context()) in {key[:2] for key in per_class.templates}  # the top level
    for obj, plan in zip(objects, shared, strict=True):
        alone = build_plan(roundtrip(to_bytes(obj)), policy)
        assert plan.decisions == alone.decisions
    first, second = shared if order == "first-then-second" else shared[::-1]
    ref_class = (((0x00089215, 0),), 0x0008010C)
    assert first.find(ref_class[1], ref_class[0]).action is ActionCode.K  # type: ignore[union-attr]
    assert second.find(ref_class[1], ref_class[0]).action is ActionCode.U  # type: ignore[union-attr]
    local_item = ((0x00081084, 0),)
    assert first.find(ITEM_TAG, local_item).action is ActionCode.X  # type: ignore[union-attr]
    assert second.find(ITEM_TAG, local_item) is None
    assert action(first, 0x70531000) == "K"
    assert action(second, 0x70531000) == "X"

"""The knowledge data files (scan/catalog/, scan/spec/, scan/generator/, teacher/knowledge/data/, judge/data/,
tasks/data/, corpus/data/): each has its source header and the shape its loader expects, a broken edit stops with one
line naming the file and the key, and the spec's copy of what the scanner's C++ source says agrees with the
generator's (a disagreement is a finding)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from secml_recipes import knowledge_files
from secml_recipes.knowledge_files import KnowledgeFileError, parse

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "secml_recipes"
TEACHER_TABLES = (
    "attack",
    "autostart",
    "debian_files",
    "hosts",
    "ioc",
    "modules",
    "packages",
    "privileged",
    "scanner",
    "sysctl",
    "units",
)
LOADERS = [
    "secml_recipes.scan.catalog",
    "secml_recipes.scan.spec_5_0_0",
    "secml_recipes.scan.v5_0_0",
    "secml_recipes.scan.host",
    "secml_recipes.scan.legacy",
    *(f"secml_recipes.teacher.knowledge.{name}" for name in TEACHER_TABLES),
    "secml_recipes.judge.knowledge",
    "secml_recipes.tasks.behaviours",
    "secml_recipes.tasks.constraints",
    "secml_recipes.corpus.episodes",
]
DATA_FILES = sorted(
    p.relative_to(ROOT).as_posix()
    for folder in (
        "scan/catalog",
        "scan/spec",
        "scan/generator",
        "teacher/knowledge/data",
        "judge/data",
        "tasks",
        "tasks/data",
        "corpus/data",
    )
    for p in (PACKAGE / folder).glob("*.yaml")
)


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict]:
    for module in LOADERS:
        importlib.import_module(module)
    return knowledge_files.SCHEMAS


def test_every_data_file_has_a_loader_with_a_schema(schemas):
    assert DATA_FILES, "no data files found"
    assert sorted(schemas) == DATA_FILES


@pytest.mark.parametrize("path", DATA_FILES)
def test_data_file_matches_its_schema(path, schemas):
    data = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schemas[path])
    jsonschema.validate(data, schemas[path], cls=jsonschema.Draft202012Validator)
    # a schema that accepts anything checks nothing: every top-level table has its shape
    assert schemas[path].get("additionalProperties") is False, f"{path}: its schema lets unknown tables through"


@pytest.mark.parametrize("path", DATA_FILES)
def test_data_file_says_where_its_values_come_from(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lower())
    header = "\n".join(header)
    assert len(header.splitlines()) >= 3, f"{path}: no header comment (what the table is, its source, how to edit)"
    assert any(word in header for word in ("source", "chosen by this project")), f"{path}: header names no source"
    assert "to edit" in header, f"{path}: header does not say how to edit it"


def _first_table(path: str, schemas: dict) -> str:
    return next(iter(schemas[path]["properties"]))


@pytest.mark.parametrize("path", DATA_FILES)
def test_missing_table_is_one_line_naming_file_and_key(path, schemas):
    data = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
    key = _first_table(path, schemas)
    del data[key]
    with pytest.raises(KnowledgeFileError) as err:
        parse(yaml.safe_dump(data), path, schemas[path])
    message = str(err.value)
    assert "\n" not in message and message.startswith(path) and key in message


def test_wrong_type_names_the_nested_key(schemas):
    path = "secml_recipes/teacher/knowledge/data/privileged.yaml"
    data = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
    del data["stock"][3]["package"]
    data["capabilities"][0]["purpose"] = 7
    with pytest.raises(KnowledgeFileError, match=r"^secml_recipes/teacher/knowledge/data/privileged\.yaml: key "):
        parse(yaml.safe_dump(data), path, schemas[path])
    del data["capabilities"]
    data["stock"][3]["package"] = "passwd"
    with pytest.raises(KnowledgeFileError, match="key stock/3|capabilities"):
        parse(yaml.safe_dump(data), path, schemas[path])


def test_invalid_yaml_is_one_line_with_its_line_number(schemas):
    path = "secml_recipes/scan/catalog/units.yaml"
    with pytest.raises(KnowledgeFileError) as err:
        parse("units:\n  - {unit: a, template: [\n", path, schemas[path])
    assert "\n" not in str(err.value) and str(err.value).startswith(path + ": line ")


def test_spec_and_generator_agree_on_what_the_scanner_source_says():
    """The spec's transcription (scan/spec/) and the generator's (scan/generator/, v5_0_0.py) of the same C++ tables."""
    from secml_recipes.scan import spec_5_0_0 as spec
    from secml_recipes.scan import v5_0_0

    assert spec.SEVERITY_SCORE == v5_0_0.SEVERITY_SCORE
    assert spec.HARDENING_SYSCTLS == v5_0_0.HARDENING_SYSCTLS
    mounts = {f.name: (f.severities, f.title, f.descriptions) for f in spec.FORMS["mounts"]}
    assert mounts == {f"mount:{r}": ((sev,), title, (desc,)) for r, (sev, title, desc) in v5_0_0.MOUNT_RULES.items()}
    (unit,) = spec.FORMS["systemd_units"]
    recommendations = v5_0_0.UNIT_RECOMMENDATIONS
    assert spec.PATTERNS["UNIT_KEYS"] == "|".join(key for key, *_ in recommendations)
    assert unit.descriptions == tuple(
        d for _, _, _, bad, good in recommendations for d in (good, bad, f"{bad} (missing)")
    )
    assert {e for _, e, *_ in recommendations} == set(unit.values["expected"].split("|"))
    for id_, title, sev, desc in v5_0_0.LOCKDOWN.values():
        (form,) = [f for f in spec.FORMS["kernel_hardening"] if re.fullmatch(f.id, id_)]
        assert (form.title, form.severities, form.descriptions) == (title, (sev,), (desc,))


def test_spec_reads_no_table_of_the_generator():
    source = (PACKAGE / "scan" / "spec_5_0_0.py").read_text(encoding="utf-8")
    assert "scan.v5_0_0 import" not in source and "from secml_recipes.scan import v5_0_0" not in source
    # and no file of the other's folder (a loaded path is a string literal: "spec/..." or "generator/...")
    for module, other in (("spec_5_0_0.py", '"generator/'), ("v5_0_0.py", '"spec/'), ("host.py", '"spec/')):
        assert other not in (PACKAGE / "scan" / module).read_text(encoding="utf-8"), f"{module} reads {other}"


FORMS_FILE = "secml_recipes/scan/spec/5_0_0_forms.yaml"
_MOUNT_FAMILY = {
    "each": [{"rule": "tmp-x", "sev": "low", "title": "T", "desc": "D"}],
    "form": {
        "name": "mount:{{rule}}",
        "id": "mount:{{rule|re}}:(?P<mount>/.*)",
        "title": "{{title}}",
        "severities": ["{{sev}}"],
        "descriptions": ["{{desc}}"],
        "metadata": {"mount": "PATH"},
        "required": ["mount"],
    },
}


def _broken(**changes) -> dict:
    form = dict(_MOUNT_FAMILY["form"], **changes)
    return {"each": _MOUNT_FAMILY["each"], "form": form}


def test_forms_file_expands_families_and_named_patterns():
    from secml_recipes.scan import spec_5_0_0 as spec

    (form,) = spec._forms("mounts", [_MOUNT_FAMILY])
    assert (form.name, form.id, form.title) == ("mount:tmp-x", r"mount:tmp\-x:(?P<mount>/.*)", "T")
    assert (form.severities, form.descriptions, form.values) == (("low",), ("D",), {"mount": "/.*"})
    (sysctl,) = [f for f in spec.FORMS["kernel_hardening"] if f.name == "sysctl:sysrq"]
    assert sysctl.id == "kernel:sysctl:sysrq" and sysctl.title == r"sysrq\ controls"
    assert sysctl.values["path"] == "/proc/sys/kernel/sysrq" and sysctl.values["expected"] == "0"


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"id": "mount:{{rul}}"}, "forms/mounts/0/form/id: no row field or pattern named 'rul'"),
        ({"id": "mount:{{rule|upper}}"}, "forms/mounts/0/form/id: unknown filter 'upper'"),
        ({"id": "mount:(?P<mount>/.*"}, "forms/mounts/0/form/id: not a regular expression"),
        ({"metadata": {"mount": "[a-"}}, "forms/mounts/0/form/metadata/mount: not a regular expression"),
        ({"severities": ["severe"]}, "forms/mounts/0/form/severities: ['severe'] not among"),
        ({"required": ["mount", "device"]}, "forms/mounts/0/form/required: ['device'] have no metadata pattern"),
    ],
)
def test_broken_form_is_one_line_naming_file_and_key(changes, key):
    from secml_recipes.scan import spec_5_0_0 as spec

    with pytest.raises(KnowledgeFileError) as err:
        spec._forms("mounts", [_broken(**changes)])
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{FORMS_FILE}: key {key}")


def test_forms_family_names_an_unknown_spec_table():
    from secml_recipes.scan import spec_5_0_0 as spec

    with pytest.raises(
        KnowledgeFileError, match=r"key forms/x/0/each: spec/5_0_0\.yaml has no table of rows named 'nope'$"
    ):
        spec._forms("x", [{"each": "nope", "form": _MOUNT_FAMILY["form"]}])


def test_generator_file_wrong_type_is_one_line(schemas):
    path = "secml_recipes/scan/generator/host.yaml"
    data = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
    data["option_sets"]["developer_laptop"][5]["flags"][2] = 10  # an unquoted flag argument
    with pytest.raises(KnowledgeFileError) as err:
        parse(yaml.safe_dump(data), path, schemas[path])
    assert str(err.value) == f"{path}: key option_sets/developer_laptop/5/flags/2: 10 is not of type 'string'"

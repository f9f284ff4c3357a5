"""``drp classify SIGNALS_FILE [--json]``: the command around the classification rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from drp.commands.classify import register

pytestmark = pytest.mark.unit

SIGNALS_DIR = Path(__file__).resolve().parents[2] / "runbooks" / "signals"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A group, as in ``drp``, so that ``classify`` is a subcommand and not the root."""

    register(app)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["classify", *args])
    return result.exit_code, result.stdout, result.stderr


def flat(text: str) -> str:
    """The output with line wrapping undone, so that assertions do not depend on the width."""
    return " ".join(text.split())


def write(tmp_path: Path, text: str, name: str = "signals.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("example", "category", "articles"),
    [
        ("dc_power_loss.yaml", "katastropik", ["Pasal 7(1)(a)"]),
        ("dc_heat.yaml", "katastropik", ["Pasal 7(1)(b)"]),
        (
            "ceisa_database_failure_2021_07.yaml",
            "parsial_nasional",
            ["Pasal 5(1)(a)", "Pasal 6(1)(a)"],
        ),
        ("office_skp_down.yaml", "parsial_lokal", ["Pasal 5(1)(a)"]),
    ],
)
def test_each_example_signals_file_classifies_as_its_comment_says(
    app: typer.Typer, example: str, category: str, articles: list[str]
) -> None:
    code, out, _ = run(app, str(SIGNALS_DIR / example), "--json")
    assert code == 0
    disaster = json.loads(out)["disaster"]
    assert disaster["category"]["id"] == category
    assert [t["article"] for t in disaster["triggers"]] == articles


def test_the_example_files_are_all_covered() -> None:
    assert sorted(p.name for p in SIGNALS_DIR.glob("*.yaml")) == [
        "ceisa_database_failure_2021_07.yaml",
        "dc_heat.yaml",
        "dc_power_loss.yaml",
        "office_skp_down.yaml",
    ]


def test_human_output_shows_category_triggers_declarer_stages_and_coordination(
    app: typer.Typer,
) -> None:
    code, out, _ = run(app, str(SIGNALS_DIR / "dc_heat.yaml"))
    text = flat(out)
    assert code == 0
    assert "Bencana TIK Katastropik" in text
    assert "Pasal 7(1)(b)" in text
    assert "62.5% of the DC server area" in text
    assert "Direktur" in text and "IT Director" in text
    assert text.index("Disaster Recovery Plan") < text.index("pelayanan manual")
    assert "Pasal 13 huruf g" in text
    assert "Lampiran B" in text and "Lampiran C" in text


def test_human_output_for_a_local_disaster_says_pasal_13_does_not_apply_and_shows_notes(
    app: typer.Typer,
) -> None:
    code, out, _ = run(app, str(SIGNALS_DIR / "office_skp_down.yaml"))
    text = flat(out)
    assert code == 0
    assert "Bencana TIK Parsial bersifat lokal" in text
    assert "Kepala Kantor Bea dan Cukai" in text
    assert "none: Pasal 13 applies to national and catastrophic disasters only" in text
    assert "Notes" in text and "Pasal 5(5)" in text


def test_no_disaster_exits_zero_with_null_disaster_in_json(
    app: typer.Typer, tmp_path: Path
) -> None:
    code, out, _ = run(app, write(tmp_path, "dc_power: true\n"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["disaster"] is None
    assert any("no disaster" in note for note in data["notes"])


def test_no_disaster_is_said_plainly_to_a_person(app: typer.Typer, tmp_path: Path) -> None:
    code, out, _ = run(app, write(tmp_path, "{}\n"))
    assert code == 0
    assert "No disaster" in out


def test_a_json_signals_file_is_read_as_json(app: typer.Typer, tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"national_network": False}), "signals.json")
    code, out, _ = run(app, path, "--json")
    assert code == 0
    assert json.loads(out)["disaster"]["triggers"][0]["article"] == "Pasal 7(1)(c)"


def test_json_output_carries_ids_and_both_labels(app: typer.Typer) -> None:
    _, out, _ = run(app, str(SIGNALS_DIR / "ceisa_database_failure_2021_07.yaml"), "--json")
    disaster = json.loads(out)["disaster"]
    assert disaster["declarer_role"] == {
        "id": "direktur",
        "label_id": "Direktur (bidang teknologi informasi)",
        "label_en": "IT Director",
    }
    assert disaster["stages"][0]["id"] == "prosedur_kondisi_tidak_normal"
    assert disaster["notification"]["recipients"]["id"] == "kepala_kantor_bea_cukai"
    assert [r["id"] for r in disaster["rapid_assessment"]["authors"]] == [
        "direktur",
        "pejabat_ditunjuk",
    ]
    assert len(disaster["coordination"]) == 7


def test_bad_input_exits_2_and_lists_every_problem(app: typer.Typer, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server_zones:\n"
        "  - {zone: A, area_m2: -3, celsius: hot}\n"
        "services_down_nationally:\n"
        "  - {service_id: ceisa, criticality: high}\n",
    )
    code, out, err = run(app, path, "--json")
    text = flat(err)
    assert code == 2
    assert out == ""
    assert "3 problems" in text
    assert "server_zones[0].area_m2: expected an area above 0 m², got -3" in text
    assert "server_zones[0].celsius: expected a number, got 'hot'" in text
    assert "services_down_nationally[0].criticality: 'high' is not an ADB criticality" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: [\n", "not valid YAML or JSON"),
        ("", "the signals file is empty"),
        ("- dc_power\n", "(top level): expected a mapping"),
    ],
    ids=["broken-yaml", "empty", "not-a-mapping"],
)
def test_unreadable_signals_exit_2(
    app: typer.Typer, tmp_path: Path, content: str, message: str
) -> None:
    code, _, err = run(app, write(tmp_path, content))
    assert code == 2
    assert message in flat(err)


def test_a_missing_file_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = run(app, str(tmp_path / "absent.yaml"))
    assert code == 2
    assert "cannot read the signals file" in flat(err)

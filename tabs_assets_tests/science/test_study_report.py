"""tabs_assets.science.study_report: a study's report."""

import io

import pandas as pd

from tabs_assets_tests.science.test_study_tables import CRAFTED


def test_report_names_the_study_and_tabulates_the_counterfactuals() -> None:
    from tabs_assets.config.study import StudyConfig
    from tabs_assets.science.study_report import build_study_report
    from tabs_assets.science.study_tables import build_study_table

    members = CRAFTED.assign(cf_l1=[1.0, 2.0, 3.0, 0.5, 0.5, 4.0, float("nan")], cf_ynn=0.5)
    table = build_study_table(
        members.to_dict("records"), ["dataset", "explainer"], ["validity_rate", "cf_l1", "cf_ynn"]
    )
    study = StudyConfig.model_validate(
        {"name": "crafted", "description": "Two explainers.", "report": {"rows": ["dataset"]}}
    )
    report = build_study_report(table, study)
    cells = pd.read_csv(io.BytesIO(report.files["counterfactuals.csv"]))
    cake = cells[(cells["dataset"] == "cake") & (cells["explainer"] == "latent_shift")].iloc[0]
    assert cake["cf_l1"] == "2 ± 0.58" and cake["cf_ynn"] == "50 ± 0"  # shares in percent
    text = report.files["report.md"].decode()
    assert text.startswith("# Study report: crafted\n\nTwo explainers.")
    assert "7 member configs in 3 groups (up to 3 seeds each)" in text
    assert "mean ± SEM" in text and "## counterfactuals" in text

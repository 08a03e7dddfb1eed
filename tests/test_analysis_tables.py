"""Tables 1-2 from fabricated classification runs: cells worked out by hand, the paper's
values beside the reproduced ones for Caltech-256 only, and the frequency figure."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from scopeloss.analysis import aggregate, precision_figure, tables
from fakes import make_cls_run

COUNTS = [40, 20, 10, 4]


@pytest.fixture()
def table_dir(tmp_path):
    root, runs = tmp_path / "results", []
    # caltech256/plain, scope: two seeds; per-run mean 0.25 and 0.5, std (ddof 0) 0.25, 0.5
    runs.append(make_cls_run(root, "caltech256", "plain", "scope", 1, [0.5, 0.0, 0.5, 0.0], COUNTS))
    runs.append(make_cls_run(root, "caltech256", "plain", "scope", 2, [1.0, 0.0, 1.0, 0.0], COUNTS))
    # ce and weighted_ce: one seed each; ce mean 0.4, std sqrt(0.05)
    runs.append(make_cls_run(root, "caltech256", "plain", "ce", 1, [0.7, 0.5, 0.3, 0.1], COUNTS))
    runs.append(make_cls_run(root, "caltech256", "plain", "weighted_ce", 1, [0.2] * 4, COUNTS))
    # augmented: pel only; and a digits_lt experiment (no paper values)
    runs.append(make_cls_run(root, "caltech256", "augmented", "pel", 1, [0.6] * 4, COUNTS))
    runs.append(make_cls_run(root, "digits_lt", "plain", "focal", 3, [0.9, 0.8, 0.7, 0.6], COUNTS))
    runs.append(make_cls_run(root, "digits_lt", "plain", "ce", 1, [0.1] * 4, COUNTS,
                             finished=False))
    out = tmp_path / "tables"
    aggregate.write_tables(out, aggregate.aggregate_classification(runs)[0])
    return out


def test_precision_cells_by_hand(table_dir):
    per_class = pd.read_parquet(table_dir / "classification_per_class.parquet")
    tidy = tables.precision_table(per_class)
    rep = tidy[(tidy["source"] == "reproduced") & (tidy["dataset"] == "caltech256")
               & (tidy["experiment"] == "plain")].set_index(["statistic", "loss"])
    assert rep.loc[("mean", "scope"), "value"] == pytest.approx(0.375)
    assert rep.loc[("mean", "scope"), "spread"] == pytest.approx(np.std([0.25, 0.5], ddof=1))
    assert rep.loc[("mean", "scope"), "cell"] == "0.3750 ± 0.1768"
    assert rep.loc[("std", "scope"), "cell"] == "0.3750 ± 0.1768"
    assert rep.loc[("mean", "ce"), "cell"] == "0.4000"
    assert rep.loc[("std", "ce"), "cell"] == f"{np.sqrt(0.05):.4f}" == "0.2236"
    assert rep.loc[("std", "weighted_ce"), "cell"] == "0.0000"
    paper = tidy[tidy["source"] == "paper"]
    assert set(paper["dataset"]) == {"caltech256"}  # not for digits_lt
    p = paper.set_index(["experiment", "statistic", "loss"])["value"]
    assert p[("plain", "mean", "scope")] == 0.2814 and p[("plain", "std", "ce")] == 0.2471
    assert p[("augmented", "mean", "pel")] == 0.5823 and p[("augmented", "std", "focal")] == 0.2227


def test_precision_table_files(table_dir, tmp_path, capsys):
    fig = tmp_path / "figures" / "precision_by_class_frequency.png"
    assert tables.main(["--tables", str(table_dir), "--out-dir", str(table_dir),
                        "--figure", str(fig)]) == 0
    assert "digits_lt/plain/ce/seed1: missing, left out" in capsys.readouterr().err
    md = (table_dir / "precision_plain.md").read_text()
    # the paper's column order PEL, SL, FL, CEL, then the baselines; present losses only
    # (+ the paper's four for Caltech-256)
    assert "| Precision metric | PEL | SL | FL | CEL | Weighted CE |" in md
    assert "| Mean precision | – | 0.3750 ± 0.1768 | – | 0.4000 | 0.2000 |" in md
    assert "| Mean precision (paper) | 0.2303 | 0.2814 | 0.2320 | 0.2383 | – |" in md
    assert "| Std of precision (paper) | 0.2116 | 0.2436 | 0.2360 | 0.2471 | – |" in md
    assert "| Seeds | – | 2 | – | 1 | 1 |" in md
    digits = md.split("### digits_lt, plain")[1]
    assert "(paper)" not in digits and "| Mean precision | 0.7500 |" in digits
    tex = (table_dir / "precision_plain.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert r"Mean precision & -- & 0.3750 $\pm$ 0.1768 & -- & 0.4000 & 0.2000 \\" in tex
    aug = (table_dir / "precision_augmented.md").read_text()
    assert "| Mean precision | 0.6000 | – | – | – |" in aug
    assert "| Std of precision (paper) | 0.2055 | 0.2195 | 0.2227 | 0.2196 |" in aug
    csv = pd.read_csv(table_dir / "precision_plain.csv")
    assert set(csv["dataset"]) == {"caltech256", "digits_lt"}
    assert list(csv.columns) == tables.TIDY_COLUMNS
    with Image.open(fig) as img:
        assert img.text["Description"] == ("panels: caltech256/plain, caltech256/augmented, "
                                           "digits_lt/plain")
    assert fig.stat().st_size > 10_000


def test_tables_cli_names_a_missing_table(tmp_path, capsys):
    assert tables.main(["--tables", str(tmp_path), "--out-dir", str(tmp_path)]) == 1
    assert "classification_per_class.parquet (or .csv) not found" in capsys.readouterr().err


def test_beyond_the_paper_experiments_get_their_own_tables_and_lift_panels(tmp_path):
    root, runs = tmp_path / "results", []
    runs.append(make_cls_run(root, "caltech256", "plain", "scope", 1, [0.8, 0.6, 0.2, 0.0], COUNTS))
    runs.append(make_cls_run(root, "caltech256", "plain_balanced", "scope", 1,
                             [0.7, 0.6, 0.5, 0.4], COUNTS))
    runs.append(make_cls_run(root, "caltech256", "augmented_cuda", "ce", 1, [0.5] * 4, COUNTS))
    out = tmp_path / "tables"
    aggregate.write_tables(out, aggregate.aggregate_classification(runs)[0])
    fig = tmp_path / "fig.png"
    assert tables.main(["--tables", str(out), "--out-dir", str(out), "--figure", str(fig)]) == 0
    plain = (out / "precision_plain.md").read_text()
    assert "### caltech256, plain\n" in plain and "(paper)" in plain  # Table 1 as before
    assert "| Precision metric | PEL | SL | FL | CEL |" in plain
    bal = (out / "precision_plain_balanced.md").read_text()
    assert "### caltech256, plain_balanced (beyond the paper)" in bal
    assert "class-balanced re-sampling" in bal and "(paper)" not in bal
    assert "| Precision metric | SL |" in bal and "| Mean precision | 0.5500 |" in bal
    cuda = (out / "precision_augmented_cuda.md").read_text()
    assert "CUDA augmentation curriculum" in cuda and "(paper)" not in cuda
    assert set(pd.read_csv(out / "precision_plain_balanced.csv")["source"]) == {"reproduced"}
    # order: the paper's two, then the new ones
    assert [tables.experiment_sort_key(e)[0] for e in
            ("plain", "augmented", "plain_balanced", "augmented_cuda")] == [0, 1, 2, 3]
    result = precision_figure.plot_precision_by_frequency(out, fig)
    assert result["lifts"] == [("caltech256", "plain_balanced", "plain")]  # no augmented run
    with Image.open(fig) as img:
        assert img.text["Description"] == (
            "panels: caltech256/plain, caltech256/plain_balanced, caltech256/augmented_cuda; "
            "lift: caltech256/plain_balanced-plain")

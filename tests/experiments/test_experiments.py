"""The lecture's experiments (mlcsc.experiments): end to end at a tiny scale, the science where
it is robust at that scale, bad input, and the command line."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcsc.experiments import csc_recovery, layered_pursuits, sparseland_recovery
from mlcsc.experiments._common import make_parser

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[2]


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _check_outputs(folder: Path, name: str, rows: list[dict], columns: set[str]) -> None:
    header, written = _read_csv(folder / f"{name}.csv")
    assert columns <= set(header)
    assert len(written) == len(rows)
    png = folder / f"{name}.png"
    assert png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0


# ---------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def sparseland(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparseland")
    rows = sparseland_recovery.run(quick=True, output=folder, cardinalities=(1, 2, 8, 24))
    return folder, rows


@pytest.fixture(scope="module")
def csc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csc")
    rows = csc_recovery.run(quick=True, output=folder, trials=4, l0_inf_values=(1, 4))
    return folder, rows


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layered")
    rows = layered_pursuits.run(
        quick=True,
        output=folder,
        trials=6,
        noise_levels=(0.0, 0.4, 1.6),
        contrasts=(1.0, 0.25),
        depths=(1, 2),
        depth=2,
        n_iter=20,
    )
    return folder, rows


def test_sparseland_writes_csv_png_and_tensorboard(sparseland):
    folder, rows = sparseland
    # 2 dictionaries × 4 cardinalities × 3 pursuits
    assert len(rows) == 2 * 4 * 3
    _check_outputs(
        folder,
        "sparseland_recovery",
        rows,
        {"dictionary", "coherence", "cardinality", "pursuit", "success_rate", "omp_bp_bound"},
    )


def test_sparseland_science(sparseland):
    _, rows = sparseland
    for dictionary in {row["dictionary"] for row in rows}:
        omp = [r for r in rows if r["dictionary"] == dictionary and r["pursuit"] == "omp"]
        assert omp[0]["cardinality"] == 1 and omp[0]["success_rate"] == 1.0
        bound = omp[0]["omp_bp_bound"]
        beyond = [r["success_rate"] for r in omp if r["cardinality"] >= bound]
        assert all(a >= b for a, b in zip(beyond, beyond[1:], strict=False))
        assert omp[-1]["success_rate"] < 1.0  # 24 atoms are far beyond the bound
    # the worst-case theorems: below its bound every pursuit succeeds in every trial
    assert all(row["success_rate"] == 1.0 for row in rows if row["within_bound"])
    coherences = {row["dictionary"]: row["coherence"] for row in rows}
    assert coherences["identity_hadamard"] == pytest.approx(1 / 8)


def test_csc_writes_outputs_and_recovers_within_the_local_bound(csc):
    folder, rows = csc
    assert len(rows) == 2 * 2
    _check_outputs(
        folder, "csc_recovery", rows, {"l0_inf", "l0_inf_max", "pursuit", "success_rate"}
    )
    assert all(row["trials"] == 4 for row in rows)  # explicit values beat the quick ones
    first = [row for row in rows if row["l0_inf"] == 1]
    assert all(row["l0_inf_max"] == 1 and row["within_bound"] for row in first)
    assert all(row["success_rate"] == 1.0 for row in first)
    assert all(row["l0_inf_max"] <= row["l0_inf"] for row in rows)


def test_layered_writes_outputs(layered):
    folder, rows = layered
    # noise: 3 settings, contrast: 2, depth: 1 + 2 layers; 5 pursuits; depth 2 has 2 layers
    assert len(layered_pursuits.PURSUITS) == 5
    assert len(rows) == 5 * (3 * 2 + 2 * 2 + (1 + 2))
    _check_outputs(
        folder,
        "layered_pursuits",
        rows,
        {"sweep", "pursuit", "layer", "support_rate", "error_mean", "bound", "condition_rate"},
    )
    assert {row["pursuit"] for row in rows} == set(layered_pursuits.PURSUITS)
    assert (folder / "layered_pursuits_layers.png").stat().st_size > 1000


def test_layered_thresholding_error_grows_with_noise(layered):
    _, rows = layered
    for layer in (1, 2):
        errors = {
            row["noise"]: row["error_mean"]
            for row in rows
            if row["sweep"] == "noise"
            and row["pursuit"] == "layered_thresholding"
            and row["layer"] == layer
        }
        assert errors[1.6] > errors[0.0]
    bounds = [r for r in rows if r["pursuit"] in ("ml_ista", "ml_fista", "projection")]
    assert all(r["bound"] != r["bound"] for r in bounds)  # no theorem: NaN


def test_layered_nonneg_runs_without_output():
    rows = layered_pursuits.run(
        trials=3,
        noise_levels=(0.0,),
        contrasts=(1.0,),
        depths=(1,),
        depth=1,
        pursuits=("layered_thresholding", "layered_bp"),
        n_iter=10,
        nonneg=True,
    )
    assert len(rows) == 3 * 2  # one setting, three sweeps, two pursuits, one layer
    assert all(0.0 <= row["support_rate"] <= 1.0 for row in rows)
    assert all(row["threshold"] >= 0 for row in rows)


def test_layered_projection_recovers_the_deepest_support():
    """The experiment's own regime (its model, sampler and λ), noiseless, depth 3, contrast
    0.5: the ML-CSC projection finds the deepest support where layered thresholding, even
    with tuned thresholds, does not; every layer's code (``D_jΓ̂_j``) follows it."""
    rows = layered_pursuits.run(
        seed=1,
        trials=8,
        noise_levels=(0.0,),
        contrasts=(0.5,),
        depths=(3,),
        pursuits=("layered_thresholding", "projection"),
        n_iter=100,
    )
    setting = [row for row in rows if row["sweep"] == "noise"]
    deepest = {row["pursuit"]: row for row in setting if row["deepest"]}
    projection, forward = deepest["projection"], deepest["layered_thresholding"]
    # measured, seeds 0-3 (8 trials): projection rate 1.00 at every layer, deepest error
    # 0.015-0.031 (seed 1: 0.016); tuned LT deepest rate 0.12-0.62, error 0.26-0.77 (seed 1:
    # 0.26). Broken projections: returning its start (the forward pass, no FISTA) gives rate 0
    # at every layer and deepest error 1.4-1.7; stopping after 10 of the 100 iterations, rate
    # <= 0.125 and error 0.62-0.69.
    assert projection["support_rate"] >= 0.75
    assert projection["support_contained_rate"] == 1.0
    assert projection["error_mean"] < 0.1
    assert projection["error_mean"] <= forward["error_mean"]
    assert all(row["support_rate"] >= 0.75 for row in setting if row["pursuit"] == "projection")
    assert [row["threshold"] for row in setting if row["pursuit"] == "projection"] == [
        0.0,
        0.0,
        pytest.approx(layered_pursuits.DEFAULTS.bp_lambda),
    ]


# ---------------------------------------------------------------------------------- bad input
BAD_INPUT = [
    (sparseland_recovery, {"trials": 0}, "trials"),
    (sparseland_recovery, {"cardinalities": (0, 1)}, "cardinalities"),
    (sparseland_recovery, {"cardinalities": (65,)}, "cardinalities"),
    (sparseland_recovery, {"pursuits": ("omp", "lasso")}, "pursuits"),
    (sparseland_recovery, {"contrast": 0.0}, "contrast"),
    (sparseland_recovery, {"contrast": 1.5}, "contrast"),
    (csc_recovery, {"trials": -1}, "trials"),
    (csc_recovery, {"l0_inf_values": (0,)}, "l0_inf_values"),
    (csc_recovery, {"l0_inf_values": (1, 10_000)}, "l0_inf_values"),
    (csc_recovery, {"pursuits": ("ista",)}, "pursuits"),
    (csc_recovery, {"contrast": -0.5}, "contrast"),
    (layered_pursuits, {"noise_levels": (0.0, -0.1)}, "noise_levels"),
    (layered_pursuits, {"noise": -1.0}, "noise"),
    (layered_pursuits, {"contrasts": (0.0,)}, "contrasts"),
    (layered_pursuits, {"contrasts": (1.0, 1.5)}, "contrasts"),
    (layered_pursuits, {"contrast": 2.0}, "contrast"),
    (layered_pursuits, {"deepest_cardinality": 0}, "deepest_cardinality"),
    (layered_pursuits, {"deepest_cardinality": 10**6}, "deepest_cardinality"),
    (layered_pursuits, {"depths": (1, 4)}, "depths"),
    (layered_pursuits, {"pursuits": ("cnn",)}, "pursuits"),
    (layered_pursuits, {"trials": 0}, "trials"),
    (layered_pursuits, {"n_iter": 0}, "n_iter"),
]


@pytest.mark.parametrize(
    ("module", "params", "name"),
    BAD_INPUT,
    ids=[f"{m.NAME}-{'-'.join(p)}-{i}" for i, (m, p, _) in enumerate(BAD_INPUT)],
)
def test_bad_input_raises_before_any_work(tmp_path, module, params, name):
    output = tmp_path / "out"
    with pytest.raises(ValueError, match=name) as error:
        module.run(output=output, **params)
    assert "got" in str(error.value)
    assert not output.exists()


def test_validate_rejects_unknown_parameter():
    with pytest.raises(ValueError, match="unknown_option"):
        layered_pursuits.validate(unknown_option=1)
    with pytest.raises(TypeError, match="unknown_option"):  # as for an explicit signature
        layered_pursuits.run(unknown_option=1)
    with pytest.raises(TypeError, match="LayeredParams"):
        layered_pursuits.run(csc_recovery.QUICK)


# ---------------------------------------------------------------------------------- parameters
MODULES = [sparseland_recovery, csc_recovery, layered_pursuits]


@pytest.mark.parametrize("module", MODULES, ids=[m.NAME for m in MODULES])
def test_parameters_are_checked_dataclasses(module):
    defaults, quick = module.DEFAULTS, module.QUICK
    cls = type(defaults)
    assert dataclasses.is_dataclass(defaults) and cls.NAME == module.NAME
    assert defaults == cls() and not defaults.quick and defaults.output is None
    # quick: the defaults with QUICK_CHANGES; an explicit value beats a quick one
    assert quick.quick and quick == dataclasses.replace(defaults, quick=True, **cls.QUICK_CHANGES)
    assert module.validate(quick=True) == quick
    assert module.validate(quick=True, trials=3).trials == 3
    assert module.validate(trials=None, seed=None) == defaults  # None: the default
    assert module.validate(output="out").output == Path("out")
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.trials = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="trials must be an integer >= 1, got 0"):
        dataclasses.replace(quick, trials=0)  # a changed copy is checked again
    with pytest.raises(ValueError, match="seed"):
        cls(seed=-1)


def test_sequences_are_canonical_tuples():
    params = sparseland_recovery.validate(cardinalities=[1, 2], pursuits=["bp"], contrast=1)
    assert params.cardinalities == (1, 2) and params.pursuits == ("bp",)
    assert isinstance(params.contrast, float)
    with pytest.raises(ValueError, match="m must be an integer in \\[64, 65536\\]"):
        sparseland_recovery.SparselandParams(m=10)  # checked against n


# every option the command lines had before they were derived from the dataclasses
OPTIONS = {
    sparseland_recovery: "--n --m --cardinalities --pursuits --contrast --bp-lambda --bp-iter "
    "--support-fraction",
    csc_recovery: "--num-atoms --kernel-size --image-size --l0-inf-values --pursuits --contrast "
    "--bp-lambda --bp-iter --support-fraction",
    layered_pursuits: "--noise-levels --contrasts --depths --noise --contrast --depth --pursuits "
    "--deepest-cardinality --n-iter --bp-lambda --support-fraction --nonneg",
}


@pytest.mark.parametrize("module", MODULES, ids=[m.NAME for m in MODULES])
def test_command_line_has_an_option_per_parameter(module):
    parser = make_parser(type(module.DEFAULTS), module.__doc__)
    options = {o for action in parser._actions for o in action.option_strings}
    expected = {"-h", "--help", "--output", "--seed", "--trials", "--quick"}
    assert options == expected | set(OPTIONS[module].split())
    assert vars(parser.parse_args([])) == {}  # left out: the defaults apply


def test_command_line_values_reach_the_parameters():
    cls = layered_pursuits.LayeredParams
    argv = (
        "--output o --seed 3 --trials 2 --quick --noise-levels 0 0.5 --contrasts 1 --depths 1 2 "
        "--noise 0.1 --contrast 0.7 --depth 2 --pursuits ml_ista projection "
        "--deepest-cardinality 3 --n-iter 7 --bp-lambda 0.02 --support-fraction 0.2 --nonneg"
    ).split()
    params = cls.from_options(**vars(make_parser(cls, "").parse_args(argv)))
    assert params == cls(
        output=Path("o"),
        seed=3,
        trials=2,
        quick=True,
        noise_levels=(0.0, 0.5),
        contrasts=(1.0,),
        depths=(1, 2),
        noise=0.1,
        contrast=0.7,
        depth=2,
        pursuits=("ml_ista", "projection"),
        deepest_cardinality=3,
        n_iter=7,
        bp_lambda=0.02,
        support_fraction=0.2,
        nonneg=True,
    )
    text = " ".join(make_parser(cls, "").format_help().split())
    assert "--nonneg ReLU" in text and "(default: 300; with --quick: 100)" in text


# ---------------------------------------------------------------------------------- CLI
def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "mlcsc.experiments.sparseland_recovery", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_quick_run(tmp_path):
    result = _cli(["--quick", "--output", "tmp"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "success rate of exact support recovery" in result.stdout
    header, written = _read_csv(tmp_path / "tmp" / "sparseland_recovery.csv")
    assert "success_rate" in header and len(written) == 2 * 6 * 3
    assert (tmp_path / "tmp" / "sparseland_recovery.png").stat().st_size > 0


def test_cli_bad_argument_exits_2_with_one_line(tmp_path):
    result = _cli(["--quick", "--output", "tmp", "--trials", "0"], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: trials must be")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "tmp").exists()


@pytest.mark.parametrize(
    ("module", "args", "name"),
    [
        (csc_recovery, ["--contrast", "1.5"], "contrast"),
        (layered_pursuits, ["--noise-levels", "0", "-0.2"], "noise_levels"),
        (layered_pursuits, ["--pursuits", "layered_bp", "cnn"], "pursuits"),
    ],
)
def test_main_returns_2_on_bad_values(tmp_path, capsys, module, args, name):
    assert module.main(["--output", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and name in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["--no-such-option"], ["--trials", "abc"]])
def test_main_unparsable_arguments_exit_2(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        layered_pursuits.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")

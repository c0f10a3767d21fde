"""The catalogue of outputs: every table and figure the pipeline can build, in one place.

Each entry says what kind of output it is, which command produces its data, which result files
(under `results/<profile>/`) its report reads, and where its caption lives. The profile schema's
`extras` list, the workflow's targets, rule inputs and wildcard constraints
(workflow/rules/*.smk) and the README's list of outputs are generated from (or checked against)
this module. Importing it costs nothing: no torch, no pandas.

Kinds:
- `table`: a trained table: cells (`train`), gathered (`gather`), laid out as the paper prints it.
- `measurement`: a measured table or figure: FLOPs, timings, parameter counts (no training).
- `experiment`: a standalone experiment (no trained cells): Tables 1-2, 9, Figures 3, 6, 8, Lemma 4.
- `figure`: drawn from other outputs (trained cells' curves and checkpoints, or the profile's schedule).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CAPTIONS = Path(__file__).resolve().parent.parent / "report" / "captions"
KINDS = ("table", "measurement", "experiment", "figure")


@dataclass(frozen=True)
class Output:
    id: str  # table1 .. table15, fig1 .. fig15, or a data-only name (flops_models, lemma4)
    kind: str  # one of KINDS
    command: str  # what produces its data: `python -m mfcbench <command>` ("train + gather": trained cells)
    result: str | None = None  # the data file it leaves under results/<profile>/ (None: none of its own)
    report: str | None = None  # the command that writes reports/<id>.csv or .png: "report table", "report
    # figure", "visualise", or "self" (the producing command draws it); None: data only (the claims read it)
    inputs: tuple[str, ...] = ()  # result files the report step reads (relative to results/<profile>/); `tableN*.csv`:
    # table N and every rung of it (a key tableN_<rung>) the profile trains
    table: str | None = None  # the trained table whose cells a figure reads (drawn, saying so, without them)
    requires: str | None = None  # a profile key (dpath) that must be set for it to be built
    extra: bool = True  # listed in the profile's `extras` (trained tables come from `tables` instead)
    default: bool = True  # in the schema's default `extras`
    title: str = ""

    @property
    def is_figure(self) -> bool:
        return self.id.startswith("fig") or self.report == "report figure"

    @property
    def files(self) -> tuple[str, ...]:
        """What lands in reports/: <id>.csv for a table; <id>.png and the data behind it for a figure."""
        if self.report is None:
            return ()
        return (f"{self.id}.png", f"{self.id}.csv") if self.is_figure else (f"{self.id}.csv",)

    @property
    def caption(self) -> Path | None:
        """A figure's caption file (report/captions/<id>.rst); a table's caption is in core/published.yaml."""
        path = CAPTIONS / f"{self.id}.rst"
        return path if self.is_figure and path.exists() else None


def _table(number: int, kind: str, command: str, title: str, inputs: tuple[str, ...] = ()) -> Output:
    name = f"table{number}"
    return Output(name, kind, command, f"{name}.csv", "report table", inputs or (f"{name}.csv",),
                  extra=kind != "table", title=title)


def _figure(name: str, command: str, title: str, *, kind: str = "figure", report: str = "visualise",
            result: str | None = None, inputs: tuple[str, ...] = (), table: str | None = None, default: bool = True,
            requires: str | None = None) -> Output:
    return Output(name, kind, command, result, report, inputs, table=table, requires=requires, default=default,
                  title=title)


TRAINED = "train + gather"
OUTPUTS: tuple[Output, ...] = (
    _table(1, "experiment", "experiment discrepancy --conv standard", "gradient discrepancy across meshes, convolution"),
    _table(2, "experiment", "experiment discrepancy --conv mfc", "gradient discrepancy across meshes, MFC"),
    _table(3, "table", TRAINED, "blur estimation: iterations and #WU"),
    _table(4, "table", TRAINED, "denoising (STL10)"),
    _table(5, "table", TRAINED, "super-resolution (Urban100)"),
    _table(6, "table", TRAINED, "denoising (CelebA)"),
    _table(7, "table", TRAINED, "deeper networks"),
    _table(8, "table", TRAINED, "ESPCN, MFC-ESPCN and FNO-ESPCN"),
    _table(9, "experiment", "experiment sam", "SAM vs MFC-SAM mask quality"),
    _table(10, "table", TRAINED, "longer training (with Table 7's SGD cells)", ("table7.csv", "table10.csv")),
    _table(11, "measurement", "measure table11", "FLOPs: convolution vs MFC"),
    _table(12, "table", TRAINED, "random crops"),
    _table(13, "measurement", "models --params --format csv", "parameter counts"),
    _table(15, "measurement", "measure table15", "iteration time: SGD vs Multiscale-SGD"),
    Output("flops_models", "measurement", "measure flops-models", "flops_models.csv", title="FLOPs of every model"),
    Output("lemma4", "experiment", "experiment lemma4", "lemma4.csv", title="Lemma 4's bound, measured"),
    _figure("fig1", "visualise fig1", "Multiscale-SGD's schedule (Algorithm 1)"),
    _figure("fig2", "visualise fig2", "Full-Multiscale-SGD's schedule (Algorithm 2)"),
    _figure("fig3", "experiment kernels", "MFC kernels across meshes", kind="experiment", report="report figure",
            result="fig3.csv", inputs=("fig3.csv",)),
    _figure("fig4", TRAINED, "blur estimation curves, convolution vs MFC", report="report figure",
            inputs=("curves_table3.csv",), table="table3"),
    _figure("fig5", TRAINED, "denoising: validation metric against #WU", report="report figure",
            inputs=("curves_table4.csv",), table="table4"),
    _figure("fig6", "experiment sam", "SAM vs MFC-SAM masks (needs a SAM checkpoint)", kind="experiment", report="self",
            default=False, requires="sam/checkpoint"),
    _figure("fig7", "measure fig7", "forward time: convolution vs MFC", kind="measurement", report="report figure",
            result="fig7.csv", inputs=("fig7.csv",)),
    _figure("scaling", "measure scaling", "resolution scaling: measured SGD/x time ratio beside the #WU ratio "
            "(not in the paper)", kind="measurement", report="report figure", result="scaling.csv",
            inputs=("scaling.csv",)),
    _figure("ladder", TRAINED, "the gap to SGD against width, budget and resolution toward the paper's setting "
            "(not in the paper; the ladder profile)", report="report figure",
            inputs=("table4*.csv", "table5*.csv"), default=False),
    _figure("fig8", "experiment ddpm", "DDPM single scale vs Full-Multiscale", kind="experiment", report="self",
            result="fig8.csv"),
    _figure("fig9", "visualise fig9", "denoising predictions (Table 4's cells)", table="table4"),
    _figure("fig10", "visualise fig10", "denoising predictions (Table 4's cells)", table="table4"),
    _figure("fig11", "visualise fig11", "denoising predictions (Table 6's cells)", table="table6"),
    _figure("fig12", "visualise fig12", "denoising predictions (Table 6's cells)", table="table6"),
    _figure("fig13", "visualise fig13", "super-resolution predictions (Table 5's cells)", table="table5"),
    _figure("fig14", "visualise fig14", "super-resolution predictions (Table 5's cells)", table="table5"),
    _figure("fig15", "visualise fig15", "feature maps (Table 7's ResNet-18 cells; fresh models without them)",
            table="table7"),
)
CATALOGUE: dict[str, Output] = {o.id: o for o in OUTPUTS}


def get(output_id: str) -> Output:
    try:
        return CATALOGUE[output_id]
    except KeyError:
        raise KeyError(f"unknown output {output_id!r}; valid choices: {', '.join(CATALOGUE)}") from None


def ids(kind: str | None = None, *, extra: bool | None = None) -> list[str]:
    """Output ids in catalogue order, optionally of one kind and/or only those listed in `extras`."""
    return [o.id for o in OUTPUTS if (kind is None or o.kind == kind) and (extra is None or o.extra == extra)]


def extras(default_only: bool = False) -> list[str]:
    """The ids a profile may list under `extras` (the schema's enum; with default_only its default)."""
    return [o.id for o in OUTPUTS if o.extra and (o.default or not default_only)]


def trained_inputs(output_id: str) -> set[str]:
    """The trained tables whose gathered files (tableN.csv, curves_tableN.csv) an output's report reads:
    it can be built only when the profile trains them."""
    names = {f.removeprefix("curves_").removesuffix(".csv") for f in get(output_id).inputs}
    return names & set(ids("table"))


def by_command(prefix: str) -> dict[str, Output]:
    """Outputs whose producing command starts with `prefix` (e.g. "measure", "experiment discrepancy")."""
    return {o.id: o for o in OUTPUTS if o.command.startswith(prefix)}


def by_report(command: str) -> dict[str, Output]:
    """Outputs whose report step is `command` ("report table", "report figure", "visualise", "self")."""
    return {o.id: o for o in OUTPUTS if o.report == command}

"""`python -m mfcbench experiment {discrepancy,kernels,lemma4,sam,ddpm} --out FILE.csv`: a standalone experiment.

- discrepancy: Tables 1-2, the gradient discrepancy of Example 1 (`--conv standard` is Table 1,
  `--conv mfc` Table 2); options as a JSON/YAML mapping (`--options '{"norm": "plain"}'`).
- kernels: Figure 3's MFC impulse responses.  - lemma4: Lemma 4's least-squares fits.
- sam: Table 9 (and Figure 6 with `--figure`), SAM vs MFC-SAM; without `--checkpoint` the rows are
  NOT_RUN with the reason (nothing is downloaded).
- ddpm: Figure 8, DDPM single scale vs Full-Multiscale on MNIST (when prepared) or the digits: the rows
  (CSV, one per seed and run), `--figure` the titled sample grids and the FD per seed against its floor;
  options override experiments/ddpm.py OPTIONS (`--options '{"samples": 16, "seeds": [0, 1, 2]}'`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import yaml

from ..core.atomic import atomic_path, write_csv
from ..experiments.discrepancy import LOSSES, run_discrepancy
from ..experiments.kernels import figure3_kernels
from ..experiments.lemma4 import lemma4_residuals
from ..train.manifest import git_state, versions
from ._args import non_negative_int, positive_float, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", required=True)
    disc = sub.add_parser("discrepancy", help="Tables 1-2: gradient discrepancy across meshes (Example 1)")
    disc.add_argument("--conv", choices=(*LOSSES, "all"), default="all", help="standard (Table 1), mfc (Table 2)")
    disc.add_argument("--seed", type=non_negative_int, default=0, help="seeds the noisy draws")
    disc.add_argument("--options", default="{}", help="mapping of options (YAML/JSON), see experiments/discrepancy.py")
    kernels = sub.add_parser("kernels", help="Figure 3: MFC impulse responses for the caption's sweeps")
    kernels.add_argument("--size", type=positive_int, default=64)
    kernels.add_argument("--panels", type=positive_int, default=5)
    kernels.add_argument("--tau-scale", type=positive_float, default=1 / 256)
    lemma = sub.add_parser("lemma4", help="Lemma 4: least-squares fit of random 3x3 convolutions by MFCs")
    lemma.add_argument("--size", type=positive_int, default=16)
    lemma.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    sam, ddpm = add_sam_parser(sub), add_ddpm_parser(sub)
    for p in (disc, kernels, lemma, sam, ddpm):
        p.add_argument("--out", required=True, help="CSV file to write (atomically)")
    return parser


def add_sam_parser(sub) -> argparse.ArgumentParser:
    sam = sub.add_parser("sam", help="Table 9 / Figure 6: SAM vs MFC-SAM mask quality (needs a SAM ViT-B checkpoint)")
    sam.add_argument("--checkpoint", default=None, help="sam_vit_b_01ec64.pth; without it the rows are NOT_RUN")
    sam.add_argument("--sha256", default=None, help="expected sha256 of the checkpoint (checked when given)")
    sam.add_argument("--images", default=None, help="COCO=<dir>,ADE20k=<dir> (or one folder)")
    sam.add_argument("--limit", type=positive_int, default=1000, help="images per dataset (the paper's 1000)")
    sam.add_argument("--points-per-side", type=positive_int, default=64, help="SamAutomaticMaskGenerator's (64)")
    sam.add_argument("--device", default="cpu")
    sam.add_argument("--figure", default=None, help="Figure 6 PNG to write (needs a checkpoint and images)")
    sam.add_argument("--work-dir", default=None, help="fit report and figure folder (default: <out>'s folder/sam)")
    return sam


def add_ddpm_parser(sub) -> argparse.ArgumentParser:
    ddpm = sub.add_parser("ddpm", help="Figure 8: DDPM trained single scale vs Full-Multiscale, sample grids")
    ddpm.add_argument("--seed", type=non_negative_int, default=None, help="run this one seed only (replaces options' seeds)")
    ddpm.add_argument("--options", default="{}", help="mapping overriding experiments/ddpm.py OPTIONS (YAML/JSON)")
    ddpm.add_argument("--root", default="data", help="data root (MNIST is used when prepared there; else the embedded digits)")
    ddpm.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    ddpm.add_argument("--figure", default=None, help="Figure 8 PNG to write (ground truth | single scale | Full-Multiscale)")
    ddpm.add_argument("--work-dir", default=None, help="sample grids, samples.pt, fig8.json (default: <out>'s folder/<out stem>)")
    ddpm.add_argument("--seed-cap", type=positive_int, default=None,
                      help="seed plan: when the first round (--options seeds) leaves Figure 8's claim undecided, add "
                           "the seeds its power calculation asks for, up to this many in all (claims.yaml's test)")
    return ddpm


def discrepancy_frame(conv: str, seed: int, options: dict):
    """The tidy rows of Table 1 (conv standard) or 2 (mfc), with the provenance a report shows."""
    import pandas as pd

    result = run_discrepancy(options, seed)
    rows = [r for r in result["rows"] if conv in ("all", r["conv"])]
    commit, dirty = git_state()
    extra = {"experiment": "discrepancy", "seed": seed, "status": "ok", "dataset": "synthetic",
             "git_commit": commit, "git_dirty": dirty, "torch_version": versions().get("torch"),
             "options": yaml.safe_dump(result["options"], default_flow_style=True, width=10**6).strip()}
    return pd.DataFrame([{**row, **extra} for row in rows])


def _provenance(experiment: str, dataset: str | None, options: dict) -> dict:
    commit, dirty = git_state()
    return {"experiment": experiment, **({"dataset": dataset} if dataset else {}), "git_commit": commit, "git_dirty": dirty,
            "torch_version": versions().get("torch"),
            "options": yaml.safe_dump(options, default_flow_style=True, width=10**6).strip()}


def _options(text: str) -> dict:
    options = yaml.safe_load(text) or {}
    if not isinstance(options, dict):
        raise ValueError(f"--options must be a mapping, got {text!r}")
    return options


def _copy_figure(source: Path, target: str) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def sam_frame(args):
    """Table 9's rows keyed data/method as published.yaml's layout (NOT_RUN + reason without a checkpoint)."""
    import pandas as pd

    from ..experiments.sam import run_table9, table9_records
    from ..figures.fig6 import draw_figure6

    work = Path(args.work_dir or Path(args.out).parent / "sam")
    rows = run_table9(args.checkpoint, args.images, args.sha256, limit=args.limit,
                      points_per_side=args.points_per_side, out_dir=work if args.checkpoint else None,
                      device=args.device, figure6=draw_figure6)
    settings = {"limit": args.limit, "points_per_side": args.points_per_side, "images": args.images}
    frame = pd.DataFrame([{**row, **_provenance("sam", None, settings)} for row in table9_records(rows)])
    print(frame[["data", "method", "mean_predicted_iou", "mean_stability_score", "status", "reason"]].to_string(index=False))
    if args.figure:
        if (work / "figure6.png").is_file() and (frame["status"] == "OK").all():
            _copy_figure(work / "figure6.png", args.figure)
        else:
            reasons = "; ".join(sorted(set(frame["reason"].dropna().astype(str)) - {""}))
            raise ValueError(f"Figure 6 not drawn: {reasons or 'no figure6.png'}")
    return frame


def _ddpm_seed_plan(cap: int | None):
    """The DDPM's seed plan for run_fig8: the seeds claims.yaml's Figure 8 test asks for, up to `cap`."""
    if cap is None:
        return None
    import pandas as pd

    from ..experiments.ddpm import added_seeds
    from ..report.checks.experiments import fig8_seed_plan, fig8_tolerance
    from ..report.claims import load_claims

    tolerance = fig8_tolerance(load_claims())

    def plan(rows: list[dict]) -> tuple[list[int], str]:
        target, reason = fig8_seed_plan(pd.DataFrame(rows), tolerance, cap)
        return added_seeds(sorted({int(r["seed"]) for r in rows}), target), reason

    return plan


def ddpm_frame(args):
    """Figure 8's rows (ground_truth, single_scale, full_multiscale per seed; each names its dataset) with
    provenance; the samples, the grids and figure8.png under --work-dir."""
    import pandas as pd
    import torch

    from ..experiments.ddpm import config_with, run_fig8
    from ..figures.fig8 import draw_fig8

    options = _options(args.options)
    if args.seed is not None:
        options["seeds"] = [args.seed]
    cfg = config_with(**options)  # unknown option names fail here, before any training
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work_dir or Path(args.out).parent / Path(args.out).stem)
    rows = run_fig8(work, root=args.root, more_seeds=_ddpm_seed_plan(args.seed_cap), **options)
    draw_fig8(work)
    frame = pd.DataFrame([{**row, **_provenance("ddpm", None, cfg), "threads": torch.get_num_threads()}
                          for row in rows])
    if args.figure:
        _copy_figure(work / "figure8.png", args.figure)
    print(frame[["seed", "run", "wu_executed", "train_seconds", "mean_confidence", "confident_fraction",
                 "frechet_distance", "frechet_floor"]].to_string(index=False))
    return frame


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.name == "discrepancy":
            frame = discrepancy_frame(args.conv, args.seed, _options(args.options))
        elif args.name == "kernels":
            frame = figure3_kernels(size=args.size, panels=args.panels, tau_scale=args.tau_scale)
        elif args.name == "sam":
            frame = sam_frame(args)
        elif args.name == "ddpm":
            frame = ddpm_frame(args)
        else:
            frame = lemma4_residuals(seeds=args.seeds, size=args.size)
            print(frame.groupby(["family", "m"])["residual"].agg(["min", "max"]).to_string())
    except (ValueError, FileNotFoundError, yaml.YAMLError) as exc:
        print(f"mfcbench experiment {args.name}: error: {exc}", file=sys.stderr)
        return 2
    write_csv(args.out, frame)
    print(f"wrote {len(frame)} rows to {args.out}")
    return 0

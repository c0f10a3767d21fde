"""Quality verdicts on hand-made frames: every verdict, the convergence rule, the seed rule, the margin."""

from __future__ import annotations

import pandas as pd
import pytest

from mfcbench.report import claims as C

SPEC = {"id": "t", "claim": "similar", "check": "similar_quality", "input": "table4", "metric": "val_mse",
        "higher_is_better": False, "tolerance": {"margin": 0.20, "min_seeds": 3}}


def frame(ratios: dict[str, list[float]], converged=True, status=None, seeds=None) -> dict[str, pd.DataFrame]:
    """One network; SGD at 0.10 on every seed, each multiscale strategy at 0.10 * ratio."""
    rows = []
    for strategy, values in {"sgd": [1.0] * len(next(iter(ratios.values()))), **ratios}.items():
        for seed, r in zip(seeds or range(len(values)), values):
            rows.append({"table": "table4", "dataset": "skimage", "arch": "unet", "strategy": strategy, "seed": seed,
                         "status": (status or {}).get((strategy, seed), "ok"), "val_mse": 0.10 * r,
                         "wu_executed": 100.0 if strategy == "sgd" else 15.0,
                         "converged": converged if not isinstance(converged, dict) else converged.get((strategy, seed), True)})
    return {"table4": pd.DataFrame(rows)}


def verdict(results):
    out = C.check_similar_quality(SPEC, results)
    return out.verdict, out.reason


def test_reproduced_when_every_interval_is_inside_the_margin():
    v, reason = verdict(frame({"msgd": [1.05, 1.06, 1.04], "fmsgd": [1.10, 1.12, 1.08]}))
    assert v == "REPRODUCED", reason


def test_deviates_when_an_interval_lies_wholly_outside():
    v, reason = verdict(frame({"msgd": [1.05, 1.06, 1.04], "fmsgd": [1.50, 1.52, 1.48]}))
    assert v == "DEVIATES" and "unet/fmsgd" in reason


def test_inconclusive_when_the_interval_straddles_the_margin():
    v, reason = verdict(frame({"msgd": [1.0, 1.4, 1.1]}))
    assert v == "INCONCLUSIVE" and "straddles" in reason


def test_inconclusive_with_fewer_than_three_seeds():
    v, reason = verdict(frame({"msgd": [1.5, 1.5]}))
    assert v == "INCONCLUSIVE" and "only 2 seed(s)" in reason


def test_never_deviates_for_want_of_budget():
    """Far outside the margin, but a cell is not converged: our budget, not the paper -> INCONCLUSIVE."""
    v, reason = verdict(frame({"msgd": [1.5, 1.5, 1.5]}, converged={("sgd", 1): False}))
    assert v == "INCONCLUSIVE" and "SGD not converged (sgd seed 1)" in reason
    v, reason = verdict(frame({"msgd": [1.5, 1.5, 1.5]}, converged={("msgd", 0): False}))
    assert v == "INCONCLUSIVE" and "msgd not converged (msgd seed 0)" in reason
    # the same standard on both sides: an unconverged cell on either side decides nothing, either way
    v, reason = verdict(frame({"msgd": [1.05, 1.06, 1.04]}, converged={("msgd", 0): False}))
    assert v == "INCONCLUSIVE" and "msgd not converged (msgd seed 0)" in reason
    assert verdict(frame({"msgd": [1.05, 1.06, 1.04]}, converged={("sgd", 0): False}))[0] == "INCONCLUSIVE"


def test_not_run_without_pairs_and_diverged_cells_are_named():
    only_sgd = frame({"msgd": [1.0, 1.0, 1.0]})
    only_sgd["table4"] = only_sgd["table4"][only_sgd["table4"]["strategy"] == "sgd"]
    assert verdict(only_sgd)[0] == "NOT_RUN"
    v, reason = verdict(frame({"msgd": [1.0, 1.0, 1.0]}, status={("msgd", 2): "diverged"}))
    assert v == "DEVIATES" and "diverged on seed(s) [2]" in reason
    v, reason = verdict(frame({"msgd": [1.0, 1.0, 1.0]}, status={("sgd", 0): "diverged"}))
    assert v == "INCONCLUSIVE" and "SGD reference diverged" in reason


def test_a_diverged_multiscale_seed_deviates_beside_a_finished_sgd_seed_whatever_other_sgd_seeds_did():
    """Per paired seed: msgd diverged on seed 2 where SGD finished, so the pair deviates although SGD
    diverged on seed 0; a multiscale seed that diverged where SGD diverged too decides nothing."""
    v, reason = verdict(frame({"msgd": [1.0, 1.0, 1.0]}, status={("msgd", 2): "diverged", ("sgd", 0): "diverged"}))
    assert v == "DEVIATES" and "diverged on seed(s) [2]" in reason, reason
    v, reason = verdict(frame({"msgd": [1.0, 1.0, 1.0]}, status={("msgd", 0): "diverged", ("sgd", 0): "diverged"}))
    assert v == "INCONCLUSIVE" and "SGD reference diverged" in reason, reason


def test_higher_is_better_margin_is_below_sgd():
    spec = {**SPEC, "metric": "val_mse", "higher_is_better": True, "tolerance": {"margin": 0.05, "min_seeds": 3}}
    assert C.check_similar_quality(spec, frame({"msgd": [0.98, 0.97, 0.99]})).verdict == "REPRODUCED"
    assert C.check_similar_quality(spec, frame({"msgd": [0.80, 0.81, 0.79]})).verdict == "DEVIATES"
    assert C.check_similar_quality(spec, frame({"msgd": [1.3, 1.2, 1.4]})).verdict == "REPRODUCED"  # better


def test_student_t_interval():
    mean, low, high = C.mean_interval(pd.Series([1.0, 2.0, 3.0]))
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 * 1.0 / 3 ** 0.5, rel=1e-6)
    assert C.mean_interval(pd.Series([1.0]))[1] != C.mean_interval(pd.Series([1.0]))[1]  # NaN with one value


def test_approximate_claims_use_a_relative_tolerance():
    wu = {"workunits": pd.DataFrame({"strategy": ["sgd", "fmsgd"], "wu_closed_form": [15.0, 115 / 128]})}
    spec = {"id": "x", "claim": "", "check": "wu_ratio", "inputs": ["workunits"], "numerator": "sgd",
            "denominator": "fmsgd", "printed": "16", "tolerance": {"rel": 0.10}}
    assert C.check_wu_ratio(spec, wu).verdict == "REPRODUCED"          # 16.7 vs "roughly 16"
    assert C.check_wu_ratio({**spec, "tolerance": {"rel": 0.02}}, wu).verdict == "DEVIATES"


def _ttq_results(fmsgd_curve, converged=True, seeds=(0, 1, 2)):
    cells, curves = [], []
    for seed in seeds:
        for strategy, vals, wus in (("sgd", [0.5, 0.2, 0.11, 0.10], [100, 200, 300, 400]),
                                    ("fmsgd", fmsgd_curve, [5, 10, 20, 40])):
            cells.append({"table": "table4", "arch": "unet", "strategy": strategy, "seed": seed, "status": "ok",
                          "val_mse": vals[-1], "wu_executed": wus[-1], "train_seconds": wus[-1] / 100,
                          "converged": converged, "dataset": "skimage"})
            curves += [{"table": "table4", "arch": "unet", "strategy": strategy, "seed": seed, "iteration": i + 1,
                        "val_metric": v, "wu_executed": w, "train_seconds": w / 100} for i, (v, w) in enumerate(zip(vals, wus))]
    return {"table4": pd.DataFrame(cells), "curves_table4": pd.DataFrame(curves)}


TTQ = {"id": "q", "claim": "", "check": "time_to_quality", "input": "table4", "metric": "val_mse",
       "higher_is_better": False, "strategy": "fmsgd", "tolerance": {"margin": 0.20, "min_seeds": 3}}


def test_time_to_quality_rows_and_verdicts():
    from mfcbench.report.time_to_target import time_to_target

    res = _ttq_results([0.4, 0.13, 0.115, 0.11])
    ttq = time_to_target(res["table4"], res["curves_table4"], "val_mse", False, 0.20).set_index(["strategy", "seed"])
    assert ttq.loc[("sgd", 0), "target"] == pytest.approx(0.12)
    assert ttq.loc[("sgd", 0), "wu_to_target"] == 300 and ttq.loc[("fmsgd", 0), "wu_to_target"] == 20
    assert ttq.loc[("fmsgd", 0), "seconds_to_target"] == pytest.approx(0.2)
    assert C.check_time_to_quality(TTQ, res).verdict == "REPRODUCED"
    never = _ttq_results([0.4, 0.3, 0.25, 0.2])
    assert C.check_time_to_quality(TTQ, never).verdict == "DEVIATES"
    assert C.check_time_to_quality(TTQ, _ttq_results([0.4, 0.3, 0.25, 0.2], converged=False)).verdict == "INCONCLUSIVE"
    reached = C.check_time_to_quality(TTQ, _ttq_results([0.4, 0.13, 0.115, 0.11], converged=False))
    assert reached.verdict == "INCONCLUSIVE" and "SGD not converged" in reached.reason
    assert C.check_time_to_quality(TTQ, _ttq_results([0.4, 0.13, 0.115, 0.11], seeds=(0,))).verdict == "INCONCLUSIVE"
    assert C.check_time_to_quality(TTQ, {}).verdict == "NOT_RUN"


def test_where_limits_a_claim_to_the_cells_it_is_about():
    """Figure 4's claim is about the MFC cells: a standard-convolution network far off does not count."""
    good = frame({"msgd": [1.05, 1.06, 1.04]})["table4"].assign(arch="blur_mfc")
    bad = frame({"msgd": [3.0, 3.1, 2.9]})["table4"].assign(arch="blur_conv")
    results = {"table4": pd.concat([good, bad], ignore_index=True)}
    assert verdict(results)[0] == "DEVIATES"
    out = C.check_similar_quality({**SPEC, "where": {"arch": "blur_mfc"}, "published": "similar"}, results)
    assert out.verdict == "REPRODUCED" and "blur_conv" not in out.reason and out.published == "similar"


# --- defects of issue 19 item 7: each test failed before its fix ---------------------------------
def test_inside_the_margin_without_a_wu_column_is_inconclusive_and_says_why():
    """Was DEVIATES with a reason naming no deviating pair: the table lacks #WU, so only the cost half is undecided."""
    results = frame({"msgd": [1.05, 1.06, 1.04], "fmsgd": [1.10, 1.12, 1.08]})
    results["table4"] = results["table4"].drop(columns="wu_executed")
    out = C.check_similar_quality(SPEC, results)
    assert out.verdict == "INCONCLUSIVE", out.reason
    assert "records no #WU" in out.reason


def test_time_to_quality_ignores_a_diverged_cell_that_touched_the_target():
    """A Full-Multiscale cell that met the target and then diverged never counts as reaching it."""
    res = _ttq_results([0.4, 0.11, 5.0, 9.0])
    res["table4"].loc[res["table4"]["strategy"] == "fmsgd", "status"] = "diverged"
    assert C.check_time_to_quality(TTQ, res).verdict != "REPRODUCED"
    from mfcbench.report.time_to_target import time_to_target

    rows = time_to_target(res["table4"], res["curves_table4"], "val_mse", False, 0.20)
    assert not rows[rows["strategy"] == "fmsgd"]["reached"].any()


def test_table3_cost_block_sets_executed_ratios_beside_the_printed_ones():
    """The paper's #WU are executed ones (68.4, 158): the ratio beside them must come from wu_executed;
    the planned closed-form ratio is labelled apart, with nothing printed beside it."""
    from mfcbench.report.layout import COST_BLOCK, build_table

    rows = [{"table": "table3", "arch": "blur_mfc", "strategy": s, "seed": seed, "status": "ok", "iterations": 200,
             "val_loss": 0.1, "wu_closed_form": planned, "wu_executed": executed}
            for seed in (0, 1) for s, planned, executed in (("sgd", 1200.0, 1200.0), ("msgd", 185.0, 162.0),
                                                            ("fmsgd", 28.8, 30.8))]
    cost = build_table("table3", pd.DataFrame(rows))
    cost = cost[cost["block"] == COST_BLOCK]
    compared = cost[cost["published"].notna()].set_index("keys")
    assert compared.loc["strategy=msgd;arch=blur_mfc", "reproduced_mean"] == pytest.approx(1200 / 162)
    assert compared.loc["strategy=fmsgd;arch=blur_mfc", "reproduced_mean"] == pytest.approx(1200 / 30.8)
    assert compared["column"].str.contains("executed").all()
    planned = cost[cost["column"].str.contains("planned")]
    assert planned["published"].isna().all() and planned["reproduced_mean"].round(2).tolist() == [6.49, 41.67]


def test_claims_yaml_header_names_every_verdict():
    text = C.CLAIMS_PATH.read_text()
    listed = next(line for line in text[:text.index("- id:")].splitlines() if "Verdicts:" in line)
    listed = listed.split("Verdicts:")[1]
    assert all(v in listed for v in C.VERDICTS), listed


def test_figure8_rule_says_what_the_code_does():
    """One seed with a gap far past `decisive` x the tolerance is INCONCLUSIVE (the code); the rule's text
    used to say it DEVIATES."""
    spec = next(c for c in C.load_claims() if c["id"] == "fig8_ddpm_full_multiscale")
    rows = pd.DataFrame([{"run": "single_scale", "seed": 0, "status": "ok", "wu_executed": 100.0, "mean_confidence": 0.9,
                          "frechet_distance": 100.0, "dataset": "digits"},
                         {"run": "full_multiscale", "seed": 0, "status": "ok", "wu_executed": 10.0, "mean_confidence": 0.5,
                          "frechet_distance": 400.0, "dataset": "digits"}])
    out = C.CHECKS.get("ddpm_quality")(spec, {"fig8": rows})
    assert out.verdict == "INCONCLUSIVE" and "clearly outside" in out.reason
    text = C.CLAIMS_PATH.read_text()
    rule = text[text.index("- id: fig8_ddpm_full_multiscale"):]
    assert "which DEVIATES" not in rule and "never a DEVIATES" in rule


def _fig8_rows(fds, confs):
    rows = []
    for seed, ((ss, fm), (css, cfm)) in enumerate(zip(fds, confs)):
        rows += [{"run": "single_scale", "seed": seed, "status": "ok", "wu_executed": 100.0, "mean_confidence": css,
                  "frechet_distance": ss, "frechet_floor": 30.0, "dataset": "digits"},
                 {"run": "full_multiscale", "seed": seed, "status": "ok", "wu_executed": 80.0, "mean_confidence": cfm,
                  "frechet_distance": fm, "frechet_floor": 30.0, "dataset": "digits"}]
    return pd.DataFrame(rows)


def test_figure8_with_seeds_is_decided_on_paired_log_ratios_with_holm_and_a_seed_count():
    spec = next(c for c in C.load_claims() if c["id"] == "fig8_ddpm_full_multiscale")
    run = lambda fds, confs: C.CHECKS.get("ddpm_quality")(spec, {"fig8": _fig8_rows(fds, confs)})  # noqa: E731
    alike = run([(100, 101), (200, 198), (150, 152)], [(0.9, 0.9)] * 3)
    assert alike.verdict == "REPRODUCED" and "floor 30" in alike.reproduced
    # FD 2x on every seed, seed-paired: wholly outside 1.25 even with the seed-to-seed spread of FD
    worse = run([(100, 200), (300, 610), (150, 290)], [(0.9, 0.9)] * 3)
    assert worse.verdict == "DEVIATES" and "Holm" in worse.reason
    # the seed means alone (FD 183 vs 200: inside) would say REPRODUCED; paired ratios 0.5, 1.5, 1.2 decide nothing
    spread = run([(100, 50), (200, 300), (250, 300)], [(0.9, 0.9)] * 3)
    assert spread.verdict == "INCONCLUSIVE" and "needs" in spread.reason and "seeds" in spread.reason


def test_figure8_seed_plan_asks_the_power_calculations_count_up_to_the_cap():
    from mfcbench.report.checks.experiments import fig8_seed_plan, fig8_tolerance

    tol = fig8_tolerance(C.load_claims())
    spread = _fig8_rows([(100, 50), (200, 300), (250, 300)], [(0.9, 0.9)] * 3)
    needs = int(C.CHECKS.get("ddpm_quality")(
        next(c for c in C.load_claims() if c["id"] == "fig8_ddpm_full_multiscale"), {"fig8": spread}
    ).reason.split("needs ")[1].split(" seeds")[0])
    assert needs > 4
    assert fig8_seed_plan(spread, tol, cap=100) == (needs, f"3 seeds leave it undecided, the power calculation "
                                                           f"asks for {needs}: {needs - 3} added (cap 100)")
    target, reason = fig8_seed_plan(spread, tol, cap=4)
    assert target == 4 and "1 added (cap 4)" in reason
    target, reason = fig8_seed_plan(spread, tol, cap=3)
    assert target == 3 and "cap of 3 seeds is reached" in reason
    worse = _fig8_rows([(100, 200), (300, 610), (150, 290)], [(0.9, 0.9)] * 3)  # DEVIATES on 3 seeds
    assert fig8_seed_plan(worse, tol, cap=10) == (3, "3 seeds decide it (DEVIATES): none added")
    assert fig8_seed_plan(worse.iloc[:2], tol, cap=10)[0] == 1  # below min_seeds: no power calculation


def test_figure8_reason_says_what_the_seed_plan_did():
    spec = next(c for c in C.load_claims() if c["id"] == "fig8_ddpm_full_multiscale")
    rows = _fig8_rows([(100, 101), (200, 198), (150, 152)], [(0.9, 0.9)] * 3).assign(seed_reason="3 seeds decide it")
    assert "seed plan: 3 seeds decide it" in C.CHECKS.get("ddpm_quality")(spec, {"fig8": rows}).reason


def test_engine_loads_declared_inputs_and_names_the_missing_ones():
    from mfcbench.report.engine import CHECKS, Verdict, check, where

    seen = {}

    def probe(data):
        seen["rows"] = len(data.frame)
        return data.verdict("REPRODUCED", "ok")

    try:
        check("probe_for_test", inputs=lambda spec: [spec["input"], "curves_" + spec["input"]],
              published=lambda spec: "p")(probe)
        spec = {"id": "x", "claim": "", "check": "probe_for_test", "input": "t", "where": {"arch": "UNet"}}
        missing = C.score_claims([spec], {"t": pd.DataFrame({"arch": ["unet"]})}).iloc[0]
        assert missing["verdict"] == "NOT_RUN" and missing["reason"] == "no results: curves_t.csv missing or empty"
        assert missing["published"] == "p"
        both = {"t": pd.DataFrame({"arch": ["unet", "resnet"]}), "curves_t": pd.DataFrame({"x": [1]})}
        out = CHECKS.get("probe_for_test")(spec, both)
        assert isinstance(out, Verdict) and out.verdict == "REPRODUCED" and seen["rows"] == 1  # where: applied
        no_column = C.score_claims([{**spec, "where": {"conv": "mfc"}}], both).iloc[0]
        assert no_column["verdict"] == "NOT_RUN" and "results lack column 'conv'" in no_column["reason"]
    finally:
        CHECKS.unregister("probe_for_test")
    with pytest.raises(KeyError):
        where(pd.DataFrame({"a": [1]}), {"b": 1})


def _cells(table, arch, strategy, values, variant="", converged=True):
    return [{"table": table, "arch": arch, "strategy": strategy, "variant": variant, "seed": k, "status": "ok",
             "val_mse": v, "converged": converged, "dataset": "skimage"} for k, v in enumerate(values)]


def test_table12_crops_pairs_whole_images_against_crops_of_the_same_cell():
    spec = next(c for c in C.load_claims() if c["id"] == "table12_crops_no_better")
    run = lambda rows: C.CHECKS.get("reference_pairs")(spec, {"table12": pd.DataFrame(rows)})  # noqa: E731
    alike = [r for s in ("sgd", "msgd") for r in _cells("table12", "unet", s, [0.100, 0.101, 0.099])
             + _cells("table12", "unet", s, [0.101, 0.102, 0.100], variant="crops")]
    out = run(alike)
    assert out.verdict == "REPRODUCED" and len(out.pairs) == 2
    assert "unet/msgd, whole images 0.99x random crops" in out.reproduced
    # pairs.csv names cells: the pair's own strategy, and the reference cells the seed planner seeds too
    assert [(p["strategy"], p["versus"]) for p in out.pairs] == [("msgd", "table12:msgd+crops"),
                                                                  ("sgd", "table12:sgd+crops")]
    # whole images 20% worse than crops on every seed: crops help, beyond the 5% margin
    worse = _cells("table12", "unet", "msgd", [0.120, 0.122, 0.119]) + _cells(
        "table12", "unet", "msgd", [0.100, 0.101, 0.099], variant="crops")
    assert run(worse).verdict == "DEVIATES"
    # a crops cell not converged keeps the pair from deciding, named as the reference side
    unsure = _cells("table12", "unet", "msgd", [0.100, 0.101, 0.099]) + _cells(
        "table12", "unet", "msgd", [0.101, 0.102, 0.100], variant="crops", converged=False)
    out = run(unsure)
    assert out.verdict == "INCONCLUSIVE" and "random crops not converged" in out.reason


def test_table10_pairs_table7_sgd_with_its_doubled_budget_without_a_plateau_test():
    spec = next(c for c in C.load_claims() if c["id"] == "table10_longer_training_changes_little")
    t7 = pd.DataFrame(_cells("table7", "resnet18", "sgd", [0.162, 0.163, 0.161], converged=False)
                      + _cells("table7", "resnet18", "msgd", [0.2, 0.2, 0.2]))
    small = pd.DataFrame(_cells("table10", "resnet18", "sgd", [0.160, 0.161, 0.159]))
    out = C.CHECKS.get("reference_pairs")(spec, {"table7": t7, "table10": small})
    assert out.verdict == "REPRODUCED" and len(out.pairs) == 1  # msgd is not Table 10's
    assert out.pairs[0]["converged_ours"] == "n/a" and out.pairs[0]["versus"] == "table10:sgd"
    large = pd.DataFrame(_cells("table10", "resnet18", "sgd", [0.120, 0.121, 0.119]))  # doubling gains 25%
    assert C.CHECKS.get("reference_pairs")(spec, {"table7": t7, "table10": large}).verdict == "DEVIATES"
    assert C.score_claims([spec], {"table7": t7}).iloc[0]["verdict"] == "NOT_RUN"

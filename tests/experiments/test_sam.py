"""MFC-SAM (App. D.5, Table 9, Figure 6) on a tiny random-weight SAM built from the package's classes."""

import math
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("segment_anything")

from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer  # noqa: E402

from mfcbench.experiments import lemma4  # noqa: E402
from mfcbench.experiments import sam as msam  # noqa: E402
from mfcbench.figures.fig6 import draw_figure6  # noqa: E402
from mfcbench.layers import MeshFreeConv2d, mesh_free_filter  # noqa: E402
from mfcbench.layers import lemma4 as layer  # noqa: E402

# A fitted neck must match the frozen conv neck to 2.5% relative L2 on the training image. The Lemma 4
# start (m = 24 filters; kernel residual 0.11) is ~7% off there; float32 round-off is ~1e-6 and the
# fit has ~25k parameters for 2k target values, so the error keeps falling (measured: 3.7%, 2.5%,
# 1.8% after 20, 40, 60 Adam steps at lr 3e-4; < 0.1% after 100 steps at 1e-3). 60 steps keep the test
# short, and 2.5% (3x below the start) fails if the fit, the loss or the frozen reference is wrong.
NECK_TOLERANCE = 0.025


def tiny_sam(img: int = 64, patch: int = 8, chans: int = 32) -> Sam:
    torch.manual_seed(0)
    encoder = ImageEncoderViT(img_size=img, patch_size=patch, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2,
                              out_chans=chans, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                              use_rel_pos=False, window_size=0, global_attn_indexes=())
    prompt = PromptEncoder(embed_dim=chans, image_embedding_size=(img // patch, img // patch),
                           input_image_size=(img, img), mask_in_chans=4)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer_dim=chans, iou_head_depth=2, iou_head_hidden_dim=32,
                          transformer=TwoWayTransformer(depth=1, embedding_dim=chans, mlp_dim=64, num_heads=2))
    return Sam(encoder, prompt, decoder).eval()


@pytest.fixture(scope="module")
def image():
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 30) ** 2 + (xx - 36) ** 2 < 300)[..., None]
    noise = np.random.default_rng(0).integers(0, 40, (64, 64, 3))
    return np.where(disc, 200, 40).astype(np.uint8) + noise.astype(np.uint8)


def convs_3x3(model):
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def test_only_3x3_convs_are_converted_and_only_mfcs_train():
    model = tiny_sam()
    before = convs_3x3(model)
    names = msam.convert_sam(model)
    assert names == before == ["image_encoder.neck.2"]
    assert convs_3x3(model) == []
    assert isinstance(model.image_encoder.patch_embed.proj, nn.Conv2d)  # the 8x8 patch embedding stays
    assert isinstance(model.image_encoder.neck[0], nn.Conv2d)  # and the 1x1
    mfcs = msam.mfc_modules(model)
    assert list(mfcs) == names
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for m in mfcs.values() for p in m.parameters()}


def test_basis_and_kernel_responses_are_lemma4s():
    family, count, widths = layer.DEFAULT_BASIS
    tau, alpha, gamma = layer.basis_parameters(family, count, widths, mesh=16)
    delta = torch.zeros(1, len(tau), 16, 16, dtype=torch.float64)
    delta[..., 8, 8] = 1
    ours = mesh_free_filter(delta, tau, alpha, gamma).reshape(len(tau), -1)
    assert torch.allclose(ours, lemma4.mfc_basis(16, family, count, widths))
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    responses = layer.kernel_responses(weight, 16)
    assert torch.allclose(responses[:, 1 * 3 + 2], lemma4.conv_response(weight[1, 2], 16))


def test_lemma4_mfc_starts_from_the_basis_with_the_mfc_layers_parametrisation():
    tau, alpha, gamma = layer.basis_parameters("alpha", 2, (0.7,), mesh=12)
    mfc = layer.Lemma4MFC(3, 2, basis=("alpha", 2, (0.7,)), mesh=12)
    # tau and alpha are MeshFreeConv2d's (exp of log_tau, L L^T of the Cholesky factor): the init inverts them
    assert layer.Lemma4MFC.alpha is MeshFreeConv2d.alpha and layer.Lemma4MFC.tau is MeshFreeConv2d.tau
    assert torch.allclose(mfc.tau().double(), tau, rtol=1e-6)
    assert torch.allclose(mfc.alpha().double(), alpha, rtol=1e-5, atol=1e-7)
    assert torch.equal(mfc.gamma, gamma.float()) and mfc.coef.shape == (24, 2, 3)
    with pytest.raises(ValueError, match="only stride-1"):
        layer.Lemma4MFC.from_conv(nn.Conv2d(3, 2, 3, padding=1, stride=2))


def test_lemma4_initialisation_approximates_the_conv():
    conv = nn.Conv2d(8, 6, 3, padding=1, bias=True)
    mfc = layer.Lemma4MFC.from_conv(conv, mesh=12)
    assert 0.0 < mfc.lemma4_residual < 0.15
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        error = msam.relative_error(mfc(x), conv(x))
    assert error < 0.15
    exact = layer.Lemma4MFC.from_conv(conv, basis=("alpha", 3, (0.7,)), mesh=12)  # m = 81: closer
    with torch.no_grad():
        assert msam.relative_error(exact(x), conv(x)) < error / 2


def test_fitted_mfc_neck_matches_the_conv_neck(image):
    model = tiny_sam()
    other = np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    mfc_model, report = msam.make_mfc_sam(model, [image], steps=60, heldout=[other])
    assert report["n_heldout"] == 1 and math.isfinite(report["heldout_final_rel_error"])
    assert report["converted"] == ["image_encoder.neck.2"]
    assert report["initial_rel_error"] > 0.05
    assert report["final_rel_error"] < NECK_TOLERANCE
    feats = msam.neck_inputs(model, [image])
    with torch.no_grad():
        error = msam.relative_error(mfc_model.image_encoder.neck(feats), model.image_encoder.neck(feats))
    assert error == pytest.approx(report["final_rel_error"], rel=1e-3)
    assert all(isinstance(m, nn.Conv2d) for m in (model.image_encoder.neck[2],))  # the original is untouched


def test_mask_generator_runs_and_figure6(image, tmp_path):
    model = tiny_sam()
    loose = dict(pred_iou_thresh=-1e9, stability_score_thresh=-1e9)  # random weights: keep every mask
    masks = msam.generate_masks(model, image, points_per_side=4, **loose)
    assert masks and {"segmentation", "area", "bbox", "predicted_iou", "stability_score"} <= set(masks[0])
    assert masks[0]["segmentation"].shape == (64, 64)
    summary = msam.evaluate_masks(model, [image], points_per_side=4, **loose)
    assert summary["n_images"] == 1 and summary["n_masks"] == len(masks)
    assert math.isfinite(summary["mean_predicted_iou"]) and 0.0 <= summary["mean_stability_score"] <= 1.0
    draw_figure6(image, masks, masks[:1], tmp_path / "figure6.png")
    assert (tmp_path / "figure6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table9_is_not_run_without_checkpoint_or_images(tmp_path):
    rows = msam.run_table9(None, None, None)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"NOT_RUN"}
    assert {(r["dataset"], r["model"]) for r in rows} == set(msam.paper_table9())
    assert "no SAM checkpoint given" in rows[0]["reason"] and "sam_vit_b_01ec64.pth" in rows[0]["reason"]
    assert rows[0]["paper_predicted_iou"] == 0.934
    rows = msam.run_table9(str(tmp_path / "sam.pth"), None)
    assert {r["status"] for r in rows} == {"NOT_RUN"} and "images" in rows[0]["reason"]
    with pytest.raises(FileNotFoundError):
        msam.run_table9(str(tmp_path / "missing.pth"), str(tmp_path))
    (tmp_path / "fake.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="sha256"):
        msam.load_sam_checkpoint(tmp_path / "fake.pth", sha256="0" * 64)
    assert msam.parse_image_sets("COCO=/a,ADE20k=/b") == {"COCO": "/a", "ADE20k": "/b"}


def test_table9_with_a_checkpoint_runs_end_to_end(image, tmp_path, monkeypatch):
    from PIL import Image

    folder = tmp_path / "coco"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(image, 7 * i, axis=1)).save(folder / f"{i}.png")
    (tmp_path / "sam.pth").write_bytes(b"stand-in")
    monkeypatch.setattr(msam, "load_sam_checkpoint", lambda path, sha256=None, device="cpu": tiny_sam())
    rows = msam.run_table9(str(tmp_path / "sam.pth"), f"COCO={folder}", limit=1, points_per_side=4, fit_steps=3,
                           out_dir=tmp_path / "out", figure6=draw_figure6,
                           generator_options=dict(pred_iou_thresh=-1e9, stability_score_thresh=-1e9))
    assert [(r["dataset"], r["model"], r["status"]) for r in rows] == [("COCO", "SAM", "OK"), ("COCO", "MFC-SAM", "OK")]
    assert all(r["n_images"] == 1 and r["n_masks"] > 0 for r in rows) and rows[0]["paper_predicted_iou"] == 0.934
    assert (tmp_path / "out" / "figure6.png").is_file() and (tmp_path / "out" / "table9.json").is_file()
    drawn = []  # the experiment hands the first evaluated image and both models' masks to the drawer it is given
    msam.run_table9(str(tmp_path / "sam.pth"), f"COCO={folder}", limit=1, points_per_side=4, fit_steps=1,
                    out_dir=tmp_path / "again", figure6=lambda *args: drawn.append(args))
    assert len(drawn) == 1 and drawn[0][0].shape == image.shape and drawn[0][3] == tmp_path / "again" / "figure6.png"
    assert not (tmp_path / "again" / "figure6.png").exists() and (tmp_path / "again" / "table9.json").is_file()

"""Fit the BlazePose -> BODY_25 corrections on photos with official OpenPose keypoints, and report PCK.

    .venv/bin/python bench/pose_fit.py [--mirrors /work/.mirror] [--cache ~/.cache/vitonprep/pose_fit] [--write]

1. Extract: every row of ``data/pose_fit/sources.csv`` (set ``fit`` or ``held_out``) names a photo and its
   keypoint file by repository, commit, path and git blob id. Rows of repository ``.`` are this checkout's own
   files; the others are read with ``git cat-file`` from snapshots ``MIRRORS/OWNER+NAME/repo`` (get one with
   ``git clone https://github.com/OWNER/NAME``); a missing snapshot or blob is said and its rows skipped (exit 0).
   Nothing is written into the repository except, with ``--write``, the coefficients file.
2. Truth: OpenPose BODY_25 JSON, OpenPose COCO-18 JSON (VITON 2017 ``pose_keypoints``; no MidHip or feet),
   DressCode's ``keypoints/*_2.json`` (COCO-18 order at half size), or an official OpenPose render (joints
   recovered by ``vitonprep.derive.pose_from_render``). Photos smaller than 768 x 1024 are resized to it (as a
   build does), and their keypoints with them.
3. Fit (``fit`` rows only, never ``held_out``): per joint, the offset from BlazePose's joint to OpenPose's in
   the joint's frame (vitonprep/backends/pose_body25_fit.py), left and right twins pooled, shrunk towards 0
   (ridge, lambda chosen by leave-one-person-out) and kept only when it predicts left-out persons better than
   none; joints seen on fewer than MIN_GATE persons take the offset with the most PCK hits instead. Then the
   edge-knee rule and the visibility threshold. Hips are fitted on BODY_25 truth only (BODY25_ONLY).
4. Report: PCK@0.1 (torso) per joint group — the code before this change (the mapping at commit ``--old``,
   loaded from git) and after — on the fit set (in-sample and leave-one-person-out), the bundled 3 and the
   held-out set; hands at 0.2 x hand box.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.backends import pose_body25_fit as pf  # noqa: E402
from vitonprep.backends import pose_mediapipe as pm  # noqa: E402
from vitonprep.derive.body25 import OpenPoseKeypoints, coco18_to_body25  # noqa: E402
from vitonprep.derive.pose_from_render import keypoints_from_render  # noqa: E402
from vitonprep.score import JOINT_GROUPS, hand_pck, pck_groups  # noqa: E402

SOURCES = ROOT / "data" / "pose_fit" / "sources.csv"
CANVAS = (768, 1024)
OLD_COMMIT = "aee6528"
#: (joint, frame, parent) of every fitted correction (docs/pose.md, "The mapping").
JOINTS: tuple[tuple[int, str, int], ...] = (
    (1, "torso", -1), (2, "torso", -1), (5, "torso", -1), (9, "torso", -1), (12, "torso", -1),
    (3, "bone", 2), (6, "bone", 5), (4, "bone", 3), (7, "bone", 6),
    (10, "bone", 9), (13, "bone", 12), (11, "bone", 10), (14, "bone", 13),
    (0, "torso", -1), (15, "torso", -1), (16, "torso", -1), (17, "torso", -1), (18, "torso", -1),
)
#: OpenPose's COCO-18 model places the hips elsewhere than BODY_25 (lower): hips are fitted on BODY_25 truth only.
BODY25_ONLY = (8, 9, 12)
COCO_FORMATS = ("coco18_json", "dresscode_json")
MIN_GATE = 6
#: left <-> right twins (BODY_25)
MIRROR = {a: b for x, y in ((2, 5), (3, 6), (4, 7), (9, 12), (10, 13), (11, 14), (15, 16), (17, 18))
          for a, b in ((x, y), (y, x))}
LAMBDAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
VIS_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


def read_blob(row: dict, key: str, mirrors: Path) -> bytes | None:
    path, blob = row[f"{key}_path"], row[f"{key}_blob"]
    if row["repo"] == ".":
        data = (ROOT / path).read_bytes()
    else:
        repo = mirrors / row["repo"].replace("/", "+") / "repo"
        if not repo.is_dir():
            print(f"missing snapshot {row['repo']} ({repo}): {row['id']} skipped")
            return None
        run = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", blob], capture_output=True)
        if run.returncode:
            print(f"missing blob {blob} ({row['repo']}:{path}): {row['id']} skipped")
            return None
        data = run.stdout
    got = subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True).stdout.decode().strip()
    if got != blob:
        print(f"{row['repo']}:{path}: blob {got}, expected {blob}: {row['id']} skipped")
        return None
    return data


def truth_of(row: dict, data: bytes, scale: float) -> OpenPoseKeypoints:
    fmt = row["truth_format"]
    if fmt == "body25_json":
        kp = OpenPoseKeypoints.from_json_dict(json.loads(data))
    elif fmt == "coco18_json":
        person = json.loads(data)["people"][0]
        k18 = np.asarray(person["pose_keypoints"], np.float32).reshape(18, 3)
        k25 = coco18_to_body25(k18)
        if k25[9, 2] > 0 and k25[12, 2] > 0:  # the torso size of PCK needs a MidHip: between the hips
            k25[8] = ((k25[9, 0] + k25[12, 0]) / 2, (k25[9, 1] + k25[12, 1]) / 2, min(k25[9, 2], k25[12, 2]))
        kp = OpenPoseKeypoints(pose=k25)
    elif fmt == "dresscode_json":
        # DressCode: 18 COCO-order rows [x, y, score, id] at half size (384 x 512); a joint of the cut-off face is
        # written at the border (y = 0), a position OpenPose did not see: it counts as absent
        k = np.asarray(json.loads(data)["keypoints"], np.float32).reshape(18, 4)[:, :3]
        k[:, :2] *= 2.0
        k[(k[:, 0] <= 0) | (k[:, 1] <= 0)] = 0
        k25 = coco18_to_body25(k)
        if k25[9, 2] > 0 and k25[12, 2] > 0:
            k25[8] = ((k25[9, 0] + k25[12, 0]) / 2, (k25[9, 1] + k25[12, 1]) / 2, min(k25[9, 2], k25[12, 2]))
        kp = OpenPoseKeypoints(pose=k25)
    elif fmt == "body25_render":
        kp = OpenPoseKeypoints(pose=keypoints_from_render(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
    else:
        raise ValueError(f"unknown truth_format {fmt!r}")
    if scale != 1.0:
        arrs = []
        for a in (kp.pose, kp.face, kp.hand_left, kp.hand_right):
            a = a.copy()
            a[a[:, 2] > 0, :2] *= scale
            arrs.append(a)
        kp = OpenPoseKeypoints(*arrs)
    return kp


def load_samples(mirrors: Path, cache: Path) -> list[dict]:
    rows = list(csv.DictReader(SOURCES.open(newline="", encoding="utf-8")))
    out = []
    for row in rows:
        img = read_blob(row, "image", mirrors)
        kp = read_blob(row, "keypoints", mirrors) if img is not None else None
        if img is None or kp is None:
            continue
        im = Image.open(io.BytesIO(img)).convert("RGB")
        scale = 1.0
        if im.size != CANVAS:
            if abs(im.size[0] * CANVAS[1] - im.size[1] * CANVAS[0]) > im.size[1]:
                print(f"{row['id']}: {im.size} is not 3:4, skipped")
                continue
            scale = CANVAS[0] / im.size[0]
            im = im.resize(CANVAS, Image.BICUBIC)
        (cache / row["set"]).mkdir(parents=True, exist_ok=True)
        im.save(cache / row["set"] / f"{row['id']}.png")
        out.append({**row, "rgb": np.asarray(im), "truth": truth_of(row, kp, scale)})
    return out


def load_old_module(commit: str) -> types.ModuleType | None:
    """The pose back-end module as it was at ``commit`` (our own code, read from this checkout's git)."""
    run = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:vitonprep/backends/pose_mediapipe.py"],
                         capture_output=True, text=True)
    if run.returncode:
        print(f"old code path unavailable (git show {commit}): {run.stderr.strip()}")
        return None
    mod = types.ModuleType("pose_mediapipe_old")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up there
    exec(compile(run.stdout, f"{commit}:pose_mediapipe.py", "exec"), mod.__dict__)  # noqa: S102
    return mod


# ------------------------------------------------------------------ fitting

def design(raw: np.ndarray, joint: int, frame: str, parent: int) -> np.ndarray:
    """(2, 2) columns: the displacement per unit of ``along`` and of ``across`` (pose_body25_fit)."""
    u, t, v, h = pf.body_frame(raw)
    s = pf.side_signs()[joint]
    if frame == "torso":
        return np.stack([t * u, t * s * v], 1)
    d = raw[joint] - raw[parent]
    return np.stack([d, s * h * np.array([-d[1], d[0]])], 1)


def joint_rows(samples: list[dict], joint: int, frame: str, parent: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(person, design, residual) for each sample where OpenPose and BlazePose both see the joint in frame."""
    rows = []
    for s in samples:
        raw, vis = s["raw"], s["vis"]
        gt = s["truth"].pose
        if joint in BODY25_ONLY and s["truth_format"] in COCO_FORMATS:
            continue
        if gt[joint, 2] <= 0 or vis[joint] < 0.1 or not pm._inside(raw[joint], *CANVAS):
            continue
        if frame == "bone" and vis[parent] < 0.1:
            continue
        t = pf.body_frame(raw)[1]
        r = gt[joint, :2] - raw[joint]
        if np.hypot(*r) > 0.5 * t:  # another joint altogether (a swap or a miss), not an offset to learn
            continue
        radius = 0.1 * float(np.linalg.norm(gt[1, :2] - gt[8, :2]))  # PCK@0.1 with the truth's torso
        rows.append((s["person"], design(raw, joint, frame, parent), r, radius))
    return rows


def solve(rows: list, lam: float) -> np.ndarray:
    """Ridge: min sum |r - X c|^2 / T^2-ish + lam |c|^2 (coefficients are unit-free)."""
    a = (lam + 1e-9) * np.eye(2)
    b = np.zeros(2)
    for _, x, r, _ in rows:
        w = 1.0 / max(float(np.sum(x * x)) / 2, 1e-6)  # each sample weighs as one, whatever its scale
        a += w * x.T @ x
        b += w * x.T @ r
    return np.linalg.solve(a, b)


def solve_hits(rows: list) -> np.ndarray:
    """The coefficients that put most rows within their PCK radius (the metric itself); among ties the one
    nearest the least-squares solution. For joints seen on too few persons for a ridge fit to mean much."""
    ls = solve(rows, 0.0)
    grid = np.round(np.arange(-0.15, 0.1501, 0.005), 4)
    best = None
    for a in grid:
        for b in grid:
            c = np.array([a, b])
            hits = sum(float(np.hypot(*(r - x @ c))) <= rad for _, x, r, rad in rows)
            key = (-hits, float(np.sum((c - ls) ** 2)))
            if best is None or key < best[0]:
                best = (key, c)
    return best[1]


def loo_error(rows: list, lam: float) -> float:
    persons = sorted({p for p, _, _, _ in rows})
    err = []
    for p in persons:
        train = [r for r in rows if r[0] != p]
        if not train:
            continue
        c = solve(train, lam)
        for q, x, r, _ in rows:
            if q == p:
                err.append(float(np.hypot(*(r - x @ c))) / max(float(np.sqrt(np.sum(x * x) / 2)), 1e-6))
    return float(np.mean(err)) if err else float("nan")


def fit_all(samples: list[dict], exclude: str | None = None) -> dict:
    samples = [s for s in samples if s["person"] != exclude]
    rows_by = {(j, f, p): joint_rows(samples, j, f, p) for j, f, p in JOINTS}
    # the frames mirror with the body, so a left joint and its right twin share their coefficients (pooled rows)
    for (j, f, p) in list(rows_by):
        twin = MIRROR.get(j)
        if twin is not None:
            tw = next(k for k in rows_by if k[0] == twin)
            rows_by[(j, f, p)] = joint_rows(samples, j, f, p) + joint_rows(samples, *tw)
    lam_err = {lam: np.nanmean([loo_error(r, lam) for r in rows_by.values() if len({q for q, *_ in r}) > 2])
               for lam in LAMBDAS}
    lam = min(lam_err, key=lam_err.get)
    corrections = []
    for (j, f, p), rows in rows_by.items():
        if len({q for q, *_ in rows}) < 3:
            continue  # fewer than 3 persons: no correction
        few = len({q for q, *_ in rows}) < MIN_GATE
        if few and j in BODY25_ONLY:
            # the hips: BODY_25 truth on too few persons for ridge and leave-one-out to mean much; the offset
            # with the most PCK hits on them, as the previous mapping's one hip constant was chosen on them
            c = solve_hits(rows)
        else:
            # kept only if it predicts left-out persons better than no correction
            c = solve(rows, lam)
            if loo_error(rows, lam) >= loo_error(rows, 1e12):
                continue
        item = {"joint": j, "frame": f, "along": round(float(c[0]), 4), "across": round(float(c[1]), 4),
                "n": len(rows)}
        if f == "bone":
            item["parent"] = p
        corrections.append(item)
    # edge knee: OpenPose's knee where BlazePose's has left the frame (or is not seen)
    depths, rooms_yes, rooms_no = [], [], []
    for s in samples:
        raw, vis, gt = s["raw"], s["vis"], s["truth"].pose
        t = pf.body_frame(raw)[1]
        for hip, knee in ((9, 10), (12, 13)):
            if vis[hip] < 0.5 or (vis[knee] >= 0.2 and pm._inside(raw[knee], *CANVAS)):
                continue
            room = (CANVAS[1] - raw[hip, 1]) / t
            if gt[knee, 2] > 0 and gt[hip, 2] > 0:
                depths.append(float(np.hypot(*(gt[knee, :2] - gt[hip, :2]))) / t)
                rooms_yes.append(room)
            else:
                rooms_no.append(room)
    edge = None
    if len(depths) >= 2:
        # the threshold that best separates thighs OpenPose gives a knee from those it does not
        cands = sorted(set(rooms_yes + rooms_no))
        best = min(cands, key=lambda c: (sum(r < c for r in rooms_yes) + sum(r >= c for r in rooms_no), -c))
        edge = {"depth": round(float(np.median(depths)), 4), "min_thigh": round(float(best), 4)}
    return {"lambda": lam, "lambda_loo_error": {str(k): round(float(v), 4) for k, v in lam_err.items()},
            "corrections": corrections, "edge_knee": edge,
            "edge_knee_cases": {"with_knee": [round(r, 3) for r in rooms_yes],
                                "without": [round(r, 3) for r in rooms_no]}}


def fit_visibility(samples: list[dict], doc: dict) -> float:
    """The visibility threshold that best agrees with which joints OpenPose reports (joints 0-18, in frame)."""
    best, best_err = 0.2, None
    for thr in VIS_GRID:
        fit = pf.parse_fit({**doc, "min_visibility": thr})
        err = 0
        for s in samples:
            ours = pm.blazepose_to_body25(s["lm"], *CANVAS, fit=fit)[:19, 2] > 0
            err += int(np.sum(ours != (s["truth"].pose[:19, 2] > 0)))
        if best_err is None or err < best_err:
            best, best_err = thr, err
    return best


# ------------------------------------------------------------------ report

def pose_of(backend, sample: dict, fit: pf.Body25Fit) -> OpenPoseKeypoints:
    """Keypoints of the back-end with ``fit`` instead of the shipped coefficients (which may not parse yet)."""
    shipped, pm.default_fit = pm.default_fit, lambda: fit
    try:
        res = backend(sample["rgb"])
    finally:
        pm.default_fit = shipped
    pose = pm.blazepose_to_body25(res.landmarks, *CANVAS, fit=fit)
    return OpenPoseKeypoints(pose, res.keypoints.face, res.keypoints.hand_left, res.keypoints.hand_right)


def table(results: list[tuple[OpenPoseKeypoints, OpenPoseKeypoints, bool]]) -> dict:
    tot: dict[str, list[int]] = {g: [0, 0] for g in (*JOINT_GROUPS, "body", "hands")}
    for ours, truth, coco in results:
        for g, (c, n) in pck_groups(ours.pose, truth.pose).items():
            if coco and g == "hips":
                continue  # the COCO model's hips are not BODY_25's (BODY25_ONLY)
            tot[g][0] += c
            tot[g][1] += n
            tot["body"][0] += c
            tot["body"][1] += n
        c, n = hand_pck(ours, truth)
        tot["hands"][0] += c
        tot["hands"][1] += n
    return {g: (c, n) for g, (c, n) in tot.items()}


def misses(ours: np.ndarray, truth: np.ndarray, coco: bool) -> str:
    """The official joints we miss: index:distance in torso units (- = not found)."""
    t = float(np.linalg.norm(truth[1, :2] - truth[8, :2]))
    out = []
    for j in np.flatnonzero(truth[:, 2] > 0):
        if coco and j in BODY25_ONLY:
            continue
        d = float(np.linalg.norm(ours[j, :2] - truth[j, :2])) / t if ours[j, 2] > 0 else None
        if d is None or d > 0.1:
            out.append(f"{j}:{'-' if d is None else f'{d:.2f}'}")
    return " ".join(out)


def fmt(t: dict) -> str:
    return "  ".join(f"{g} {c}/{n}={c / n:.3f}" if n else f"{g} -" for g, (c, n) in t.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "vitonprep" / "pose_fit")
    ap.add_argument("--old", default=OLD_COMMIT, help="commit of the code path to compare with")
    ap.add_argument("--write", action="store_true", help=f"write the fit to {pf.FIT_FILE.relative_to(ROOT)}")
    ap.add_argument("--verbose", action="store_true", help="list each photo's missed joints")
    ap.add_argument("--report", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    samples = load_samples(args.mirrors, args.cache)
    fit_set = [s for s in samples if s["set"] == "fit"]
    held = [s for s in samples if s["set"] == "held_out"]
    print(f"{len(fit_set)} fit photos ({len({s['person'] for s in fit_set})} persons), {len(held)} held-out")
    if len({s["person"] for s in fit_set}) < 3:
        print("too few fit persons: nothing fitted")
        return 0
    backend = pm.MediapipePose().setup()
    for s in samples:
        s["lm"] = backend.landmarks(s["rgb"])[0]
        s["raw"], s["vis"] = pm.raw_body25(s["lm"])

    res = fit_all(fit_set)
    doc = {"format": pf.FORMAT, "version": 1, "min_visibility": 0.2, "corrections": res["corrections"],
           "edge_knee": res["edge_knee"]}
    doc["min_visibility"] = fit_visibility(fit_set, doc)
    doc["provenance"] = {
        "fitted_by": "bench/pose_fit.py", "sources": "data/pose_fit/sources.csv (set fit)",
        "fit_photos": len(fit_set), "fit_persons": len({s["person"] for s in fit_set}),
        "ridge_lambda": res["lambda"], "edge_knee_cases": res["edge_knee_cases"],
    }
    print(json.dumps({k: doc[k] for k in ("min_visibility", "edge_knee")}), f"lambda {res['lambda']}",
          res["lambda_loo_error"])
    for c in doc["corrections"]:
        print("  ", c)
    fit = pf.parse_fit(doc)

    old_mod = load_old_module(args.old)
    old_backend = old_mod.MediapipePose().setup() if old_mod else None
    report = {}
    bundled = [s for s in fit_set if s["id"] in ("00891_00", "03615_00", "07445_00")]
    for name, group in (("fit", fit_set), ("bundled", bundled), ("held_out", held)):
        if not group:
            continue
        coco = [s["truth_format"] in COCO_FORMATS for s in group]
        after = [(pose_of(backend, s, fit), s["truth"], c) for s, c in zip(group, coco, strict=True)]
        if args.verbose:
            for s, (ours, truth, c) in zip(group, after, strict=True):
                print(f"  {s['id']:16s} misses {misses(ours.pose, truth.pose, c)}")
        rows = {"after": table(after)}
        if old_backend is not None:
            rows["before"] = table([(old_backend(s["rgb"]).keypoints, s["truth"], c)
                                    for s, c in zip(group, coco, strict=True)])
        if name == "fit":  # each person scored by a fit that never saw it
            loo = []
            for s in group:
                r = fit_all(fit_set, exclude=s["person"])
                d = {**doc, "corrections": r["corrections"], "edge_knee": r["edge_knee"]}
                loo.append((pose_of(backend, s, pf.parse_fit(d)), s["truth"], s["truth_format"] in COCO_FORMATS))
            rows["after_loo"] = table(loo)
        for k, t in rows.items():
            print(f"{name:9s} {k:9s} {fmt(t)}")
        report[name] = {k: {g: list(v) for g, v in t.items()} for k, t in rows.items()}
    if args.write and len(samples) < sum(1 for _ in csv.DictReader(SOURCES.open(newline="", encoding="utf-8"))):
        print(f"not written: {pf.FIT_FILE.name} is fitted on every source of {SOURCES.name}, some are missing")
    elif args.write:
        pf.FIT_FILE.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {pf.FIT_FILE}")
    if args.report:
        args.report.write_text(json.dumps({"fit": doc, "pck": report}, indent=1))
    backend.close()
    if old_backend is not None:
        old_backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The graded evaluation set (data/eval/README.md): its tables are well formed and complete, the v1 held-out part
follows the documented rule and the held_out_v2 part holds exactly the public_v2 photos (none of them seen before),
the benches skip with a clear message without the public snapshots, and the report computes its shares right (on a
small synthetic table: the real photos are not in the repository)."""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import eval_set  # noqa: E402
import grades_compare  # noqa: E402
import quality_eval  # noqa: E402

from vitonprep.schema import FIELDS  # noqa: E402

EVAL = ROOT / "data" / "eval"
COLUMNS = ["set", "category", "key", "person_file", "cloth_file", "part", "grade", "wrong_maps", "note", "code"]
SETS = {"public", "public_v2", "samples", "dresscode-photos", "vitonhd-official"}
PARTS = ("tuned", "held_out", "held_out_v2")
#: the parts grades_final.csv regrades
FINAL_PARTS = ("held_out_v2", "held_out")
V1_REPOS = {"Zheng-Chong/CatVTON", "levihsu/OOTDiffusion", "yisol/IDM-VTON"}
V2_REPOS = {"BoyuanJiang/FitDiT", "nftblackmagic/catvton-flux"}
#: VITON-HD photo ids (person and garment photos of one id show the same garment)
VITONHD_ID = re.compile(r"\d{5}_\d{2}")


def _grades(name: str = "grades.csv") -> list[dict[str, str]]:
    with (EVAL / name).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def _pairs() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(set, category) -> pairs, from data/eval/pairs and the official sample's own pairs file."""
    out = {}
    for f in sorted((EVAL / "pairs").glob("*.txt")):
        s, _, cat = f.stem.rpartition("-")
        out[(s, cat)] = eval_set.read_pairs(f)
    out[("vitonhd-official", "upper_body")] = eval_set.read_pairs(eval_set.OFFICIAL / "test_pairs.txt")
    return out


@pytest.mark.parametrize("name", ["grades.csv", "grades_after.csv", "grades_final.csv"])
def test_grades_are_well_formed(name):
    rows = _grades(name)
    maps = {f.name for f in FIELDS} | {"pose"}
    assert len({(r["set"], r["category"], r["key"]) for r in rows}) == len(rows), "a sample graded twice"
    for r in rows:
        where = f"{r['set']}/{r['category']}/{r['key']}"
        assert r["set"] in SETS and r["category"] in eval_set.CATEGORIES, where
        assert r["part"] in PARTS and r["grade"] in ("good", "usable", "wrong"), where
        assert r["key"] == f"{Path(r['person_file']).stem}__{Path(r['cloth_file']).stem}", where
        named = [m for m in r["wrong_maps"].split(";") if m]
        assert set(named) <= maps, f"{where}: unknown map in {r['wrong_maps']!r}"
        if r["grade"] == "wrong":
            assert named and r["note"], f"{where}: a wrong sample names its wrong map and says why"
        if r["grade"] == "good":
            assert not named, f"{where}: a good sample has no wrong map"
        assert "\n" not in r["note"] and re.fullmatch(r"[0-9a-f]{7,40}(\+dirty)?", r["code"]), where


def test_every_listed_pair_is_graded_once_and_nothing_else():
    graded = {(r["set"], r["category"], r["person_file"], r["cloth_file"]) for r in _grades()}
    listed = {(s, c, p, g) for (s, c), pairs in _pairs().items() for p, g in pairs}
    assert graded == listed
    public = [r for r in _grades() if r["set"] == "public"]
    assert len(public) >= 45
    per_category = {c: sum(r["category"] == c for r in public) for c in eval_set.CATEGORIES}
    assert min(per_category.values()) >= 10, per_category
    v2 = [r for r in _grades() if r["set"] == "public_v2"]
    assert len(v2) >= 25 and {r["category"] for r in v2} == set(eval_set.CATEGORIES)
    persons = {r["person_file"] for r in v2}
    for r in v2:  # unpaired: a VITON-HD person never gets its own garment
        person_id = VITONHD_ID.findall(r["person_file"])
        assert not person_id or person_id != VITONHD_ID.findall(r["cloth_file"]), r["key"]
    v2_sources = eval_set.PUBLIC_SOURCES["public_v2"]
    photos = eval_set.read_csv(EVAL / "photos.csv")
    v2_persons = {p["name"] for p in photos if p["kind"] == "person" and p["source"] in v2_sources}
    assert persons == v2_persons, "every public_v2 person photo is graded at least once"


def _regraded_from_grades(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], dict[str, str]]:
    """grades.csv by (set, category, key), after checking every regraded row is a sample of it: same photos, part."""
    before = {(r["set"], r["category"], r["key"]): r for r in _grades()}
    for r in rows:
        b = before.get((r["set"], r["category"], r["key"]))
        assert b is not None, f"{r['key']}: regraded but not in grades.csv"
        assert [r[c] for c in ("person_file", "cloth_file", "part")] == [b[c] for c in ("person_file", "cloth_file",
                                                                                         "part")], r["key"]
    return before


def test_regrading_covers_the_held_out_parts_of_the_same_samples():
    """grades_after.csv regrades the samples of grades.csv (same photos, same part) on one newer build, every one of
    them, and the README says which commit."""
    after = _grades("grades_after.csv")
    before = _regraded_from_grades(after)
    assert set(before) == {(r["set"], r["category"], r["key"]) for r in after}, "every graded sample regraded once"
    codes = {r["code"] for r in after}
    assert len(codes) == 1 and not codes & {r["code"] for r in before.values()}, "one build, newer than grades.csv"
    readme = (EVAL / "README.md").read_text(encoding="utf-8")
    assert "grades_after.csv" in readme and next(iter(codes)) in readme


def test_final_regrading_covers_the_held_out_parts_of_the_same_samples():
    """grades_final.csv regrades every held-out sample of grades.csv (same photos, same part) on one build newer
    than both earlier files, and the README says which commit."""
    final = _grades("grades_final.csv")
    before = _regraded_from_grades(final)
    held_out = {k for k, r in before.items() if r["part"] in FINAL_PARTS}
    assert {(r["set"], r["category"], r["key"]) for r in final} == held_out, "every held-out sample regraded once"
    codes = {r["code"] for r in final}
    earlier = {r["code"] for r in before.values()} | {r["code"] for r in _grades("grades_after.csv")}
    assert len(codes) == 1 and not codes & earlier, "one build, newer than grades.csv and grades_after.csv"
    readme = (EVAL / "README.md").read_text(encoding="utf-8")
    assert "grades_final.csv" in readme and next(iter(codes)) in readme


def test_public_photos_are_recorded_with_their_source():
    sources = {r["source"]: r for r in eval_set.read_csv(EVAL / "sources.csv")}
    assert {r["repo"] for r in sources.values()} == V1_REPOS | V2_REPOS
    assert {sources[s]["repo"] for s in eval_set.PUBLIC_SOURCES["public"]} == V1_REPOS
    assert {sources[s]["repo"] for s in eval_set.PUBLIC_SOURCES["public_v2"]} == V2_REPOS
    assert set(sources) == set(eval_set.DEFAULT_SNAPSHOTS), "every source has its --option"
    assert all(re.fullmatch(r"[0-9a-f]{40}", r["commit"]) and r["licence"] for r in sources.values())
    photos = eval_set.read_csv(EVAL / "photos.csv")
    names = [p["name"] for p in photos]
    assert len(set(names)) == len(names)
    assert all(p["source"] in sources and re.fullmatch(r"[0-9a-f]{40}", p["blob"]) for p in photos)
    for group, group_sources in eval_set.PUBLIC_SOURCES.items():
        used = {n for (s, _), pairs in _pairs().items() if s == group for pair in pairs for n in pair}
        listed = {p["name"] for p in photos if p["source"] in group_sources}
        assert used == listed, f"photos.csv lists exactly the photos the {group} pairs use"


def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_held_out_v2_photos_were_never_in_the_set_before():
    """No public_v2 photo is a file of the bundled sets or of the v1 photos (same git blob), and no VITON-HD id of
    a public_v2 photo (a person or the garment it wears) appears among them."""
    photos = eval_set.read_csv(EVAL / "photos.csv")
    v2 = [p for p in photos if p["source"] in eval_set.PUBLIC_SOURCES["public_v2"]]
    v1 = [p for p in photos if p["source"] in eval_set.PUBLIC_SOURCES["public"]]
    assert len(v2) >= 30
    bundled = [f for d in ("samples", "dresscode-photos", "vitonhd-official") for f in (ROOT / "data" / d).rglob("*")
               if f.is_file() and f.suffix.lower() in (".jpg", ".jpeg", ".png")]
    assert len(bundled) >= 30
    old_blobs = {_git_blob(f.read_bytes()) for f in bundled} | {p["blob"] for p in v1}
    assert not old_blobs & {p["blob"] for p in v2}
    assert len({p["blob"] for p in v2}) == len(v2), "a public_v2 photo listed twice"
    old_ids = {i for name in [f.name for f in bundled] + [p["name"] for p in v1] for i in VITONHD_ID.findall(name)}
    v2_ids = {i for p in v2 for i in VITONHD_ID.findall(p["name"])}
    assert v2_ids and not v2_ids & old_ids


def test_held_out_part_follows_the_documented_rule():
    rows = _grades()
    public = [r for r in rows if r["set"] == "public"]
    for r in public:  # the README's rule, computed here independently of eval_set.part_of
        first_byte = hashlib.sha1(r["person_file"].encode("utf-8")).digest()[0]
        assert r["part"] == ("held_out" if first_byte < 0x48 else "tuned"), r["key"]
        assert r["part"] == eval_set.part_of(r["person_file"])
    v2 = [r for r in rows if r["set"] == "public_v2"]
    assert v2 and all(r["part"] == eval_set.V2_PART == "held_out_v2" for r in v2)
    assert all(r["part"] == "tuned" for r in rows if r["set"] not in ("public", "public_v2")), \
        "bundled rows are tuned rows"
    parts = {p: {r["person_file"] for r in rows if r["part"] == p} for p in PARTS}
    assert not parts["tuned"] & parts["held_out"], "a person photo in both parts"
    assert not parts["held_out_v2"] & (parts["tuned"] | parts["held_out"]), "a held_out_v2 photo in another part"
    bundled_persons = {r["person_file"] for r in rows if r["set"] not in ("public", "public_v2")}
    assert not bundled_persons & (parts["held_out"] | parts["held_out_v2"]), "a bundled photo among the public ones"
    share = sum(r["part"] == "held_out" for r in public) / len(public)
    assert 0.25 <= share <= 0.40, f"held-out share {share:.2f} is not about a third"
    readme = (EVAL / "README.md").read_text(encoding="utf-8")
    assert "0x48" in readme and "held_out_v2" in readme and "graded blind" in readme


def test_eval_set_skips_the_public_photos_without_snapshots(tmp_path, capsys):
    absent = tmp_path / "no-snapshot"
    argv = ["--cache", str(tmp_path / "cache"), "--only", "public",
            "--catvton", str(absent), "--ootdiffusion", str(absent), "--idm-vton", str(absent)]
    assert eval_set.main(argv) == 0
    out = capsys.readouterr().out
    assert f"skipped the public photos: snapshot of Zheng-Chong/CatVTON not found at {absent}" in out
    assert "git clone https://github.com/levihsu/OOTDiffusion" in out
    assert not (tmp_path / "cache" / "shards").exists() and not (tmp_path / "cache" / "photos").exists()


def test_eval_set_skips_the_v2_photos_without_their_snapshots(tmp_path, capsys):
    absent = tmp_path / "no-snapshot"
    argv = ["--cache", str(tmp_path / "cache"), "--only", "public_v2", "--fitdit", str(absent),
            "--catvton-flux", str(absent)]
    assert eval_set.main(argv) == 0
    out = capsys.readouterr().out
    assert f"skipped the public_v2 photos: snapshot of BoyuanJiang/FitDiT not found at {absent}" in out
    assert "git clone https://github.com/nftblackmagic/catvton-flux and pass its folder as --catvton-flux" in out
    assert "CatVTON not found" not in out, "--only public_v2 needs only the v2 snapshots"
    assert not (tmp_path / "cache" / "shards").exists() and not (tmp_path / "cache" / "photos").exists()


def test_eval_set_refuses_a_cache_inside_the_repository(capsys):
    assert eval_set.main(["--cache", str(ROOT / "data" / "eval" / "cache"), "--only", "public"]) == 2
    assert "inside the repository" in capsys.readouterr().err
    assert not (ROOT / "data" / "eval" / "cache").exists()


def test_quality_eval_skips_public_rows_without_built_shards(tmp_path, capsys):
    grades = tmp_path / "grades.csv"
    rows = [r for r in _grades() if r["set"] == "public"][:3]
    with grades.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    assert quality_eval.main(["--cache", str(tmp_path / "empty"), "--grades", str(grades), "--part", "all"]) == 0
    out = capsys.readouterr().out
    assert "run bench/eval_set.py" in out and "nothing to report" in out
    v2 = [r for r in _grades() if r["set"] == "public_v2"][:2]
    with grades.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(v2)
    argv = ["--cache", str(tmp_path / "empty"), "--grades", str(grades), "--part", "held_out_v2"]
    assert quality_eval.main(argv) == 0
    out = capsys.readouterr().out
    assert "held_out_v2 rows are graded blind" in out
    assert f"no built shards at {tmp_path / 'empty' / 'shards' / 'public_v2-'}" in out and "nothing to report" in out
    assert "building the bundled sets" not in out


def test_quality_eval_part_takes_a_comma_list(capsys):
    assert quality_eval.parse_parts("held_out_v2,tuned") == ("tuned", "held_out_v2")
    assert quality_eval.parse_parts(" held_out , held_out ") == ("held_out",)
    assert quality_eval.parse_parts("all") == ("tuned", "held_out"), "all never spends the blind rows"
    assert quality_eval.parse_parts("held_out_v2,all") == quality_eval.PARTS == PARTS
    with pytest.raises(SystemExit) as exc:
        quality_eval.main(["--part", "tuned,held-out"])
    assert exc.value.code == 2
    assert "unknown part held-out" in capsys.readouterr().err


_KEYS = itertools.count()


def _judged(category: str, part: str, grade: str, flags: set[str] | None) -> quality_eval.Judged:
    return quality_eval.Judged("public", category, f"k{next(_KEYS)}", part, grade,
                               None if flags is None else frozenset(flags))


def test_report_shares_on_a_synthetic_table():
    J = _judged
    rows = [J("upper_body", "tuned", "wrong", {"hand_labels"}),
            J("upper_body", "tuned", "wrong", set()),
            J("upper_body", "tuned", "wrong", {"hand_labels", "agn_hands"}),
            J("upper_body", "tuned", "good", set()),
            J("upper_body", "tuned", "usable", {"agn_hands"}),
            J("lower_body", "tuned", "wrong", None),  # not checked: in the wrong share, not in the rates
            J("dresses", "held_out", "wrong", {"agn_shoes"}),
            J("dresses", "held_out", "usable", set()),
            J("lower_body", "held_out_v2", "usable", {"agn_shoes"}),
            J("lower_body", "held_out_v2", "wrong", set())]
    tuned = [r for r in rows if r.part == "tuned"]
    recall, false_flag = quality_eval.rates(tuned)
    assert (recall.k, recall.n, false_flag.k, false_flag.n) == (2, 3, 1, 2)
    assert recall.share == pytest.approx(2 / 3) and false_flag.share == 0.5
    recall, false_flag = quality_eval.rates(tuned, "hand_labels")
    assert (recall.k, recall.n, false_flag.k, false_flag.n) == (2, 3, 0, 2)
    share = quality_eval.wrong_share(tuned)
    assert (share["upper_body"].k, share["upper_body"].n) == (3, 5)
    assert (share["lower_body"].k, share["lower_body"].n) == (1, 1)
    assert share["dresses"].share is None and str(share["dresses"]) == "-"
    assert (share["all"].k, share["all"].n) == (4, 6)
    rep = quality_eval.report(rows, ("tuned", "held_out"))
    assert rep["parts"]["tuned"]["checks"]["any"] == {"recall": [2, 3], "false_flag": [1, 2]}
    assert rep["parts"]["tuned"]["checks"]["agn_hands"] == {"recall": [1, 3], "false_flag": [1, 2]}
    assert rep["parts"]["held_out"]["checks"]["agn_shoes"] == {"recall": [1, 1], "false_flag": [0, 1]}
    assert rep["parts"]["held_out"]["categories"]["upper_body"] == {"recall": [0, 0], "false_flag": [0, 0]}
    assert rep["wrong_share"]["held_out"]["dresses"] == [1, 2]
    assert rep["not_checked"] == [f"public/lower_body/{rows[5].key}"]
    assert set(rep["parts"]["tuned"]["checks"]) == {"any", *quality_eval.CHECKS}
    only_tuned = quality_eval.report(tuned, ("tuned",))
    assert set(only_tuned["parts"]) == {"tuned"} and set(only_tuned["wrong_share"]) == {"tuned"}
    v2 = quality_eval.report(rows, ("tuned", "held_out_v2"))
    assert list(v2["parts"]) == ["tuned", "held_out_v2"], "one column pair per asked part, v1 held-out left out"
    assert v2["parts"]["held_out_v2"]["checks"]["any"] == {"recall": [0, 1], "false_flag": [1, 1]}
    assert v2["wrong_share"]["held_out_v2"]["lower_body"] == [1, 2]


def test_report_prints_one_column_pair_per_part(capsys):
    rows = [_judged("upper_body", p, g, f) for p in PARTS for g, f in (("wrong", {"agn_hands"}), ("good", set()))]
    quality_eval.print_report(quality_eval.report(rows, ("held_out", "held_out_v2")))
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("check"))
    assert "held_out recall" in head and "held_out_v2 false flags" in head and "tuned" not in head
    assert "(blind figures: --part held_out_v2" not in out
    quality_eval.print_report(quality_eval.report(rows, ("tuned", "held_out")))
    assert "(blind figures: --part held_out_v2, for the final report)" in capsys.readouterr().out


def test_grades_made_on_other_maps_are_named(tmp_path):
    grades = [{"set": "public", "category": "dresses", "code": "ccd297f"},
              {"set": "samples", "category": "upper_body", "code": "ccd297f"}]
    (tmp_path / "built.json").write_text('{"sets": {"public-dresses": "ccd297f", "samples-upper_body": "abc1234"}}')
    built = quality_eval.built_with(tmp_path)
    assert quality_eval.stale_groups(grades, built) == [
        "samples-upper_body (graded on ccd297f, built with abc1234)"]
    for broken in ("not json", '["a list"]', '{"sets": ["old", "form"]}'):
        (tmp_path / "built.json").write_text(broken)
        assert quality_eval.built_with(tmp_path) == {}
    assert len(quality_eval.stale_groups(grades, {})) == 2


def test_sample_listing_shows_grade_and_flags(capsys):
    rows = [_judged("upper_body", "tuned", "wrong", {"hand_labels", "agn_hands"}),
            _judged("dresses", "tuned", "usable", None)]
    grades = [{"set": r.set, "category": r.category, "key": r.key, "wrong_maps": m}
              for r, m in zip(rows, ["parse;agn", ""], strict=True)]
    quality_eval.print_samples(rows, grades)
    lines = capsys.readouterr().out.splitlines()
    wrong = next(line for line in lines if rows[0].key in line)
    assert "wrong" in wrong and "parse;agn" in wrong and wrong.endswith("agn_hands, hand_labels")
    assert next(line for line in lines if rows[1].key in line).endswith("(not checked)")


def _write_grades(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """rows of (category, key, part, grade) as a grades file (the other columns filled plausibly)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for cat, key, part, grade in rows:
            person, cloth = key.split("__")
            w.writerow({"set": "public", "category": cat, "key": key, "person_file": person + ".jpg",
                        "cloth_file": cloth + ".jpg", "part": part, "grade": grade,
                        "wrong_maps": "parse" if grade == "wrong" else "", "note": "x" if grade == "wrong" else "",
                        "code": "abc1234"})
    return path


def test_grades_compare_counts_only_samples_graded_in_both(tmp_path, capsys):
    before = _write_grades(tmp_path / "before.csv", [
        ("upper_body", "a__1", "held_out_v2", "wrong"), ("upper_body", "b__1", "held_out_v2", "wrong"),
        ("upper_body", "c__1", "held_out_v2", "usable"), ("lower_body", "d__2", "held_out_v2", "wrong"),
        ("lower_body", "e__2", "held_out_v2", "wrong"),  # not regraded: left out of both columns
        ("dresses", "f__3", "tuned", "good")])
    after = _write_grades(tmp_path / "after.csv", [
        ("upper_body", "a__1", "held_out_v2", "usable"), ("upper_body", "b__1", "held_out_v2", "wrong"),
        ("upper_body", "c__1", "held_out_v2", "wrong"), ("lower_body", "d__2", "held_out_v2", "good"),
        ("dresses", "f__3", "tuned", "wrong"),
        ("dresses", "g__3", "tuned", "wrong")])  # graded after only: left out
    pairs = grades_compare.pair_up(grades_compare.read_grades(before), grades_compare.read_grades(after))
    assert [p.key[2] for p in pairs] == ["a__1", "b__1", "c__1", "d__2", "f__3"]
    tab = grades_compare.table(pairs, ("held_out_v2", "tuned"))
    v2 = tab["held_out_v2"]
    assert v2["upper_body"] == {"before": [2, 3], "after": [2, 3], "to_sound": [1, 2], "to_wrong": [1, 1]}
    assert v2["lower_body"] == {"before": [1, 1], "after": [0, 1], "to_sound": [1, 1], "to_wrong": [0, 0]}
    assert "dresses" not in v2 and v2["all"]["before"] == [3, 4] and v2["all"]["after"] == [2, 4]
    assert tab["tuned"]["dresses"] == {"before": [0, 1], "after": [1, 1], "to_sound": [0, 0], "to_wrong": [1, 1]}
    assert grades_compare.main(["--before", str(before), "--after", str(after), "--part", "held_out_v2"]) == 0
    out = capsys.readouterr().out
    cells = {tuple(line.split("|")[0].split()): [c.strip() for c in line.split("|")[1:]]
             for line in out.splitlines() if line.count("|") == 4}
    assert cells[("held_out_v2", "all")] == ["75.0 % (3/4)", "50.0 % (2/4)", "2/3", "1/1"]
    assert cells[("held_out_v2", "lower_body")] == ["100.0 % (1/1)", "0.0 % (0/1)", "1/1", "0/0"]
    counts = next(line for line in out.splitlines() if line.startswith("held_out_v2  before")).split()
    assert " ".join(counts) == "held_out_v2 before 0 / 1 / 3 after 1 / 1 / 2" and "tuned" not in out
    assert grades_compare.main(["--before", str(before), "--after", str(after), "--part", "held_out"]) == 0
    assert "no sample of held_out is graded in both" in capsys.readouterr().out


def test_grades_compare_refuses_files_that_do_not_match(tmp_path, capsys):
    before = _write_grades(tmp_path / "before.csv", [("upper_body", "a__1", "held_out", "wrong")])
    moved = _write_grades(tmp_path / "moved.csv", [("upper_body", "a__1", "tuned", "wrong")])
    assert grades_compare.main(["--before", str(before), "--after", str(moved)]) == 2
    assert "public/upper_body/a__1: part held_out before, tuned after" in capsys.readouterr().err
    twice = _write_grades(tmp_path / "twice.csv", [("upper_body", "a__1", "held_out", "wrong")] * 2)
    assert grades_compare.main(["--before", str(before), "--after", str(twice)]) == 2
    assert "a__1 is graded twice" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("set,category,key,part,grade\npublic,upper_body,a__1,held_out,bad\n")
    assert grades_compare.main(["--before", str(before), "--after", str(tmp_path / "bad.csv")]) == 2
    assert "grade 'bad' is not one of good, usable, wrong" in capsys.readouterr().err
    (tmp_path / "short.csv").write_text("set,category,key\npublic,upper_body,a__1\n")
    assert grades_compare.main(["--before", str(tmp_path / "short.csv"), "--after", str(before)]) == 2
    assert "no column part, grade" in capsys.readouterr().err
    assert grades_compare.main(["--before", str(tmp_path / "absent.csv"), "--after", str(before)]) == 2
    assert "absent.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        grades_compare.main(["--part", "held-out"])
    assert exc.value.code == 2

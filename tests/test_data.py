"""edge_dfd.images.data: both layouts, every validation error, stratified sampling, summaries, `edge-dfd data`."""

import csv
import os
import shutil
from pathlib import Path

import pytest
from conftest import FACES140K, needs_faces140k
from synth import HEADER, IMAGES_SUBDIR, make_140k, make_folder_layout

from edge_dfd.core.errors import DataError
from edge_dfd.images import data


@pytest.fixture
def ds(tiny140k, tmp_path):
    """A writable copy of the generated 140k-layout dataset."""
    return Path(shutil.copytree(tiny140k, tmp_path / "ds"))


def read_rows(root, split="train"):
    with open(root / f"{split}.csv", newline="") as f:
        return list(csv.reader(f))


def write_rows(root, rows, split="train"):
    with open(root / f"{split}.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


def expect_error(root, *needles, split="train"):
    with pytest.raises(DataError) as ei:
        data.load_split(root, split)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


# ---------------------------------------------------------------- good data


def test_140k_layout_records(tiny140k):
    d = data.load_dataset(tiny140k)
    assert list(d) == ["train", "valid", "test"]
    assert {s: data.class_counts(r) for s, r in d.items()} == {
        "train": {"real": 16, "fake": 16}, "valid": {"real": 8, "fake": 8}, "test": {"real": 8, "fake": 8}}
    r = d["train"][0]
    assert r.path.is_absolute() and r.path.is_file()
    assert (r.label, r.is_fake) == (1, 0) and r.path.parent.name == "real"
    fake = [x for x in d["train"] if x.label == 0][0]
    assert fake.is_fake == 1 and fake.path.parent.name == "fake"
    assert data.detect_layout(tiny140k) == "140k"
    assert data.split_source(tiny140k, "valid") == (tiny140k / "valid.csv").resolve()


def test_crlf_and_quoted_fields_are_fine(ds):
    rows = read_rows(ds)
    with open(ds / "train.csv", "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    assert len(data.load_split(ds, "train")) == 32


def test_split_may_be_absent(ds):
    (ds / "train.csv").unlink()
    (ds / "valid.csv").unlink()
    assert data.available_splits(ds) == ["test"]
    assert list(data.load_dataset(ds)) == ["test"]
    with pytest.raises(DataError, match="has no 'train' split"):
        data.load_split(ds, "train")


def test_folder_layout(tmp_path):
    root = make_folder_layout(tmp_path / "f", counts={"train": 3, "test": 2})
    (root / "train" / "real" / "notes.txt").write_text("ignored: not an image")
    d = data.load_dataset(root)
    assert data.detect_layout(root) == "folder"
    assert {s: data.class_counts(r) for s, r in d.items()} == {"train": {"real": 3, "fake": 3},
                                                              "test": {"real": 2, "fake": 2}}
    assert all(r.path.suffix == ".jpg" for r in d["train"])


@needs_faces140k
def test_shared_sample_counts():
    d = data.load_dataset(FACES140K)
    assert {s: len(r) for s, r in d.items()} == {"train": 699, "valid": 150, "test": 150}
    assert data.class_counts(d["train"]) == {"real": 350, "fake": 349}


# ---------------------------------------------------------------- every validation error


def test_missing_column(ds):
    rows = [r[:4] + r[5:] for r in read_rows(ds)]  # drop label_str
    write_rows(ds, rows)
    expect_error(ds, "train.csv", "missing column(s) 'label_str'", ",original_path,id,label,label_str,path")


def test_extra_column(ds):
    rows = read_rows(ds)
    write_rows(ds, [r + (["split"] if i == 0 else ["x"]) for i, r in enumerate(rows)])
    expect_error(ds, "train.csv", "extra column(s) 'split'")


def test_byte_order_mark(ds):
    p = ds / "train.csv"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    expect_error(ds, "train.csv", "byte-order mark")


def test_wrong_delimiter(ds):
    p = ds / "train.csv"
    p.write_text(p.read_text().replace(",", ";"))
    expect_error(ds, "train.csv", "semicolon", "expected commas")


def test_not_utf8(ds):
    p = ds / "train.csv"
    p.write_bytes(p.read_bytes() + b"99,\xff\xfe,x,1,real,train/real/x.jpg\n")
    expect_error(ds, "train.csv", "not UTF-8")


def test_blank_lines(ds):
    p = ds / "train.csv"
    lines = p.read_text().splitlines()
    lines.insert(3, "")
    lines.insert(6, "  ")
    p.write_text("\n".join(lines) + "\n")
    expect_error(ds, "train.csv", "blank line(s) at 2: line 4, line 7")


def test_label_not_binary(ds):
    rows = read_rows(ds)
    rows[2][3] = "2"
    rows[5][3] = "real"
    write_rows(ds, rows)
    expect_error(ds, "label not 0 or 1 at 2: line 3 ('2'), line 6 ('real')")


def test_label_and_label_str_disagree(ds):
    rows = read_rows(ds)
    rows[1][4] = "fake"  # label 1 = real
    write_rows(ds, rows)
    expect_error(ds, "train.csv", "label and label_str disagree", "line 2")


def test_duplicate_rows(ds):
    rows = read_rows(ds)
    write_rows(ds, rows + [rows[1], rows[3]])
    msg = expect_error(ds, "duplicate image row(s) at 2:")
    assert "also on line 2" in msg


def test_wrong_field_count(ds):
    rows = read_rows(ds)
    rows[4] = rows[4][:5]
    write_rows(ds, rows)
    expect_error(ds, "wrong number of fields (expected 6) at line 5 (5 fields)")


def test_missing_image_files_lists_first_few_and_count(ds):
    rows = read_rows(ds)
    for r in rows[1:9]:
        (ds / IMAGES_SUBDIR / r[5]).unlink()
    msg = expect_error(ds, "train.csv", "missing image file(s) at 8:", "(+3 more)")
    assert rows[1][5] in msg and str(ds / IMAGES_SUBDIR) in msg


@pytest.mark.parametrize("bad, why", [("/etc/passwd", "absolute path"), ("../../outside.jpg", "contains '..'"),
                                      ("train/../../x.jpg", "contains '..'"), ("C:\\x.jpg", "absolute path"),
                                      ("", "empty")])
def test_unsafe_paths(ds, bad, why):
    rows = read_rows(ds)
    rows[1][5] = bad
    write_rows(ds, rows)
    expect_error(ds, "unsafe image path at line 2", why)


def test_symlink_escaping_root(ds, tmp_path):
    outside = tmp_path / "outside.jpg"
    rows = read_rows(ds)
    target = ds / IMAGES_SUBDIR / rows[1][5]
    shutil.copy(target, outside)
    target.unlink()
    os.symlink(outside, target)
    expect_error(ds, "escapes the dataset folder (symlink) at line 2")


def test_symlinked_images_folder_is_fine(ds, tmp_path):
    """A dataset whose whole image tree lives elsewhere (symlinked folder) is legitimate."""
    moved = tmp_path / "elsewhere"
    shutil.move(ds / "real_vs_fake", moved)
    os.symlink(moved, ds / "real_vs_fake")
    assert len(data.load_split(ds, "train")) == 32


def test_empty_and_header_only(ds):
    (ds / "train.csv").write_text("")
    expect_error(ds, "train.csv: is empty")
    write_rows(ds, [HEADER])
    expect_error(ds, "train.csv: has a header but no rows")


def test_several_problem_kinds_in_one_line(ds):
    rows = read_rows(ds)
    rows[1][3] = "7"
    rows[2][5] = "/abs.jpg"
    write_rows(ds, rows)
    msg = expect_error(ds, "label not 0 or 1 at line 2", "unsafe image path at line 3")
    assert msg.count("train.csv") == 1


def test_not_a_dataset(tmp_path):
    with pytest.raises(DataError, match="not a dataset folder"):
        data.load_dataset(tmp_path)
    with pytest.raises(DataError, match="dataset folder not found"):
        data.load_dataset(tmp_path / "nope")
    (tmp_path / "real-vs-fake").mkdir()
    with pytest.raises(DataError, match="looks like the images folder"):
        data.load_dataset(tmp_path)


def test_same_image_in_two_splits(ds):
    rows_t, rows_v = read_rows(ds, "train"), read_rows(ds, "valid")
    write_rows(ds, rows_v + [rows_t[1]], "valid")
    with pytest.raises(DataError, match=r"appear in more than one split"):
        data.load_dataset(ds)


def test_folder_layout_errors(tmp_path):
    root = make_folder_layout(tmp_path / "f", counts={"train": 2})
    (root / "train" / "Real ").mkdir()
    with pytest.raises(DataError, match=r"unexpected subfolder\(s\) Real ; expected only real/ and fake/"):
        data.load_split(root, "train")
    shutil.rmtree(root / "train" / "Real ")
    outside = tmp_path / "o.jpg"
    shutil.copy(next((root / "train" / "real").iterdir()), outside)
    os.symlink(outside, root / "train" / "fake" / "link.jpg")
    with pytest.raises(DataError, match=r"escapes the dataset folder \(symlink\) at fake/link.jpg"):
        data.load_split(root, "train")
    empty = make_folder_layout(tmp_path / "e", counts={"train": 0})
    (empty / "train" / "real").mkdir(parents=True, exist_ok=True)
    with pytest.raises(DataError, match="no images"):
        data.load_split(empty, "train")


# ---------------------------------------------------------------- sampling and summary


def test_stratified_sample_is_deterministic_and_stratified(tmp_path):
    root = make_140k(tmp_path / "s", counts={"train": 30}, size=16, splits=("train",))
    recs = data.load_split(root, "train")
    a = data.stratified_sample(recs, 10, seed=3)
    assert a == data.stratified_sample(recs, 10, seed=3)
    assert a != data.stratified_sample(recs, 10, seed=4)
    assert data.class_counts(a) == {"real": 5, "fake": 5}
    assert [recs.index(r) for r in a] == sorted(recs.index(r) for r in a)  # input order kept
    b = data.stratified_sample(recs, 10, seed=3, exclude=a)
    assert len(b) == 10 and not set(a) & set(b)
    unbalanced = [r for r in recs if r.label == 1] + [r for r in recs if r.label == 0][:10]  # 30 real, 10 fake
    c = data.stratified_sample(unbalanced, 8, seed=0)
    assert data.class_counts(c) == {"real": 6, "fake": 2}
    assert data.stratified_sample(recs, 1000) == recs


def test_summarize(tiny140k):
    text = data.summarize(data.load_dataset(tiny140k))
    lines = text.splitlines()
    assert lines[0].split() == ["split", "real", "fake", "total"]
    assert lines[1].split() == ["train", "16", "16", "32"]
    assert lines[-1].split() == ["all", "32", "32", "64"]


def test_cli_data(tiny140k, ds, cli_run):
    import json

    code, out, err = cli_run("data", tiny140k, "--json")
    assert code == 0, err
    assert json.loads(out)["splits"]["valid"] == {"real": 8, "fake": 8, "total": 16}
    code, out, _ = cli_run("data", tiny140k)
    assert code == 0 and "train         16      16      32" in out
    rows = read_rows(ds)
    rows[3][3] = "5"
    write_rows(ds, rows)
    code, out, err = cli_run("data", ds)
    assert code == 1 and err.startswith("error: ") and "label not 0 or 1 at line 4" in err
    assert len(err.strip().splitlines()) == 1

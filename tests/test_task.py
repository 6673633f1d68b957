import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from zoo2vec import Task, TaskError


def _image_folder(root, sizes=((8, 8), (20, 12))):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8)).save(root / label / f"{i}.png")
    return root


def test_from_arrays_images_and_texts():
    task = Task.from_arrays([np.zeros((8, 8)), np.ones((8, 8, 3)) * 255, np.ones((1, 5, 5))], ["b", "a", "b"])
    assert task.modality == "image" and task.label_names == ("a", "b")
    assert task.labels.tolist() == [1, 0, 1]
    assert task.samples[1].shape == (3, 8, 8) and task.samples[1].max() == 1.0
    texts = Task.from_arrays(["good", "bad", "fine"], [1, 0, 1], label_names=["neg", "pos"])
    assert texts.modality == "text" and texts.label_names == ("neg", "pos")


@pytest.mark.parametrize("samples, labels, message", [
    ([], [], "empty"),
    (["a", "b"], ["x", "x"], "single class"),
    (["a", np.zeros((4, 4))], [0, 1], "mixes texts and images"),
    ([np.zeros(10), np.zeros((4, 4))], [0, 1], r"sample 0 has shape \(10,\)"),
    ([np.zeros((4, 4, 5)), np.zeros((4, 4))], [0, 1], "not an image"),
    ([np.zeros((1, 1)), np.zeros((4, 4))], [0, 1], "too small to resize"),
    ([np.full((4, 4), np.nan), np.zeros((4, 4))], [0, 1], "NaN"),
    (["a", "b"], [0], "one label per sample"),
    (["a", "  "], [0, 1], "empty text"),
])
def test_bad_tasks_name_the_problem(samples, labels, message):
    with pytest.raises(TaskError, match=message):
        Task.from_arrays(samples, labels)


def test_from_folder_of_mixed_size_images(tmp_path):
    task = Task.from_folder(_image_folder(tmp_path / "task"))
    assert len(task) == 4 and task.label_names == ("cat", "dog")
    assert {s.shape for s in task.samples} == {(1, 8, 8), (1, 20, 12)}


def test_unreadable_image_is_named(tmp_path):
    root = _image_folder(tmp_path / "task")
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(TaskError, match="broken.png"):
        Task.from_folder(root)


def test_from_table_csv_parquet_and_columns(tmp_path):
    df = pd.DataFrame({"sentence": ["good film", "bad film", "great"], "y": ["pos", "neg", "pos"]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        task = Task.from_path(tmp_path / name, text_column="sentence", label_column="y")
        assert task.label_names == ("neg", "pos") and task.samples[0] == "good film"
    with pytest.raises(TaskError, match=r"lacks column\(s\) \['text', 'label'\]"):
        Task.from_path(tmp_path / "t.csv")


def test_from_zip_of_folder_and_of_csv(tmp_path):
    root = _image_folder(tmp_path / "digits")
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as z:
        for f in root.rglob("*.png"):
            z.write(f, f.relative_to(tmp_path))
    assert Task.from_path(tmp_path / "images.zip").label_names == ("cat", "dog")
    with zipfile.ZipFile(tmp_path / "table.zip", "w") as z:
        z.writestr("data/task.csv", "text,label\nhello,a\nbye,b\n")
    assert Task.from_path(tmp_path / "table.zip").samples == ("hello", "bye")


def test_unsafe_or_broken_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../escape/a.txt", "x")
    with pytest.raises(TaskError, match="leaves the archive"):
        Task.from_path(tmp_path / "evil.zip")
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(TaskError, match="cannot read broken.zip"):
        Task.from_path(tmp_path / "broken.zip")


def test_path_errors(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        Task.from_path(tmp_path / "nope.csv")
    (tmp_path / "task.json").write_text("{}")
    with pytest.raises(TaskError, match="give a folder"):
        Task.from_path(tmp_path / "task.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match="holds no samples"):
        Task.from_path(tmp_path / "empty")


def test_label_names_take_names_or_indices_and_drop_unused_classes():
    texts = ["good", "bad", "fine"]
    by_name = Task.from_arrays(texts, ["pos", "neg", "pos"], label_names=["neg", "neutral", "pos"])
    by_index = Task.from_arrays(texts, np.array([2, 0, 2]), label_names=["neg", "neutral", "pos"])
    for task in (by_name, by_index):
        assert task.label_names == ("neg", "pos") and task.labels.tolist() == [1, 0, 1]
    with pytest.raises(TaskError, match=r"labels \['meh'\] are not in label_names \['neg', 'pos'\]"):
        Task.from_arrays(texts, ["pos", "meh", "pos"], label_names=["neg", "pos"])
    with pytest.raises(TaskError, match=r"must lie in 0\.\.1"):
        Task.from_arrays(texts, [0, 2, 1], label_names=["neg", "pos"])


def test_image_layouts_and_non_numeric_pixels():
    rgba = np.zeros((6, 5, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    task = Task.from_arrays([rgba, np.zeros((3, 6, 5))], ["a", "b"])
    assert task.samples[0].shape == (3, 6, 5) and task.samples[0][0].min() == 1.0 and task.samples[0][1:].max() == 0.0
    with pytest.raises(TaskError, match="sample 1 has non-numeric dtype"):
        Task.from_arrays([np.zeros((4, 4)), np.array([["a", "b"], ["c", "d"]], dtype=object)], ["a", "b"])


def test_folder_skips_hidden_and_other_files_and_zip_of_class_folders_at_root(tmp_path):
    root = _image_folder(tmp_path / "task")
    (root / "cat" / "notes.md").write_text("not a sample")
    (root / "cat" / ".hidden.png").write_bytes(b"not read")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(b"not read")
    (root / "README.txt").write_text("a file at the top is no class")
    assert len(Task.from_folder(root)) == 4
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as z:
        for label, text in (("pos", "good film"), ("neg", "bad film")):
            z.writestr(f"{label}/0.txt", text)
    task = Task.from_path(tmp_path / "flat.zip")
    assert task.label_names == ("neg", "pos") and task.samples == ("bad film", "good film")


def test_a_capped_task_keeps_every_class_and_its_own_pairs():
    texts = [f"{c} {i}" for c, n in (("big", 40), ("mid", 12), ("small", 2)) for i in range(n)]
    task = Task.from_arrays(texts, [t.split()[0] for t in texts])
    capped = task.capped(12)
    counts = {name: int((capped.labels == i).sum()) for i, name in enumerate(capped.label_names)}
    assert counts == {"big": 5, "mid": 5, "small": 2}  # the small class gives all it has, the rest take turns
    assert all(s.split()[0] == capped.label_names[y] for s, y in zip(capped.samples, capped.labels))
    assert len(set(capped.samples)) == 12 and set(capped.samples) <= set(texts)
    assert task.capped(12).samples == capped.samples  # the same cap, the same samples
    assert task.capped(len(task)) is task
    assert sorted(task.capped(1).labels.tolist()) == [0, 1, 2]  # one of each class, whatever the cap

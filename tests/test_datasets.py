"""Every dataset format, written for real in its on-disk format and read back."""

import csv
import gzip
import json
import re
import pickle

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from noisyctl.data import load_dataset
from noisyctl.errors import NoisyctlError


def load(name, root, **options):
    return load_dataset({"name": name, "root": None if root is None else str(root), "options": options})


def write_image(path, color, size=(20, 12), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


# --- imagefolder ------------------------------------------------------------

@pytest.fixture
def folder_tree(tmp_path):
    root = tmp_path / "pets"
    for subset, count in (("train", 3), ("val", 1)):
        for label, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            for i in range(count):
                write_image(root / subset / label / f"{label}{i}.png", color)
    write_image(root / "train" / "dog" / "nested" / "puppy.jpg", (0, 0, 250))  # subfolders count, as in ImageFolder
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


def test_imagefolder_with_train_and_val_subsets(folder_tree):
    data = load("imagefolder", folder_tree, size=16, normalize=False)
    assert data.class_names == ["cat", "dog"]
    assert data.train.ids[:3] == ["train/cat/cat0.png", "train/cat/cat1.png", "train/cat/cat2.png"]
    assert "train/dog/nested/puppy.jpg" in data.train.ids
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert data.test.ids == ["val/cat/cat0.png", "val/dog/dog0.png"]
    assert data.input_shape == (3, 16, 16)
    image, index = data.train[0]
    assert index == 0 and tuple(image.shape) == (3, 16, 16)
    assert image[0].mean() > 0.99 and image[2].mean() < 0.01  # red stays red


def test_a_relabeled_copy_of_class_folders_moves_images_to_their_new_class(folder_tree, tmp_path):
    """The cleaned data as an ImageFolder user takes it: the same layout, each training image in
    the folder of its class as it now stands, removed ones left out, the val/ subset as it was;
    hard links where the disk allows, so the copy takes no space."""
    data = load("imagefolder", folder_tree, size=16)
    out = tmp_path / "cleaned"
    written = data.relabeled_copy({"train/cat/cat0.png": "dog", "train/dog/dog1.png": None,
                                   "train/dog/nested/puppy.jpg": "dog"}, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == len(files) == 8 and files == [
        "train/cat/cat1.png", "train/cat/cat2.png", "train/dog/cat0.png", "train/dog/dog0.png", "train/dog/dog2.png",
        "train/dog/nested/puppy.jpg", "val/cat/cat0.png", "val/dog/dog0.png"]
    assert (out / "train/dog/cat0.png").read_bytes() == (folder_tree / "train/cat/cat0.png").read_bytes()
    assert (folder_tree / "train/dog/dog1.png").is_file()  # the dataset itself is untouched
    assert (out / "val/cat/cat0.png").stat().st_ino == (folder_tree / "val/cat/cat0.png").stat().st_ino  # a link
    assert load("imagefolder", out, size=16).train.labels.tolist() == [0, 0, 1, 1, 1, 1]
    with pytest.raises(NoisyctlError, match="exists and is not an empty folder"):
        data.relabeled_copy({}, out)
    with pytest.raises(NoisyctlError, match="is inside the dataset"):
        data.relabeled_copy({}, folder_tree / "cleaned")
    assert not list(tmp_path.glob(".cleaned.*"))  # no half-built folder left behind


def test_images_listed_with_their_classes_load_as_kaggle_and_the_hub_lay_them_out(tmp_path):
    """Kaggle's cassava layout (train.csv: image_id,label beside train_images/, an unlabeled
    test_images/ and a label map that is no list), its dog-breed layout (labels.csv: id,breed, ids
    without the suffix) and the Hub's imagefolder (train/ and test/ with a metadata.csv each). Read
    as class folders, the cassava folder was two classes: train_images and test_images."""
    cassava = tmp_path / "cassava"
    for i in range(8):
        write_image(cassava / "train_images" / f"{1000 + i}.jpg", (60 * (i % 4), 0, 0))
    write_image(cassava / "test_images" / "9000.jpg", (0, 0, 0))
    rows = "".join(f"{1000 + i}.jpg,{i % 4}\n" for i in range(8))
    (cassava / "train.csv").write_text("image_id,label\n" + rows)
    (cassava / "sample_submission.csv").write_text("image_id,label\n9000.jpg,4\n")
    (cassava / "label_num_to_disease_map.json").write_text(
        '{"0": "Cassava Bacterial Blight (CBB)", "1": "CBSD", "2": "CGM", "3": "CMD", "4": "Healthy"}')
    data = load("imagefolder", cassava, size=8)
    assert data.class_names == ["Cassava Bacterial Blight (CBB)", "CBSD", "CGM", "CMD", "Healthy"]
    assert data.train.ids[:2] == ["train_images/1000.jpg", "train_images/1001.jpg"]
    assert data.train.labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3] and data.test is None
    assert "images and labels from train.csv (columns 'image_id' and 'label')" in data.notes
    assert f"class names from {cassava / 'label_num_to_disease_map.json'}" in data.notes
    (cassava / "label_num_to_disease_map.json").write_text('{"0": "CBB", "1": "CBSD"}')  # names too few: numbers
    assert load("imagefolder", cassava, size=8).class_names == ["0", "1", "2", "3"]
    dogs = tmp_path / "dogs"
    for i, breed in enumerate(["pug", "beagle", "pug"]):
        write_image(dogs / "train" / f"{i:032x}.jpg", (0, 80 * i, 0))
    (dogs / "labels.csv").write_text("id,breed\n" + "".join(f"{i:032x},{b}\n" for i, b in
                                                               enumerate(["pug", "beagle", "pug"])))
    breeds = load("imagefolder", dogs, size=8)
    assert breeds.class_names == ["beagle", "pug"] and breeds.train.ids[1] == f"train/{1:032x}.jpg"
    assert breeds.train.labels.tolist() == [1, 0, 1]
    hub = tmp_path / "hub"
    for split, count in (("train", 4), ("test", 2)):
        for i in range(count):
            write_image(hub / split / "images" / f"{i}.png", (0, 0, 100 * (i % 2)))
        (hub / split / "metadata.csv").write_text("file_name,label\n" + "".join(
            f"images/{i}.png,{'cat' if i % 2 else 'dog'}\n" for i in range(count)))
    pets = load("imagefolder", hub, size=8)
    assert pets.class_names == ["cat", "dog"] and pets.train.ids[0] == "train/images/0.png"
    assert pets.test.ids == ["test/images/0.png", "test/images/1.png"] and pets.test.labels.tolist() == [1, 0]
    # a list given by name, a missing image, a name two images share
    assert len(load("imagefolder", dogs, size=8, image_list="labels.csv", label_column="breed").train) == 3
    (dogs / "labels.csv").write_text("id,breed\nlost,pug\n" + f"{0:032x},pug\n" * 2)
    with pytest.raises(NoisyctlError, match="labels.csv names 1 images not under .* \\(first: 'lost'\\)"):
        load("imagefolder", dogs, image_list="labels.csv")
    write_image(cassava / "test_images" / "1000.jpg", (0, 0, 0))
    with pytest.raises(NoisyctlError, match="record 1: '1000.jpg' may be any of test_images/1000.jpg, "
                                            "train_images/1000.jpg; give paths from the dataset's folder"):
        load("imagefolder", cassava, image_list="train.csv", image_column="image_id")


def write_datumaro(root, subset, items, classes):
    """One subset of a dataset in Datumaro's own format, as OTX trains from it and `datum convert
    -f datumaro` writes it: annotations/<subset>.json and the images under images/<subset>/."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"{subset}.json").write_text(json.dumps({
        "dm_format_version": "1.0", "info": {}, "items": items,
        "categories": {"label": {"labels": [{"name": c, "parent": "", "attributes": []} for c in classes],
                                 "attributes": []}}}))


def datumaro_item(item_id, label_ids, path=None):
    return {"id": item_id, "annotations": [{"id": k, "type": "label", "attributes": {}, "group": 0, "label_id": label}
                                           for k, label in enumerate(label_ids)],
            "attr": {}, **({"image": {"path": path, "size": [12, 20]}} if path is not False else {})}


def test_a_datumaro_dataset_loads_as_otx_reads_it(tmp_path, cli):
    """Datumaro's own format: the classes in the annotation file's categories, each item's label
    annotation, its image under images/<subset>/ by its path (an item without one: <id>.jpg; an
    older export: under images/). Found by synth from --data-root alone. Read as class folders, it
    was one class, 'images'."""
    root, classes = tmp_path / "otx-data", ["cat", "dog", "fox"]
    for i in range(6):
        write_image(root / "images" / "train" / f"{i}.png", (40 * i, 0, 0))
    write_image(root / "images" / "train" / "6.jpg", (0, 0, 0))
    write_image(root / "images" / "old.png", (0, 9, 0))
    write_datumaro(root, "train", [datumaro_item(str(i), [i % 3], f"{i}.png") for i in range(6)]
                   + [datumaro_item("6", [2], path=False), datumaro_item("old", [1], "old.png")], classes)
    write_image(root / "images" / "val" / "v0.png", (0, 0, 90))
    write_datumaro(root, "val", [datumaro_item("v0", [1], "v0.png")], classes)
    data = load("imagefolder", root, size=8)
    assert data.class_names == classes and data.train.labels.tolist() == [0, 1, 2, 0, 1, 2, 2, 1]
    assert data.train.ids[-2:] == ["images/train/6.jpg", "images/old.png"] and data.test.ids == ["images/val/v0.png"]
    assert "a Datumaro dataset: train.json, and val.json as the test subset" in data.notes
    result = cli.json("synth", "--data-root", root, "-n", "uniform", "-r", "0.25", "-o", tmp_path / "l.h5")
    assert result["dataset"]["name"] == "imagefolder" and result["samples"] == 8 and result["flipped"] == 2
    assert "a Datumaro dataset: train.json, and val.json as the test subset" in result["notes"]  # synth says so too
    # a relabeled copy is the annotation file OTX trains from, with label_ids set and removed items left out
    assert data.relabeled_copy({data.train.ids[0]: "fox", data.train.ids[1]: None}, tmp_path / "train.json") == 7
    copied = json.loads((tmp_path / "train.json").read_text())
    assert [item["id"] for item in copied["items"]] == ["0", "2", "3", "4", "5", "6", "old"]
    assert [item["annotations"][0]["label_id"] for item in copied["items"]] == [2, 2, 0, 1, 2, 2, 1]
    assert "the dataset's own file" in cli.error("export", tmp_path / "l.h5", "--data-copy",
                                                 root / "annotations" / "train.json")
    write_datumaro(root, "val", [datumaro_item("v0", [0, 1], "v0.png")], classes)
    with pytest.raises(NoisyctlError, match="val.json, item 'v0' has 2 label annotations, not one"):
        load("imagefolder", root)
    write_datumaro(root, "val", [datumaro_item("v0", [1], "gone.png")], classes)
    with pytest.raises(NoisyctlError, match="item 'v0': its image gone.png is not in .*images/val"):
        load("imagefolder", root)


def test_a_label_studio_image_export_finds_its_uploaded_images(tmp_path):
    """Label Studio's JSON export of an image classification project: each task's image is the
    uploaded file (/data/upload/2/8f2a1b3c-cat0.png), its class under the 'choice' control; the
    images are found by their own names beside the export."""
    root = tmp_path / "pets"
    tasks = []
    for i, kind in enumerate(["cat", "dog", "cat", "dog"]):
        write_image(root / "photos" / f"{kind}{i}.png", (200 if kind == "cat" else 0, 0, 60 * i))
        tasks.append({"id": 10 + i, "data": {"image": f"/data/upload/2/{i:07d}f-{kind}{i}.png"},
                      "annotations": [{"was_cancelled": False, "ground_truth": False, "result": [
                          {"type": "choices", "from_name": "choice", "to_name": "image",
                           "value": {"choices": [kind.title()]}}]}]})
    (root / "project-2-at-2024-05-01-10-00-3c1f.json").write_text(json.dumps(tasks))
    data = load("imagefolder", root, size=8)
    assert data.class_names == ["Cat", "Dog"] and data.train.labels.tolist() == [0, 1, 0, 1]
    assert data.train.ids == ["photos/cat0.png", "photos/dog1.png", "photos/cat2.png", "photos/dog3.png"]
    assert data.annotations is None  # one annotator a task: nothing to weigh them by
    # a second annotator who saw the last two images: each one's labels are kept beside the majority
    for task, said in zip(tasks[2:], ["Dog", "Dog"]):
        task["annotations"][0]["completed_by"] = 1
        task["annotations"].append({"completed_by": 2, "was_cancelled": False, "ground_truth": False, "result": [
            {"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [said]}}]})
    (root / "project-2-at-2024-05-01-10-00-3c1f.json").write_text(json.dumps(tasks))
    both = load("imagefolder", root, size=8)
    assert both.annotations.names == ["1", "2"]
    assert both.annotations.labels.tolist() == [[-1, -1], [-1, -1], [0, 1], [1, 1]]
    # the relabeled copy is the export again, the correction an annotation of the image marked ground truth
    assert data.relabeled_copy({"photos/dog1.png": "Cat"}, tmp_path / "cleaned.json") == 4
    fixed = json.loads((tmp_path / "cleaned.json").read_text())[1]["annotations"][-1]
    assert fixed["ground_truth"] and fixed["result"][0]["to_name"] == "image"
    assert fixed["result"][0]["value"] == {"choices": ["Cat"]}
    # their Dawid-Skene aggregate instead of the vote needs three annotators' labels of some image:
    # two who disagree fit as well with either right
    with pytest.raises(NoisyctlError, match="needs three annotators' labels of some samples"):
        load("imagefolder", root, size=8, aggregate="dawid-skene")
    assert not any("aggregate=dawid-skene" in note for note in both.notes)  # so it is not offered
    # a choices control of any name beside the image and the task's id is the label
    for task in tasks:
        for annotation in task["annotations"]:
            annotation["result"][0]["from_name"] = "animal"
    (root / "project-2-at-2024-05-01-10-00-3c1f.json").write_text(json.dumps(tasks))
    assert load("imagefolder", root, size=8).train.labels.tolist() == both.train.labels.tolist()


def write_hub_images(folder, split, colors, labels, label_names):
    """One split of an image dataset as the Hub stores it: Parquet, an Image column of {bytes, path}
    structs (PNG bytes) and a ClassLabel column, the features in the schema's metadata."""
    import io
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    images = []
    for color in colors:
        encoded = io.BytesIO()
        Image.new("RGB", (12, 10), color).save(encoded, format="PNG")
        images.append({"bytes": encoded.getvalue(), "path": None})
    features = {"image": {"_type": "Image"}, "labels": {"names": label_names, "_type": "ClassLabel"}}
    table = pa.table({"image": images, "labels": pa.array(labels, pa.int64())})
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})}),
                   folder / "data" / f"{split}-00000-of-00001.parquet")


def test_images_held_in_a_hub_dataset_s_parquet_files_load_with_its_class_names(cli, tmp_path):
    """A dataset cloned from the Hub (beans, cifar10 there): data/train-*.parquet and
    data/test-*.parquet whose Image column holds each image's PNG bytes."""
    hub = tmp_path / "beans"
    write_hub_images(hub, "train", [(200, 0, 0), (0, 200, 0), (0, 0, 200), (0, 200, 0)], [0, 1, 2, 1],
                     ["angular_leaf_spot", "bean_rust", "healthy"])
    write_hub_images(hub, "test", [(0, 0, 200)], [2], ["angular_leaf_spot", "bean_rust", "healthy"])
    beans = load("imagefolder", hub)
    assert beans.class_names == ["angular_leaf_spot", "bean_rust", "healthy"]
    assert beans.train.ids == ["train/0", "train/1", "train/2", "train/3"] and beans.test.ids == ["test/0"]
    assert beans.train.labels.tolist() == [0, 1, 2, 1] and beans.test.labels.tolist() == [2]
    assert beans.input_shape == (3, 10, 10) and "images from column 'image'" in " ".join(beans.notes)
    pixels = load("imagefolder", hub, normalize=False).train[1][0]
    assert pixels[1].mean() > 0.75 and pixels[0].max() < 0.05  # green decoded as green
    # the review page shows the image as stored, not as cropped for the model
    with Image.open(beans.train.picture(1)) as stored:
        assert stored.size == (12, 10) and stored.getpixel((0, 0)) == (0, 200, 0)
    # a relabeled copy is the split's Parquet file, as the Hub takes it back: ClassLabel integers, features kept
    assert beans.relabeled_copy({"train/0": "healthy", "train/3": None}, tmp_path / "train-clean.parquet") == 3
    import pyarrow.parquet as pq
    clean = pq.read_table(tmp_path / "train-clean.parquet")
    assert clean.column("labels").to_pylist() == [2, 1, 2] and b"huggingface" in clean.schema.metadata
    assert clean.column("image").to_pylist()[1] == pq.read_table(hub / "data" / "train-00000-of-00001.parquet") \
        .column("image").to_pylist()[1]
    one_file = load("imagefolder", hub / "data" / "train-00000-of-00001.parquet")  # a split's file alone
    assert one_file.train.ids == beans.train.ids and one_file.test is None
    write_hub_parquet(tmp_path / "texts.parquet", {"text": ["a", "b"], "label": [0, 1]}, ["x", "y"])
    with pytest.raises(NoisyctlError, match="texts.parquet holds no column of images"):
        load("imagefolder", tmp_path / "texts.parquet")
    # named where a dataset's name belongs, the folder is images, not text
    assert "--dataset imagefolder --data-root" in cli.error("train", "-d", hub, "-o", tmp_path / "run.h5")


def test_imagefolder_flat_layout_and_grayscale(tmp_path):
    for label in ("a", "b"):
        write_image(tmp_path / label / "x.png", 128, mode="L")
    data = load("imagefolder", tmp_path, size=8, channels=1)
    assert data.test is None and data.train.ids == ["a/x.png", "b/x.png"]
    assert tuple(data.train[1][0].shape) == (1, 8, 8)
    # 16-bit grayscale (scans, microscopy) keeps its shades instead of clipping to white
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(tmp_path / "b" / "x.png")
    assert Image.open(tmp_path / "b" / "x.png").mode.startswith("I;16")
    shade = load("imagefolder", tmp_path, size=8, channels=1, normalize=False).train[1][0]
    assert float(shade.mean()) == pytest.approx(40000 / 65535, abs=0.01)


def test_a_large_jpeg_decoded_at_reduced_scale_matches_the_full_decode(tmp_path):
    ys, xs = np.mgrid[0:900, 0:1200]
    photo = np.stack([xs / 1200 * 255, ys / 900 * 255, (xs + ys) % 256], axis=-1).astype(np.uint8)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.fromarray(photo).save(tmp_path / label / "p.jpg", quality=95)
    loaded = load("imagefolder", tmp_path, size=64, normalize=False).train[0][0].numpy()
    with Image.open(tmp_path / "a" / "p.jpg") as image:  # decoded whole, then resized as the loader does
        full = image.convert("RGB").resize((85, 64), Image.BILINEAR).crop((10, 0, 74, 64))
    reference = np.asarray(full, dtype=np.float32).transpose(2, 0, 1) / 255
    assert loaded.shape == (3, 64, 64) and np.abs(loaded - reference)[:2].mean() < 0.01


def test_a_phone_photo_is_turned_as_its_exif_orientation_says(tmp_path):
    """A portrait photo stored landscape, with EXIF orientation 6 (turn 90 degrees clockwise), as
    phone cameras save them: loaded upright, not on its side."""
    upright = np.zeros((40, 20, 3), dtype=np.uint8)
    upright[:20] = 255  # bright top half
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # turned 90 degrees anticlockwise as the sensor saw it
    exif = Image.Exif()
    exif[0x0112] = 6
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.fromarray(stored).save(tmp_path / label / "p.jpg", quality=95, exif=exif)
    pixels = load("imagefolder", tmp_path, size=20, normalize=False).train[0][0].numpy()
    # a 20 x 40 portrait centre-cropped to 20 x 20: the middle of a bright top over a dark bottom
    assert pixels[:, :5].mean() > 0.8 and pixels[:, -5:].mean() < 0.2


def test_imagefolder_trains_small_images_at_their_own_size_and_says_so(cli, tmp_path):
    for label, color in (("a", 40), ("b", 200)):
        for i in range(3):
            write_image(tmp_path / "gray" / label / f"{i}.png", color + i, size=(28, 28), mode="L")
            write_image(tmp_path / "mixed" / label / f"{i}.png", (color, 0, 0), size=(28 + i, 28))
    gray = load("imagefolder", tmp_path / "gray")
    assert gray.input_shape == (1, 28, 28) and tuple(gray.train[0][0].shape) == (1, 28, 28)
    assert gray.notes == ["images are 28x28 px: trained at 28 px (-D size=N for another)",
                          "grayscale images: one channel (-D channels=3 for RGB)"]
    mixed = load("imagefolder", tmp_path / "mixed")  # small ones of several sizes: their median shorter side
    assert mixed.input_shape == (3, 28, 28) and mixed.notes == [
        "images of 3 sizes, 28-30 px a side: trained at 28 px (-D size=N for another)"]
    for label in ("a", "b"):
        for i in range(3):
            write_image(tmp_path / "large" / label / f"{i}.png", (40, 0, 0), size=(150 + 10 * i, 140))
    large = load("imagefolder", tmp_path / "large")
    assert large.input_shape == (3, 224, 224) and "resized to 224 px" in large.notes[0]
    assert load("imagefolder", tmp_path / "gray", size=16, channels=3).input_shape == (3, 16, 16)
    plan = cli.json("train", "-d", "imagefolder", "--data-root", tmp_path / "gray", "--dry-run")
    assert plan["input_shape"] == [1, 28, 28] and plan["notes"] == gray.notes
    shown = cli("train", "-d", "imagefolder", "--data-root", tmp_path / "gray", "--dry-run")
    assert "note: images are 28x28 px: trained at 28 px" in shown.stdout and "inputs: image, 1 x 28 x 28" in shown.stdout


def test_imagefolder_errors_name_the_folder_or_file(folder_tree, tmp_path):
    with pytest.raises(NoisyctlError, match="imagefolder needs --data-root"):
        load("imagefolder", None)
    with pytest.raises(NoisyctlError, match="does not exist"):
        load("imagefolder", tmp_path / "nowhere")
    (folder_tree / "train" / "bird").mkdir()
    with pytest.raises(NoisyctlError, match="class folder .*train/bird has no images"):
        load("imagefolder", folder_tree)
    (folder_tree / "train" / "bird").rmdir()
    write_image(folder_tree / "val" / "fox" / "f.png", (1, 1, 1))
    with pytest.raises(NoisyctlError, match="val/fox is a class the training subset does not have"):
        load("imagefolder", folder_tree)
    for label in ("a", "b"):
        write_image(tmp_path / "broken" / label / "x.png", 0)
        (tmp_path / "broken" / label / "x.png").write_bytes(b"not an image")
    with pytest.raises(NoisyctlError, match="none of the 2 images looked at decodes .first: a/x.png: cannot identify"):
        load("imagefolder", tmp_path / "broken")


def test_an_undecodable_image_is_one_line_naming_the_file_even_from_workers(folder_tree, cli, tmp_path):
    broken = folder_tree / "train" / "cat" / "cat1.png"
    broken.write_bytes(b"\x89PNG but not really")
    data = load("imagefolder", folder_tree, size=16)
    with pytest.raises(NoisyctlError, match=f"cannot read image {broken}"):
        data.train[1]
    line = cli.error("train", "--dataset", "imagefolder", "--data-root", folder_tree, "-D", "size=16",
                     "--workers", "2", "--epochs", "1", "-q", "-o", tmp_path / "run.h5")
    assert f"cannot read image {broken}" in line
    assert not (tmp_path / "run.h5").exists()


@pytest.mark.slow
def test_training_on_an_imagefolder_with_workers_records_test_accuracy(folder_tree, cli, tmp_path):
    run = tmp_path / "run.h5"
    cli("train", "--dataset", "imagefolder", "--data-root", folder_tree, "-D", "size=16", "--workers", "2",
        "--epochs", "2", "--batch-size", "4", "-q", "-o", run)
    with h5py.File(run) as h5:
        assert h5["dynamics/train_loss"].shape == (7, 2)
        assert h5["epochs/test_accuracy"].shape == (2,)
        assert h5["samples/id"][0].decode() == "train/cat/cat0.png"


# --- CIFAR ------------------------------------------------------------------

def write_cifar_batch(path, images, labels, key=b"labels", extra=None):
    batch = {b"batch_label": b"testing", key: list(labels), b"data": images.reshape(len(images), -1),
             b"filenames": [f"img{i}.png".encode() for i in range(len(images))]}
    batch.update(extra or {})
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)  # the original batches are protocol-2 pickles


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
              for name, n in (("data_batch_1", 4), ("data_batch_2", 3), ("test_batch", 2))}
    for name, batch in images.items():
        write_cifar_batch(folder / name, batch, rng.integers(0, 10, len(batch)))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, handle, protocol=2)
    data = load("cifar10", tmp_path, normalize=False)
    assert data.class_names[1] == "automobile" and len(data.train) == 7 and len(data.test) == 2
    assert data.train.ids[4] == "data_batch_2/00000"
    x = data.train[5][0].numpy()
    assert np.allclose(x * 255, images["data_batch_2"][1], atol=1e-3)
    assert data.default_augment == "flip-crop"
    # a relabeled copy: the batches laid out as they were, the label set, the removed sample's rows gone
    given = data.train.labels.tolist()
    assert data.relabeled_copy({"data_batch_1/00001": "truck", "data_batch_2/00000": None}, tmp_path / "clean") == 6
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == sorted(p.name for p in folder.iterdir())
    clean = load("cifar10", tmp_path / "clean", normalize=False)
    assert clean.train.labels.tolist() == given[:1] + [9] + given[2:4] + given[5:]
    assert np.allclose(clean.train[4][0].numpy() * 255, images["data_batch_2"][1], atol=1e-3)
    assert len(clean.test) == 2 and clean.class_names == data.class_names
    # written as the original batches are: Python 2 strings, read by the CIFAR page's reader (bytes)
    # and torchvision's (latin1) alike
    for encoding, text in (("bytes", lambda word: word.encode()), ("latin1", str)):
        with open(tmp_path / "clean" / "data_batch_2", "rb") as handle:
            batch = pickle.load(handle, encoding=encoding)
        assert batch[text("filenames")] == [text("img1.png"), text("img2.png")]
        assert np.array_equal(batch[text("data")], images["data_batch_2"][1:].reshape(2, -1))


def test_cifar_files_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, ("touch " + str(tmp_path / "owned"),))

    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": Exploit()}, handle, protocol=2)
    with pytest.raises(NoisyctlError, match="posix.system|os.system"):
        load("cifar10", tmp_path)
    assert not (tmp_path / "owned").exists()


def test_cifar100_with_superclasses(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    fine = np.array([0, 1, 2, 3, 4, 0])
    coarse = np.array([0, 0, 1, 1, 1, 0])
    for name in ("train", "test"):
        write_cifar_batch(folder / name, rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8), fine,
                          key=b"fine_labels", extra={b"coarse_labels": list(coarse)})
    fine_names = [f"class{i}".encode() for i in range(5)]
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": fine_names, b"coarse_label_names": [b"g0", b"g1"]}, handle, protocol=2)
    data = load("cifar100", folder)  # the subfolder itself works too
    assert data.class_names == [f"class{i}" for i in range(5)]
    assert data.class_groups == [[0, 1], [2, 3, 4]]
    assert data.train.labels.tolist() == fine.tolist()
    # relabeled to another superclass's class: its coarse label follows
    assert data.relabeled_copy({"train/00000": "class3", "train/00005": None}, tmp_path / "clean") == 5
    from noisyctl.builtin.datasets.cifar import read_batch

    batch = read_batch(tmp_path / "clean" / "train")
    assert batch["fine_labels"] == [3, 1, 2, 3, 4] and batch["coarse_labels"] == [1, 0, 1, 1, 1]


def test_cifar10_missing_folder_says_what_it_needs(tmp_path):
    with pytest.raises(NoisyctlError, match="no cifar-10-batches-py/batches.meta under"):
        load("cifar10", tmp_path)


# --- MNIST idx --------------------------------------------------------------

def idx_bytes(array):
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    return header + array.tobytes()


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_idx_files(tmp_path, compressed, name):
    home = tmp_path / "mnist"
    raw = home / "raw"  # torchvision's layout
    raw.mkdir(parents=True)
    rng = np.random.default_rng(2)
    content = {"train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
               "train-labels-idx1-ubyte": np.array([0, 1, 2, 9, 4], dtype=np.uint8),
               "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
               "t10k-labels-idx1-ubyte": np.array([3, 3], dtype=np.uint8)}
    for stem, array in content.items():
        data = idx_bytes(array)
        if compressed:
            (raw / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / stem).write_bytes(data)
    data = load(name, home, normalize=False)
    assert data.train.labels.tolist() == [0, 1, 2, 9, 4] and len(data.test) == 2
    assert data.input_shape == (1, 28, 28)
    assert np.allclose(data.train[3][0].numpy()[0] * 255, content["train-images-idx3-ubyte"][3], atol=1e-3)
    assert data.class_names[0] == ("T-shirt/top" if name == "fashion-mnist" else "0")
    # a relabeled copy: the idx files laid out as they were (gzipped or not), the label set, the
    # removed sample's image and label gone, the test files as they were
    copy = tmp_path / "elsewhere" / "clean"
    with pytest.raises(NoisyctlError, match="is inside the dataset"):
        data.relabeled_copy({}, home / "clean")
    assert data.relabeled_copy({"train/00001": data.class_names[7], "train/00002": None}, copy) == 4
    suffix = ".gz" if compressed else ""
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()) == sorted(
        f"raw/{stem}{suffix}" for stem in content)
    clean = load(name, copy, normalize=False)
    assert clean.train.labels.tolist() == [0, 7, 9, 4] and clean.test.labels.tolist() == [3, 3]
    assert np.allclose(clean.train[2][0].numpy()[0] * 255, content["train-images-idx3-ubyte"][3], atol=1e-3)
    with pytest.raises(NoisyctlError, match="exists and is not an empty folder"):
        data.relabeled_copy({}, copy)


def test_mnist_truncated_and_mismatched_files(tmp_path):
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images)[:-10])
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(NoisyctlError, match="train-images-idx3-ubyte is truncated or damaged"):
        load("mnist", tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(NoisyctlError, match="has 3 labels for 4 images"):
        load("mnist", tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 1, 2, 10], dtype=np.uint8)))
    with pytest.raises(NoisyctlError, match="sample train/00003 has label 10 outside 0..9"):
        load("mnist", tmp_path)


# --- npz and HDF5 arrays ----------------------------------------------------

def test_npz_feature_vectors_with_ids_names_and_a_test_subset(tmp_path):
    path = tmp_path / "emb.npz"
    rng = np.random.default_rng(3)
    np.savez(path, features=rng.normal(size=(6, 5)).astype(np.float32), labels=np.array([0, 1, 2, 0, 1, 2]),
             ids=np.array([f"doc{i}" for i in range(6)]), class_names=np.array(["a", "b", "c"]),
             x_test=rng.normal(size=(2, 5)), y_test=np.array([2, 0]))
    data = load("npz", path, x_key="features")
    assert data.input_shape == (5,) and data.class_names == ["a", "b", "c"]
    assert data.train.ids[2] == "doc2" and data.test.ids == ["test/0", "test/1"]
    assert data.default_augment == "none"
    assert tuple(data.train[0][0].shape) == (5,)
    # a relabeled copy: the same arrays, the label as the file writes it, the removed sample's rows gone
    assert data.relabeled_copy({"doc0": "c", "doc4": None}, tmp_path / "clean.npz") == 5
    with np.load(tmp_path / "clean.npz") as clean, np.load(path) as original:
        assert clean["labels"].tolist() == [2, 1, 2, 0, 2] and clean["ids"].tolist() == ["doc0", "doc1", "doc2",
                                                                                          "doc3", "doc5"]
        assert np.array_equal(clean["features"], original["features"][[0, 1, 2, 3, 5]])
        assert np.array_equal(clean["x_test"], original["x_test"]) and set(clean.files) == set(original.files)
    np.savez(tmp_path / "stars.npz", x=np.zeros((4, 2)), y=np.array(["bad", "good", "good", "bad"]))
    stars = load("npz", tmp_path / "stars.npz")
    stars.relabeled_copy({"train/0": "good"}, tmp_path / "stars-clean.npz")
    with np.load(tmp_path / "stars-clean.npz") as clean:
        assert clean["y"].tolist() == ["good", "good", "good", "bad"]


def test_feature_vectors_on_large_scales_are_standardized_and_well_scaled_ones_kept(tmp_path, cli):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    raw = x * np.array([1.0, 5000.0, 0.01], dtype=np.float32) + np.array([0.0, 20000.0, 0.0], dtype=np.float32)
    np.savez(tmp_path / "kept.npz", x=x, y=y)
    np.savez(tmp_path / "raw.npz", x=raw, y=y, x_test=raw[:50], y_test=y[:50])
    with h5py.File(tmp_path / "raw.h5", "w") as h5:
        h5["x"], h5["y"] = raw, y
    kept = load("npz", tmp_path / "kept.npz")
    assert kept.notes == [] and np.allclose(kept.train[3][0].numpy(), x[3])
    for data in (load("npz", tmp_path / "raw.npz"), load("hdf5", tmp_path / "raw.h5")):
        assert data.notes and re.match(r"feature vectors on scales up to 20,[0-9]{3}: standardized", data.notes[0])
        scaled = np.stack([data.train[i][0].numpy() for i in range(len(data.train))])
        assert np.allclose(scaled.mean(0), 0, atol=1e-3) and np.allclose(scaled.std(0), 1, atol=1e-3)
    raw_data = load("npz", tmp_path / "raw.npz")
    assert np.allclose(raw_data.test[0][0].numpy(), raw_data.train[0][0].numpy())  # the training samples' scaling
    assert np.allclose(load("npz", tmp_path / "raw.npz", standardize=False).train[3][0].numpy(), raw[3])
    assert load("npz", tmp_path / "kept.npz", standardize=True).notes
    # Raw scales diverged in the first epoch ("lower the learning rate"); standardized, they train.
    cli("train", "-d", "npz", "--data-root", tmp_path / "raw.npz", "--epochs", "3", "--folds", "0", "-q",
        "-o", tmp_path / "run.h5")


def test_npz_channels_last_images(tmp_path):
    path = tmp_path / "img.npz"
    np.savez(path, x=np.full((3, 10, 10, 3), 255, dtype=np.uint8), y=np.array([0, 1, 1]))
    data = load("npz", path)
    assert data.input_shape == (3, 10, 10) and data.class_names == ["0", "1"]
    assert float(data.train[0][0].max()) == pytest.approx(1.0)
    deep = tmp_path / "u16.npz"  # 16-bit images: scaled to [0, 1] as 8-bit ones are
    np.savez(deep, x=np.full((2, 4, 4), 65535, dtype=np.uint16), y=np.array([0, 1]))
    assert float(load("npz", deep).train[0][0].max()) == pytest.approx(1.0)
    keras = tmp_path / "mnist.npz"  # Keras' own layout: x_train, y_train, x_test, y_test
    np.savez(keras, x_train=np.zeros((4, 6, 6), np.uint8), y_train=np.array([0, 1, 2, 1], np.uint8),
             x_test=np.zeros((2, 6, 6), np.uint8), y_test=np.array([2, 0], np.uint8))
    data = load("npz", keras)
    assert data.input_shape == (1, 6, 6) and len(data.train) == 4 and data.test.labels.tolist() == [2, 0]


def test_array_labels_saved_as_names_or_whole_floats_load_as_classes(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    np.savez(tmp_path / "names.npz", x=x, y=np.array(["pos", "neg", "pos", "neg", "pos", "pos"]),
             x_test=x[:2], y_test=np.array(["neg", "pos"]))
    names = load("npz", tmp_path / "names.npz")
    assert names.class_names == ["neg", "pos"] and names.train.labels.tolist() == [1, 0, 1, 0, 1, 1]
    assert names.test.labels.tolist() == [0, 1]
    np.savez(tmp_path / "floats.npz", x=x, y=np.array([1.0, 0.0, 2.0, 0.0, 1.0, 2.0]))
    assert load("npz", tmp_path / "floats.npz").train.labels.tolist() == [1, 0, 2, 0, 1, 2]
    # MATLAB's labels count from 1 (SVHN's 1-10): the classes are the values, with no empty class 0
    np.savez(tmp_path / "matlab.npz", x=x, y=np.array([1, 3, 2, 3, 1, 2]), x_test=x[:2], y_test=np.array([3, 1]))
    matlab = load("npz", tmp_path / "matlab.npz")
    assert matlab.class_names == ["1", "2", "3"] and matlab.train.labels.tolist() == [0, 2, 1, 2, 0, 1]
    assert matlab.test.labels.tolist() == [2, 0]
    with h5py.File(tmp_path / "names.h5", "w") as h5:  # h5py keeps strings as bytes
        h5["x"] = x
        h5["y"] = np.array(["b", "a", "b", "a", "b", "b"], dtype=object)
        h5["class_names"] = np.array(["b", "a"], dtype=object)
    assert load("hdf5", tmp_path / "names.h5").train.labels.tolist() == [0, 1, 0, 1, 0, 0]
    for y, message in ((np.eye(2)[[0, 1, 0, 1, 0, 1]], "2 columns a sample .one-hot or scores..; .*y.argmax.1."),
                       (np.array([0, 1, 0.5, 1, 0, 1]), "hold 0.5 .at 2., not a class index")):
        np.savez(tmp_path / "bad.npz", x=x, y=y)
        with pytest.raises(NoisyctlError, match=message):
            load("npz", tmp_path / "bad.npz")


def test_npz_refuses_pickles_bad_labels_and_missing_keys(tmp_path):
    pickled = tmp_path / "p.npz"
    np.savez(pickled, x=np.zeros((2, 3)), y=np.array([{"a": 1}, {"b": 2}], dtype=object))
    with pytest.raises(NoisyctlError, match="holds Python objects"):
        load("npz", pickled)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((2, 3)), y=np.array([0, 5]), class_names=np.array(["a", "b"]))
    with pytest.raises(NoisyctlError, match="sample train/1 has label 5 outside 0..1"):
        load("npz", bad)
    keyless = tmp_path / "k.npz"
    np.savez(keyless, inputs=np.zeros((2, 3)), y=np.array([0, 1]))
    with pytest.raises(NoisyctlError, match="has no input array .*it has inputs, y"):
        load("npz", keyless)
    holes = tmp_path / "holes.npz"
    np.savez(holes, x=np.where(np.arange(12).reshape(4, 3) == 7, np.nan, 1.0), y=np.array([0, 1, 0, 1]))
    with pytest.raises(NoisyctlError, match="NaN or infinite values in 1 of 4 samples .first: train/2."):
        load("npz", holes)


def test_hdf5_arrays_load_lazily_and_train_with_workers(tmp_path, cli):
    path = tmp_path / "data.h5"
    rng = np.random.default_rng(4)
    with h5py.File(path, "w") as h5:
        h5["x"] = rng.integers(0, 256, (40, 12, 12), dtype=np.uint8)
        h5["y"] = np.arange(40) % 4
        h5["ids"] = np.array([f"s{i:02d}" for i in range(40)], dtype=object)
    data = load("hdf5", path)
    assert data.input_shape == (1, 12, 12) and data.train.ids[5] == "s05"
    assert tuple(data.train[7][0].shape) == (1, 12, 12)
    # a relabeled copy: the same datasets as HDF5, the label set, the removed sample's rows gone
    assert data.relabeled_copy({"s00": "3", "s05": None}, tmp_path / "clean.h5") == 39
    with h5py.File(tmp_path / "clean.h5") as clean, h5py.File(path) as original:
        assert clean["y"][:4].tolist() == [3, 1, 2, 3] and len(clean["y"]) == 39
        assert [v.decode() for v in clean["ids"][4:6]] == ["s04", "s06"]
        assert np.array_equal(clean["x"][5], original["x"][6]) and clean["x"].shape == (39, 12, 12)
    assert load("hdf5", tmp_path / "clean.h5").train.labels.tolist()[:6] == [3, 1, 2, 3, 0, 2]
    assert "the dataset's own file" in str(pytest.raises(NoisyctlError, data.relabeled_copy, {}, path).value)
    labels = tmp_path / "labels.h5"
    cli("synth", "--dataset", "hdf5", "--data-root", path, "-r", "0.25", "-o", labels)
    cli("train", "--labels", labels, "--workers", "2", "--epochs", "1", "--batch-size", "8", "-q",
        "-o", tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5") as h5:
        assert h5["samples/is_noisy"][:].sum() == 10
    # synth's noisy labels written back into the data: 10 of them differ from the file's own
    copy = cli.json("export", labels, "--data-copy", tmp_path / "noisy.h5")["data_copy"]
    assert copy["relabeled"] == 10 and copy["rows"] == 40
    with h5py.File(tmp_path / "noisy.h5") as noisy, h5py.File(path) as original:
        assert int((noisy["y"][:] != original["y"][:]).sum()) == 10


# --- generated --------------------------------------------------------------

@pytest.mark.parametrize("name, shape", [("shapes", (1, 16, 16)), ("blobs", (20,))])
def test_generated_datasets_are_reproducible_by_seed(name, shape):
    a = load(name, None, samples=200, seed=3)
    b = load(name, None, samples=200, seed=3)
    c = load(name, None, samples=200, seed=4)
    assert len(a.train) == 200 and len(a.test) == 50 and a.input_shape == shape
    assert np.array_equal(a.train[7][0].numpy(), b.train[7][0].numpy())
    assert not np.array_equal(a.train[7][0].numpy(), c.train[7][0].numpy())
    assert len(np.unique(a.train.labels)) == a.num_classes


def test_generated_datasets_check_their_options():
    with pytest.raises(NoisyctlError, match="dataset 'shapes' takes no option 'colour'; it takes samples, size"):
        load("shapes", None, colour="red")
    with pytest.raises(NoisyctlError, match="takes no option 'sample' \\(did you mean 'samples'\\?\\)"):
        load("blobs", None, sample=10)
    with pytest.raises(NoisyctlError, match="test_fraction 1.0 is outside"):
        load("blobs", None, test_fraction=1.0)


def test_a_dataset_option_naming_the_data_s_location_points_to_data_root(cli, tmp_path):
    """`-D path=wine.csv` is what a user tries first for a table; the error names --data-root."""
    (tmp_path / "wine.csv").write_text("a,b,label\n1,2,x\n3,4,y\n")
    error = cli.error("synth", "-d", "table", "-D", f"path={tmp_path / 'wine.csv'}", "-o", tmp_path / "l.h5")
    assert "takes no option 'path'" in error and "--data-root PATH" in error
    assert "--data-root" not in cli.error("synth", "-d", "shapes", "-D", "colour=red", "-o", tmp_path / "l.h5")


# --- table ------------------------------------------------------------------

def write_cancer_table(path, rng_seed=0):
    """scikit-learn's breast cancer measurements as pandas saves a table by default (its index as an
    unnamed first column), with class names for labels, a category column and missing values."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = np.where(frame["target"] == 1, "benign", "malignant")
    rng = np.random.default_rng(rng_seed)
    frame.insert(3, "clinic", rng.choice(["north", "south", "east"], len(frame)))
    frame.loc[[4, 10, 11], "mean radius"] = np.nan
    frame.loc[7, "clinic"] = np.nan
    frame.to_csv(path)
    return frame


def test_a_table_loads_as_pandas_saves_it_with_categories_missing_cells_and_its_index_left_out(tmp_path):
    frame = write_cancer_table(tmp_path / "cancer.csv")
    data = load("table", tmp_path / "cancer.csv")
    assert data.class_names == ["benign", "malignant"] and data.kind == "features"
    assert data.input_shape == (30 + 4,)  # 30 measurements, clinic one-hot: east, north, south and missing
    assert data.train.labels.tolist() == (frame["target"] == "malignant").astype(int).tolist()
    notes = " ".join(data.notes)
    assert "1 of 31 columns is a category, one-hot encoded: clinic (4)" in notes
    assert "3 missing values" in notes and "the unnamed first column is a saved pandas index: left out" in notes
    assert "standardized" in notes
    x = data.train.inputs  # before scaling: the radius column, its missing cells at the median of the rest
    assert x[4, 0] == pytest.approx(np.nanmedian(frame["mean radius"]))
    assert x[0, 0] == pytest.approx(frame["mean radius"][0])
    clinic = slice(3, 7)  # one-hot in the column's place: "" (missing), east, north, south
    assert x[7, clinic].tolist() == [1, 0, 0, 0] and x[:, clinic].sum(axis=1).tolist() == [1] * len(frame)
    assert data.train.ids[0].startswith("row2-") and len(set(data.train.ids)) == len(frame)
    # The ids hash the features: a reordered file is other data; a corrected label keeps the id.
    frame.iloc[::-1].to_csv(tmp_path / "reversed.csv", index=False)
    assert load("table", tmp_path / "reversed.csv").train.ids[-1] != data.train.ids[0]
    relabeled = frame.copy()
    relabeled.loc[0, "target"] = "benign"
    relabeled.to_csv(tmp_path / "relabeled.csv")
    assert load("table", tmp_path / "relabeled.csv").train.ids == data.train.ids
    # A test file with a category the training rows lack sets none of its columns.
    test = frame.head(5).copy()
    test.loc[0, "clinic"] = "west"
    test.to_csv(tmp_path / "test.csv")
    split = load("table", tmp_path / "cancer.csv", test="test.csv", drop="clinic")  # found beside the file
    assert split.input_shape == (30,) and len(split.test) == 5 and split.test.ids[0].startswith("test-row2-")
    with_clinic = load("table", tmp_path / "cancer.csv", test="test.csv", standardize="false")
    assert with_clinic.test.inputs[0, clinic].sum() == 0 and with_clinic.test.inputs[1, clinic].sum() == 1
    held = load("table", tmp_path / "cancer.csv", test_fraction=0.2)
    assert len(held.test) == round(0.2 * len(frame)) and not set(held.train.ids) & set(held.test.ids)


@pytest.mark.parametrize("content, options, message", [
    ("a,b\n1,2\n3,4\n", {}, r"no label column \(label, labels, target, class, category, sentiment, intent, y, choice\)"),
    ("a,b\n" + "".join(f"{i},{i / 10}\n" for i in range(10)), {}, r"no label column"),  # a last column of measurements
    ("a,label\n1,x\n2,NA\n3,y\n", {}, "record 2 has an empty 'label'"),
    ("a,note,label\n" + "".join(f"{i},free text {i},{i % 2}\n" for i in range(60)), {},
     "column 'note' has 60 values that are not all numbers .*-D drop=note"),
    ("a,label\n1,x\n2,y\n", {"drop": "b"}, "has no column 'b'"),
    ("a,label\n1,x\n2,x\n", {}, "needs two classes"),
    ("a,b,label\n1,,x\n2,,y\n", {}, "column 'b' is empty in every record"),
    ("label\nx\ny\n", {}, "no feature columns left"),
])
def test_tables_that_cannot_be_read_say_why(tmp_path, content, options, message):
    (tmp_path / "t.csv").write_text(content, encoding="utf-8")
    with pytest.raises(NoisyctlError, match=message):
        load("table", tmp_path / "t.csv", **options)


def test_a_passenger_list_names_every_column_to_drop_at_once_and_keeps_its_id_out_of_the_features(tmp_path):
    """A table as Kaggle's Titanic has it: an id column, free-text names, ticket numbers and cabins
    (mostly missing). One message names all three columns that cannot be features; PassengerId is
    the samples' id, not a feature; a column merely ending in "id" (paid) stays one."""
    rng = np.random.default_rng(0)
    count = 200
    frame = pd.DataFrame({
        "PassengerId": np.arange(1, count + 1), "Survived": rng.integers(0, 2, count),
        "Pclass": rng.integers(1, 4, count),
        "Name": [f"Passenger {i}, Mr. Example" for i in range(count)], "Sex": rng.choice(["male", "female"], count),
        "Ticket": [f"A/5 {rng.integers(10000, 99999)}" for _ in range(count)],
        "Cabin": [f"C{rng.integers(1, 150)}" if rng.random() < 0.4 else None for _ in range(count)],
        "paid": rng.random(count) * 100})
    frame.to_csv(tmp_path / "titanic.csv", index=False)
    with pytest.raises(NoisyctlError, match=r"3 columns cannot be features: 'Name' .*'Ticket' .*'Cabin' .*"
                                            r"-D drop=Name,Ticket,Cabin"):
        load("table", tmp_path / "titanic.csv", label_column="Survived")
    table = load("table", tmp_path / "titanic.csv", label_column="Survived", drop="Name,Ticket,Cabin")
    assert table.train.ids[:2] == ["1", "2"] and table.input_shape == (4,)  # Pclass, paid, Sex one-hot
    assert "ids from column 'PassengerId'" in " ".join(table.notes)
    # a reviewer reads every cell but the label and the id, the dropped name included, missing ones left out
    first = frame.iloc[0]
    assert table.train.text(0).startswith(f"Pclass={first.Pclass}; Name=Passenger 0, Mr. Example; Sex={first.Sex}")
    assert "Survived" not in table.train.text(0) and "PassengerId" not in table.train.text(0)
    assert ("Cabin=" in table.train.text(0)) == isinstance(first.Cabin, str)


def test_a_table_saved_by_a_comma_decimal_locale_reads_as_the_same_numbers(tmp_path):
    """Excel set to German or French saves CSV with ';' between cells and ',' in numbers (72,5), as
    pandas' to_csv(sep=";", decimal=",") writes it; texts keep their commas."""
    frame = write_cancer_table(tmp_path / "cancer.csv")
    frame.to_csv(tmp_path / "semicolons.csv", sep=";", decimal=",")
    assert "0,1184" in (tmp_path / "semicolons.csv").read_text()  # mean smoothness of the first record
    plain, local = load("table", tmp_path / "cancer.csv"), load("table", tmp_path / "semicolons.csv")
    assert local.input_shape == plain.input_shape and np.allclose(local.train.inputs, plain.train.inputs)
    (tmp_path / "tickets.csv").write_text("text;label\nDas Paket kam zu spät, leider;lieferung\n"
                                          "Rechnung 12,50 zu hoch;rechnung\n", encoding="utf-8")
    tickets = load("text", tmp_path / "tickets.csv")
    assert tickets.train.texts == ["Das Paket kam zu spät, leider", "Rechnung 12,50 zu hoch"]


def test_a_uci_file_without_a_header_row_names_its_label_column_by_position(tmp_path):
    """The UCI repository's iris.data: comma-separated measurements and a class name, no header row,
    a blank line at the end; also gzip-compressed."""
    import gzip

    from sklearn.datasets import load_iris

    iris = load_iris()
    lines = [",".join(map(str, x)) + f",Iris-{iris.target_names[y]}\n" for x, y in zip(iris.data, iris.target)]
    (tmp_path / "iris.data").write_text("".join(lines) + "\n")
    with pytest.raises(NoisyctlError, match=r"iris.data has no header row \(its first record: 5.1, 3.5, 1.4, 0.2, "
                                            r"Iris-setosa\): name the label column by its position, -D label_column=N"):
        load("table", tmp_path / "iris.data")
    table = load("table", tmp_path / "iris.data", label_column=5)
    assert len(table.train) == 150 and table.input_shape == (4,)  # the first record is data
    assert table.class_names == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    assert table.train.ids[0].startswith("row1-") and table.train.text(0) == "1=5.1; 2=3.5; 3=1.4; 4=0.2"
    with gzip.open(tmp_path / "iris.data.gz", "wt") as handle:
        handle.writelines(lines)
    assert load("table", tmp_path / "iris.data.gz", label_column=5).train.ids == table.train.ids


def test_a_label_one_hot_encoded_over_columns_is_read_as_one_class_a_sample(tmp_path):
    """ISIC 2018's ground truth (image,MEL,NV,... as 1.0 and 0.0 beside the images), a table in the
    steel plate faults' layout (binary features, then a column a fault) with a test file alike, and
    text with a column a sentiment. Before, the list named images "without labels", the table took
    its last fault column as a two-class label, and the text had no label column. Jigsaw's toxic
    comments, with several 1s or none in a record, are multi-label: refused."""
    lesions = ["MEL", "NV", "BCC"]
    for i in range(6):
        write_image(tmp_path / "isic" / "Input" / f"ISIC_{i:07d}.jpg", (40 * i, 0, 0))
    (tmp_path / "isic" / "GroundTruth.csv").write_text("image," + ",".join(lesions) + "\n" + "".join(
        f"ISIC_{i:07d}," + ",".join("1.0" if k == i % 3 else "0.0" for k in range(3)) + "\n" for i in range(6)))
    images = load("imagefolder", tmp_path / "isic", size=8)
    assert images.class_names == lesions and images.train.labels.tolist() == [0, 1, 2, 0, 1, 2]  # in column order
    assert "images and labels from GroundTruth.csv (labels from 3 one-hot columns, 'MEL' to 'BCC', a class each)" \
        in images.notes

    rng = np.random.default_rng(0)
    faults = ["Pastry", "Z_Scratch", "Bumps", "Other_Faults"]

    def plates(count):
        kind, steel = rng.integers(0, 4, count), rng.integers(0, 2, count)
        return pd.DataFrame({"Area": rng.normal(size=count) + kind, "TypeOfSteel_A300": steel,
                             "TypeOfSteel_A400": 1 - steel, **{f: (kind == k).astype(int) for k, f in
                                                               enumerate(faults)}}), kind

    (frame, kind), (test_frame, test_kind) = plates(40), plates(10)
    frame.to_csv(tmp_path / "faults.csv", index=False)
    test_frame.to_csv(tmp_path / "faults_test.csv", index=False)
    table = load("table", tmp_path / "faults.csv", test="faults_test.csv")
    assert table.class_names == faults and table.input_shape == (3,)  # the steel types stay features
    assert [table.class_names[c] for c in table.train.labels] == [faults[k] for k in kind]
    assert [table.class_names[c] for c in table.test.labels] == [faults[k] for k in test_kind]
    assert "labels from 4 one-hot columns, 'Pastry' to 'Other_Faults', a class each" in table.notes
    assert "Bumps" not in table.train.text(0) and "TypeOfSteel_A300=" in table.train.text(0)
    moved = faults[(kind[0] + 1) % 4]  # a relabeled copy moves the record's 1 to its new class's column
    assert table.relabeled_copy({table.train.ids[0]: moved}, tmp_path / "fixed.csv") == 40
    fixed = pd.read_csv(tmp_path / "fixed.csv")
    assert list(fixed.columns) == list(frame.columns)
    assert fixed.loc[0, faults].tolist() == [int(f == moved) for f in faults]
    assert np.array_equal(fixed.iloc[1:].to_numpy(), frame.iloc[1:].to_numpy())  # the other records as they were

    sentiments = ["negative", "neutral", "positive"]
    rows = [(f"c{i}", f"review number {i} that says {sentiments[i % 3]} things", *[int(k == i % 3) for k in range(3)])
            for i in range(9)]
    pd.DataFrame(rows, columns=["id", "Review Text", *sentiments]).to_csv(tmp_path / "reviews.csv", index=False)
    texts = load("text", tmp_path / "reviews.csv")
    assert texts.class_names == sentiments and texts.train.labels.tolist() == [0, 1, 2] * 3
    assert texts.train.texts[2] == "review number 2 that says positive things"
    toxic = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    comments = [(f"c{i}", f"comment {i} of some length here", *[int(i % (k + 2) == 0) for k in range(6)])
                for i in range(9)]
    pd.DataFrame(comments, columns=["id", "comment_text", *toxic]).to_csv(tmp_path / "toxic.csv", index=False)
    with pytest.raises(NoisyctlError, match="columns toxic, severe_toxic, .* mark classes with 0s and 1s, and 5 "
                                            "records hold several 1s or none: a multi-label dataset"):
        load("text", tmp_path / "toxic.csv")


def test_excel_workbooks_load_as_tables_and_texts(tmp_path, cli):
    """An .xlsx as a spreadsheet or an annotator delivers it: numbers as numbers, a blank row, a
    column formatted past the data (part of the sheet's used range, holding nothing)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from sklearn.datasets import load_iris

    iris = load_iris()
    book = Workbook()
    sheet = book.active
    sheet.append(["sepal length", "sepal width", "petal length", "petal width", "species"])
    for k, (x, y) in enumerate(zip(iris.data, iris.target)):
        sheet.append([*map(float, x), str(iris.target_names[y])])
        if k == 10:
            sheet.append([])
    sheet.cell(row=1, column=7).font = Font(bold=True)
    book.save(tmp_path / "iris.xlsx")
    table = load("table", tmp_path / "iris.xlsx")
    assert len(table.train) == 150 and table.input_shape == (4,)
    assert table.class_names == ["setosa", "versicolor", "virginica"]
    assert np.allclose(table.train.inputs, iris.data.astype(np.float32))
    book = Workbook()
    book.active.append(["ticket", "team"])
    for i in range(6):
        book.active.append([f"ticket number {i} about {'a refund' if i % 2 else 'a password'}",
                            "billing" if i % 2 else "account"])
    book.save(tmp_path / "tickets.xlsx")
    texts = load("text", tmp_path / "tickets.xlsx", text_column="ticket", label_column="team")
    assert texts.train.texts[1] == "ticket number 1 about a refund" and texts.class_names == ["account", "billing"]
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(NoisyctlError, match="broken.xlsx is not a readable Excel workbook"):
        load("table", tmp_path / "broken.xlsx")


def test_classes_that_look_like_a_labelling_slip_are_pointed_out(tmp_path):
    """'positive' and 'Positive ' (a spreadsheet's slip) stay two classes, as the data names them,
    but the loader says they look like one; names that merely share letters are left alone. A label
    column whose classes are mostly too small to learn (nearly an id) is pointed out too."""
    rows = [(f"great product {i}", "positive") for i in range(20)] + [(f"awful product {i}", "neg-ative")
                                                                     for i in range(5)]
    rows += [("great product again", "Positive "), ("awful again", "negative"), ("fine", "positives")]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(tmp_path / "reviews.csv", index=False)
    data = load("text", tmp_path / "reviews.csv")
    assert data.class_names == ["Positive", "neg-ative", "negative", "positive", "positives"]
    look_alike = [note for note in data.notes if "differ only in case, spaces or punctuation" in note]
    assert look_alike == ["classes 'Positive' (1) and 'positive' (20) differ only in case, spaces or punctuation: one "
                          "class written 2 ways? (they stay apart: fix the labels to merge them)",
                          "classes 'neg-ative' (5) and 'negative' (1) differ only in case, spaces or punctuation: one "
                          "class written 2 ways? (they stay apart: fix the labels to merge them)"]
    assert not any("differ only" in note for note in load("digits", None).notes)
    (tmp_path / "signs.csv").write_text("x,label\n" + "".join(f"{i},{1 if i % 2 else -1}\n" for i in range(10)))
    signs = load("table", tmp_path / "signs.csv")  # -1 and 1 are two classes, not one written two ways
    assert signs.class_names == ["-1", "1"] and not any("differ only" in note for note in signs.notes)
    # a label column that is nearly an id: most classes too small to learn, said once
    (tmp_path / "orders.csv").write_text("x,label\n" + "".join(f"{i},{i % 40}\n" for i in range(100)))
    orders = load("table", tmp_path / "orders.csv")
    assert "20 of the 40 classes have fewer than 3 training samples: too few for a model to learn them, or to tell " \
        "a wrong label from a rare one (is the label column the right one?)" in orders.notes
    assert not any("fewer than 3" in note for note in signs.notes)


def test_a_table_whose_label_column_has_another_name_is_labeled_by_its_last_column(tmp_path):
    """iris as pandas writes it with the species last, as the UCI repository and Kaggle's first
    tables put a label (Outcome, quality, income)."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns="target").assign(species=iris.target_names[iris.target])
    frame.to_csv(tmp_path / "iris.csv", index=False)
    table = load("table", tmp_path / "iris.csv")
    assert table.class_names == ["setosa", "versicolor", "virginica"] and table.input_shape == (4,)
    assert "labels from column 'species', the last (-D label_column=NAME for another)" in table.notes
    # pandas names unnamed columns 0, 1, 2, ...: a header still, not a first record
    pd.DataFrame(iris.data.to_numpy()).assign(species=frame.species).to_csv(tmp_path / "unnamed.csv", index=False)
    unnamed = load("table", tmp_path / "unnamed.csv")
    assert len(unnamed.train) == 150 and unnamed.class_names == table.class_names


def test_a_table_trains_and_its_cleaned_labels_export_by_row(cli, tmp_path):
    write_cancer_table(tmp_path / "cancer.csv")
    cli("synth", "-d", "table", "--data-root", tmp_path / "cancer.csv", "-n", "uniform", "-r", "0.05",
        "-o", tmp_path / "labels.h5")
    trained = cli.json("train", "-l", tmp_path / "labels.h5", "-e", "5", "--folds", "0", "-o", tmp_path / "run.h5")
    assert trained["model"] == "mlp"
    cli("export", tmp_path / "run.h5", "--labels-csv", tmp_path / "labels.csv")
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    assert len(rows) == 570 and rows[1].startswith("row2-") and ",text," not in rows[0]
    # the review CSV shows each suspect's row as the file holds it, so a reviewer need not look it up
    cli("detect", tmp_path / "run.h5", "-d", "loss")
    cli("correct", tmp_path / "run.h5", "--top", "5", "--export", tmp_path / "review.csv")
    with open(tmp_path / "review.csv", encoding="utf-8") as handle:
        review = list(csv.DictReader(handle))
    with open(tmp_path / "cancer.csv", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert len(review) == 5
    for row in review:
        record = records[int(row["id"].split("-")[0][len("row"):]) - 2]  # a CSV's first record is row 2
        assert row["text"].startswith(f"mean radius={record['mean radius']}; " if record["mean radius"] else "mean ")
        assert f"clinic={record['clinic']}; mean area={record['mean area']};" in row["text"] or not record["clinic"]
        assert "target=" not in row["text"]


def hub_table(columns, label_names):
    """A table as the Hugging Face ``datasets`` library stores one: integer labels, their class
    names in the schema's ``huggingface`` metadata (a ClassLabel feature)."""
    import json

    import pyarrow as pa

    features = {name: {"dtype": "string" if isinstance(values[0], str) else "float64", "_type": "Value"}
                for name, values in columns.items() if name != "label"}
    features["label"] = {"names": label_names, "_type": "ClassLabel"}
    return pa.table(columns).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def write_hub_parquet(path, columns, label_names):
    import pyarrow.parquet as pq

    pq.write_table(hub_table(columns, label_names), path)


def save_to_disk(folder, columns, label_names, shards=1):
    """One split as ``datasets``' Dataset.save_to_disk writes it (checked against datasets 3.6):
    data-0000K-of-0000N.arrow shards in Arrow's stream format, beside the library's state.json and
    dataset_info.json."""
    import json

    import pyarrow as pa

    folder.mkdir(parents=True)
    table = hub_table(columns, label_names)
    bounds = np.linspace(0, table.num_rows, shards + 1).astype(int)
    names = [f"data-{k:05d}-of-{shards:05d}.arrow" for k in range(shards)]
    for name, start, stop in zip(names, bounds[:-1], bounds[1:]):
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.slice(start, stop - start))
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": n} for n in names],
                                                   "_fingerprint": "451f719e71104aea", "_split": None}))
    (folder / "dataset_info.json").write_text(json.dumps(
        {"features": json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]}))


def test_parquet_tables_and_texts_load_with_the_hub_s_class_names(tmp_path, monkeypatch):
    texts = [f"{'the match ended in a draw' if i % 3 else 'elections were held today'} ({i})" for i in range(30)]
    labels = [1 if i % 3 else 0 for i in range(30)]
    write_hub_parquet(tmp_path / "news.parquet", {"text": texts, "label": labels}, ["World", "Sports"])
    news = load("text", tmp_path / "news.parquet")
    assert news.class_names == ["World", "Sports"] and news.train.labels.tolist() == labels  # the Hub's order
    assert news.train.texts == texts
    # pandas' to_parquet keeps an index other than 0..N-1 as a column of its own: left out
    frame = write_cancer_table(tmp_path / "cancer.csv").iloc[::-1]
    frame.reset_index().rename(columns={"index": "__index_level_0__"}).to_parquet(tmp_path / "cancer.parquet",
                                                                                   index=False)
    table = load("table", tmp_path / "cancer.parquet")
    assert table.input_shape == (34,) and table.class_names == ["benign", "malignant"]
    assert table.train.ids[0].startswith("row1-") and "left out" in " ".join(table.notes)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(NoisyctlError, match="not a readable Parquet file"):
        load("table", tmp_path / "broken.parquet")
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)  # as if pyarrow were not installed
    with pytest.raises(NoisyctlError, match=r"needs pyarrow: pip install 'noisyctl\[parquet\]'"):
        load("text", tmp_path / "news.parquet")


def test_a_dataset_folder_laid_out_as_the_hub_s_reads_its_train_shards_and_its_test_split(tmp_path):
    """A dataset cloned from the Hugging Face Hub: data/train-0000X-of-00002.parquet, a test (else a
    validation) split, a README and git's own files beside them."""
    root = tmp_path / "news"
    (root / "data").mkdir(parents=True)
    (root / "README.md").write_text("---\nlicense: mit\n---\n")
    (root / ".gitattributes").write_text("*.parquet filter=lfs\n")
    texts = [f"{'the match ended in a draw' if i % 3 else 'elections were held today'} ({i})" for i in range(40)]
    labels = [1 if i % 3 else 0 for i in range(40)]
    for shard, part in enumerate((slice(0, 20), slice(20, 30))):
        write_hub_parquet(root / "data" / f"train-0000{shard}-of-00002.parquet",
                          {"text": texts[part], "label": labels[part]}, ["World", "Sports"])
    write_hub_parquet(root / "data" / "validation-00000-of-00001.parquet", {"text": texts[30:], "label": labels[30:]},
                      ["World", "Sports"])
    news = load("text", root)
    assert news.train.texts == texts[:30] and news.train.labels.tolist() == labels[:30]
    assert news.test.texts == texts[30:] and news.class_names == ["World", "Sports"]
    write_hub_parquet(root / "data" / "test-00000-of-00001.parquet", {"text": texts[35:], "label": labels[35:]},
                      ["World", "Sports"])
    assert load("text", root).test.texts == texts[35:]  # a test split wins over validation
    assert load("text", root, test="data/validation-00000-of-00001.parquet").test.texts == texts[30:]
    # a table the same way: train.csv and test.csv in a folder
    frame = write_cancer_table(tmp_path / "cancer.csv")
    (tmp_path / "tables").mkdir()
    frame.iloc[:400].to_csv(tmp_path / "tables" / "train.csv", index=False)
    frame.iloc[400:].to_csv(tmp_path / "tables" / "test.csv", index=False)
    table = load("table", tmp_path / "tables")
    assert len(table.train) == 400 and len(table.test) == len(frame) - 400
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.csv").write_text("a,label\n1,x\n")
    with pytest.raises(NoisyctlError, match="holds no training file"):
        load("table", tmp_path / "empty")


def test_a_dataset_saved_by_the_datasets_library_loads_with_its_splits_and_class_names(tmp_path, cli):
    """DatasetDict.save_to_disk: train/ and test/ folders of .arrow shards beside the library's JSON,
    and dataset_dict.json naming the splits; a single Dataset saved alone; pandas' to_feather."""
    texts = [f"{'the match ended in a draw' if i % 3 else 'elections were held today'} ({i})" for i in range(40)]
    labels = [1 if i % 3 else 0 for i in range(40)]
    root = tmp_path / "news"
    save_to_disk(root / "train", {"text": texts[:30], "label": labels[:30]}, ["World", "Sports"], shards=2)
    save_to_disk(root / "test", {"text": texts[30:], "label": labels[30:]}, ["World", "Sports"])
    (root / "dataset_dict.json").write_text('{"splits": ["train", "test"]}')
    news = load("text", root)
    assert news.train.texts == texts[:30] and news.train.labels.tolist() == labels[:30]
    assert news.test.texts == texts[30:] and news.class_names == ["World", "Sports"]
    alone = load("text", root / "train")  # one split saved alone: its shards are the training records
    assert alone.train.texts == texts[:30] and alone.test is None and alone.class_names == ["World", "Sports"]
    shard = load("text", root / "train" / "data-00001-of-00002.arrow")
    assert shard.train.texts == texts[15:30]
    frame = write_cancer_table(tmp_path / "cancer.csv")
    frame.to_feather(tmp_path / "cancer.feather")
    table = load("table", tmp_path / "cancer.feather")
    assert table.input_shape == (34,) and len(table.train) == len(frame)
    (tmp_path / "broken.arrow").write_bytes(b"ARROW1 not really")
    with pytest.raises(NoisyctlError, match="not a readable Arrow file"):
        load("text", tmp_path / "broken.arrow")
    # the folder named where a dataset's name belongs suggests what to give
    assert "--dataset text --data-root" in cli.error("train", "-d", root / "train" / "data-00000-of-00002.arrow",
                                                     "-o", tmp_path / "run.h5")


def test_a_competition_folder_trains_without_its_unlabeled_test_file(tmp_path):
    """Kaggle's layout: train.csv, a test.csv whose labels are withheld, sample_submission.csv. The
    test file is no test subset (a note says so), unless named; a dataset's files named for their
    split at the end (news_train.csv, news_test.csv) are its splits."""
    frame = write_cancer_table(tmp_path / "cancer.csv").reset_index(names="id")
    (tmp_path / "contest").mkdir()
    frame.iloc[:400].to_csv(tmp_path / "contest" / "train.csv", index=False)
    frame.iloc[400:].drop(columns="target").to_csv(tmp_path / "contest" / "test.csv", index=False)
    frame.iloc[400:][["id"]].assign(target="benign").to_csv(tmp_path / "contest" / "sample_submission.csv",
                                                               index=False)
    table = load("table", tmp_path / "contest")
    assert len(table.train) == 400 and table.test is None
    assert "test.csv has no 'target' column (labels withheld" in " ".join(table.notes)
    assert len(load("table", tmp_path / "contest", test_fraction=0.25).test) == 100
    with pytest.raises(NoisyctlError, match="has no column 'target'"):
        load("table", tmp_path / "contest", test="test.csv")
    texts = [f"{'the match ended in a draw' if i % 3 else 'elections were held today'} ({i})" for i in range(40)]
    (tmp_path / "news").mkdir()
    with open(tmp_path / "news" / "news_train.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *((t, i % 3 > 0) for i, t in enumerate(texts[:30]))])
    with open(tmp_path / "news" / "news_test.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("text",), *((t,) for t in texts[30:])])
    news = load("text", tmp_path / "news")
    assert news.train.texts == texts[:30] and news.test is None and "no test subset" in " ".join(news.notes)


def test_a_parquet_column_of_embeddings_is_features_and_a_multi_label_column_is_refused(tmp_path):
    """A table with an embedding a record (a list column, as Parquet and JSON hold them), one row
    missing it, beside a plain number; and the Hub's multi-label ``labels`` sequences."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(40, 8)).tolist()
    embeddings[5] = None
    pq.write_table(pa.table({"embedding": embeddings, "length": rng.integers(1, 9, 40).astype(float),
                             "label": ["spam", "ham"] * 20}), tmp_path / "emb.parquet")
    data = load("table", tmp_path / "emb.parquet", standardize="false")
    assert data.input_shape == (9,) and "column 'embedding' holds 8 numbers a record" in " ".join(data.notes)
    x = data.train.inputs
    assert x[0, :8] == pytest.approx(embeddings[0]) and x[5, :8] == pytest.approx(
        np.mean([e for e in embeddings if e is not None], axis=0))
    embeddings[7] = [1.0, 2.0]
    pq.write_table(pa.table({"embedding": embeddings, "label": ["a", "b"] * 20}), tmp_path / "ragged.parquet")
    with pytest.raises(NoisyctlError, match="holds lists of 8 numbers, but record 8"):
        load("table", tmp_path / "ragged.parquet")
    pq.write_table(pa.table({"text": ["a b", "c d"], "labels": [[0, 2], [1]]}), tmp_path / "multi.parquet")
    for dataset, options in (("text", {"label_column": "labels"}), ("table", {})):
        with pytest.raises(NoisyctlError, match="record 1's 'labels' holds several labels"):
            load(dataset, tmp_path / "multi.parquet", **options)

"""The bad-input table: every kind of bad input a user or CI job can hand noisyctl, each answered
with one `error:` line, a non-zero exit, no traceback, and no file left half-written."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from noisyctl import plugins, store

RAISING_DETECTOR = '''
from noisyctl.api import BlockDetector, hookimpl

class Broken(BlockDetector):
    """Raises when scoring."""
    reads = ("train_loss",)
    def score_block(self, block):
        raise ZeroDivisionError("bad math")

@hookimpl
def register_detectors(register):
    register("broken", Broken)
'''


def install(site: Path, dist: str, module: str, source: str) -> None:
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[noisyctl]\n{module} = {module}\n")
    (site / f"{module}.py").write_text(source)


def image_folder(d: Path, corrupt: bool = False) -> Path:
    root = d / "images"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    if corrupt:
        (root / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root


def linked_in(d: Path, what: str) -> Path:
    """An image folder with an image, or a whole class folder, linked in from outside it."""
    root = image_folder(d)
    outside = d / "elsewhere"
    outside.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(outside / "secret.png")
    if what == "image":
        (root / "cat" / "9.png").symlink_to(outside / "secret.png")
    else:
        (root / "bird").symlink_to(outside, target_is_directory=True)
    return root


def escaping_ids(cli, d: Path) -> Path:
    """A labels file (say, sent from elsewhere) whose first id climbs out of the dataset root."""
    root = image_folder(d)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "secret.png")
    labels = labels_file(cli, d, ("-d", "imagefolder", "--data-root", root))
    table = store.read_labels(labels)
    table.ids[0] = "../secret.png"
    store.write_labels_file(labels, table)
    return labels


def flipped_in_data(path: Path) -> Path:
    """One bit flipped inside the first chunk of the training losses."""
    with h5py.File(path) as h5:
        offset = h5["dynamics/train_loss"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 5] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def labels_file(cli, d: Path, dataset=("-d", "digits")) -> Path:
    cli("synth", *dataset, "-o", d / "labels.h5")
    return d / "labels.h5"


def run_file(cli, d: Path, *train_args) -> Path:
    cli("train", "-l", labels_file(cli, d), "-e", "1", "-q", *train_args, "-o", d / "run.h5")
    return d / "run.h5"


def edit_attr(path: Path, name: str, change) -> Path:
    with h5py.File(path, "r+") as h5:
        store.set_attr(h5.attrs, name, change(store.get_attr(h5.attrs, name)))
    return path


def swap_ids(path: Path) -> Path:
    with h5py.File(path, "r+") as h5:
        ids = h5["samples/id"][:]
        ids[[0, 1]] = ids[[1, 0]]
        h5["samples/id"][...] = ids
    return path


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def npz_with_bad_label(d: Path) -> Path:
    np.savez(d / "x.npz", x=np.zeros((4, 3), np.float32), y=np.array([0, 1, 2, 12]),
             class_names=np.array(["a", "b", "c"]))
    return d / "x.npz"


def npz_with_a_label_short(d: Path) -> Path:
    np.savez(d / "short.npz", features=np.zeros((10, 3), np.float32), labels=np.arange(9) % 3)
    return d / "short.npz"


def mutated(cli, d: Path, change, *train_args) -> Path:
    """A real run file, changed by ``change(h5)`` as a hand-edit or another tool might."""
    path = run_file(cli, d, *train_args)
    with h5py.File(path, "r+") as h5:
        change(h5)
    return path


def replace_field(name: str, values) -> callable:
    def change(h5):
        del h5[name]
        h5[name] = values
    return change


def linked_elsewhere(kind: str):
    def change(h5):
        outside = Path(h5.filename).with_name("outside.h5")
        with h5py.File(outside, "w") as other:
            other["ids"] = np.array([b"/etc/passwd"] * 1797)
        del h5["samples/id"]
        if kind == "external":
            h5["samples/id"] = h5py.ExternalLink(str(outside), "ids")
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=(1797,), dtype="S11")
            layout[:] = h5py.VirtualSource(str(outside), "ids", shape=(1797,))
            h5.create_virtual_dataset("samples/id", layout)
        else:
            h5["kept"] = np.array([b"x"] * 1797)
            h5["samples/id"] = h5py.SoftLink("/kept")
    return change


def labels_with(cli, d: Path, change) -> Path:
    path = labels_file(cli, d)
    with h5py.File(path, "r+") as h5:
        change(h5)
    return path


BILLION_LAUGHS = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                  "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                  "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                  "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                  "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\nsteps: *i\n")


def huge_weights(d: Path) -> Path:
    """A weights file whose metadata declares a million member networks (a few bytes of tensors)."""
    import json

    from safetensors.numpy import save_file

    from noisyctl.builtin.detectors.learned.features import FEATURE_SETS

    meta = {"kind": "learned", "features": FEATURE_SETS["learned"].names, "members": 1_000_000, "hidden": 8}
    save_file({"x": np.zeros(1, np.float32)}, str(d / "huge.safetensors"),
              metadata={k: json.dumps(v) for k, v in meta.items()})
    return d / "huge.safetensors"


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def fifo(path: Path) -> Path:
    import os

    os.mkfifo(path)
    return path


def set_root_attr(name: str, value):
    def change(h5):
        h5.attrs[name] = value
    return change


# (what, setup(cli, d, site) -> argv, the error line must contain, files the failure may leave)
BAD_INPUTS = [
    ("missing dataset path", lambda cli, d, s: ["train", "--dataset", "imagefolder", "--data-root", d / "nowhere",
                                                "-o", d / "r.h5"], "does not exist", ()),
    ("dataset path is a file", lambda cli, d, s: ["train", "--dataset", "imagefolder", "--data-root",
                                                  write(d / "f.txt", "x"), "-o", d / "r.h5"], "f.txt", ()),
    ("image that does not decode", lambda cli, d, s: ["train", "--dataset", "imagefolder", "--data-root",
                                                      image_folder(d, corrupt=True), "-e", "1", "-q", "-o", d / "r.h5"],
     "1.png", ()),
    ("dataset image linked from outside the root", lambda cli, d, s: [
        "train", "--dataset", "imagefolder", "--data-root", linked_in(d, "image"), "-o", d / "r.h5"],
     "outside the dataset root", ()),
    ("dataset class folder linked from outside the root", lambda cli, d, s: [
        "synth", "--dataset", "imagefolder", "--data-root", linked_in(d, "class"), "-o", d / "l.h5"],
     "outside the dataset root", ()),
    ("labels file whose ids climb out of the dataset root", lambda cli, d, s: [
        "train", "-l", escaping_ids(cli, d), "-o", d / "r.h5"], "does not match dataset 'imagefolder'", ()),
    ("a device this machine lacks", lambda cli, d, s: ["train", "-d", "digits", "--device", "xla", "-o", d / "r.h5"],
     "--device xla cannot be used here: this machine or PyTorch build has no xla device", ()),
    ("a CUDA device past the last", lambda cli, d, s: ["train", "-d", "digits", "--device", "cuda:99", "-o", d / "r.h5"],
     "--device cuda:99 ", ()),
    ("label outside the class range", lambda cli, d, s: ["train", "--dataset", "npz", "--data-root",
                                                         npz_with_bad_label(d), "-o", d / "r.h5"], "outside 0..2", ()),
    ("inputs and labels of different lengths", lambda cli, d, s: ["train", "--dataset", "npz", "--data-root",
                                                                   npz_with_a_label_short(d), "-o", d / "r.h5"],
     "'features' has 10 rows, its labels 9 and its ids 9", ()),
    ("a data file where the dataset's name belongs", lambda cli, d, s: [
        "train", "--dataset", npz_with_a_label_short(d), "-o", d / "r.h5"],
     "is a file, not a dataset's name: give what it holds and where, --dataset npz --data-root", ()),
    ("a table where the dataset's name belongs", lambda cli, d, s: [
        "train", "--dataset", write(d / "patients.csv", "age,label\n40,a\n"), "-o", d / "r.h5"],
     "patients.csv (--dataset table for feature columns)", ()),
    ("a folder of records where the dataset's name belongs", lambda cli, d, s: [
        "train", "--dataset", write(d / "hub" / "data" / "train-00000-of-00001.csv", "text,label\nhi,a\n")
        .parent.parent, "-o", d / "r.h5"], "give what it holds and where, --dataset text --data-root", ()),
    ("a data root given a built-in dataset, which would ignore it", lambda cli, d, s: [
        "synth", "-d", "digits", "--data-root", image_folder(d), "-o", d / "l.h5"],
     "digits is built in and reads nothing from --data-root", ()),
    ("records as the data root without a dataset", lambda cli, d, s: [
        "synth", "--data-root", write(d / "patients.csv", "age,label\n40,a\n"), "-o", d / "l.h5"],
     "holds records: give what they are, --dataset text (a text and a label column) or --dataset table", ()),
    ("a regression target as the label column", lambda cli, d, s: [
        "synth", "-d", "table", "--data-root", write(d / "prices.csv", "area,target\n" + "".join(
            f"{k},{1000 + k * 3.7:.2f}\n" for k in range(60))), "-o", d / "l.h5"],
     "column 'target' holds 60 different numbers (1000.00, 1003.70, 1007.40, ...): a quantity to predict, not "
     "classes", ()),
    ("a data copy of a run recorded from data noisyctl does not read", lambda cli, d, s: [
        "export", edit_attr(labels_file(cli, d), "dataset", lambda v: v.replace('"digits"', '"custom"')),
        "--data-copy", d / "copy.csv"], "was recorded from data noisyctl does not read ('custom'); --labels-csv", ()),
    ("a data copy of a dataset with no form of its own", lambda cli, d, s: [
        "export", labels_file(cli, d), "--data-copy", d / "copy.csv"],
     "--data-copy: digits has no copy of its own to write", ()),
    ("labels file for another dataset (count)", lambda cli, d, s: [
        "train", "-l", edit_attr(labels_file(cli, d, ("-d", "blobs", "-D", "samples=300")), "dataset",
                                 lambda v: v.replace('"samples": 300', '"samples": 400')), "-o", d / "r.h5"],
     "has 300 samples but dataset 'blobs' has 400", ()),
    ("labels file for another dataset (ids)", lambda cli, d, s: ["train", "-l", swap_ids(labels_file(cli, d)),
                                                                 "-o", d / "r.h5"], "does not match dataset", ()),
    ("truncated HDF5 file", lambda cli, d, s: ["detect", truncate(run_file(cli, d))],
     "not a readable HDF5 file (truncated, corrupt or another format)", ()),
    ("bit flipped inside an HDF5 file's data", lambda cli, d, s: ["detect", flipped_in_data(run_file(cli, d)),
                                                                 "-d", "loss", "--no-save"],
     # libhdf5's reason follows in its own words, which differ by version (h5py 3.8: "Can't read
     # data (data error detected by Fletcher32 checksum)")
     "is damaged and cannot be read (Can't ", ()),
    ("corrupt HDF5 file", lambda cli, d, s: ["report", write(d / "bad.h5", "\x89HDF\r\n\x1a\n" + "x" * 400)],
     "not a readable HDF5 file", ()),
    ("another schema version", lambda cli, d, s: ["detect", edit_attr(run_file(cli, d), "schema_version",
                                                                      lambda v: 99)],
     "schema version 99, this noisyctl reads version 1: upgrade noisyctl", ()),
    ("recipe with an unknown key", lambda cli, d, s: ["run", write(d / "r.yaml", "steps:\n  - train: {epoch: 3}\n")],
     "unknown key 'epoch'", ()),
    ("recipe with a wrong type", lambda cli, d, s: ["run", write(d / "r.yaml", "steps:\n  - train: {epochs: ten}\n")],
     "Invalid value for '--epochs'", ()),
    ("recipe step needs a file no earlier step makes", lambda cli, d, s: [
        "run", write(d / "r.yaml", f"steps:\n  - detect: {{run: {d / 'never.h5'}}}\n")],
     "does not exist and no earlier step writes it", ()),
    ("noise rate outside [0, 1)", lambda cli, d, s: ["synth", "-r", "1.5", "-o", d / "l.h5"], "outside [0, 1)", ()),
    ("transition rows that do not sum to 1", lambda cli, d, s: [
        "synth", "-n", "transition", "-N", f"matrix={write(d / 'm.yaml', '[[0.5, 0.2], [0.1, 0.9]]')}",
        "-d", "blobs", "-D", "classes=2", "-o", d / "l.h5"], "sum", ()),
    ("detector needs a channel the file lacks", lambda cli, d, s: ["detect", run_file(cli, d, "--no-record-eval"),
                                                                   "-d", "datamap"],
     "train records eval_* channels unless --no-record-eval", ()),
    ("NaN losses", lambda cli, d, s: ["train", "-l", labels_file(cli, d), "-e", "3", "-q", "--lr", "1e30",
                                      "-o", d / "r.h5"], "lower the learning rate", ("r.h5",)),
    ("a plugin that raises at import", lambda cli, d, s: (install(s, "bad-import", "bad_import",
                                                                  "raise RuntimeError('no gpu here')\n"),
                                                          ["detect", run_file(cli, d), "-d", "bad"])[1],
     "unknown detector 'bad'", ()),
    ("a plugin that raises when called", lambda cli, d, s: (install(s, "bad-call", "bad_call", RAISING_DETECTOR),
                                                            ["detect", run_file(cli, d), "-d", "broken"])[1],
     "detector 'broken' from plugin 'bad-call:bad_call' (bad-call 1.0) failed: ZeroDivisionError: bad math", ()),
    ("run file whose ids are an external link to another file", lambda cli, d, s: [
        "detect", mutated(cli, d, linked_elsewhere("external")), "-d", "loss", "--no-save"],
     "samples/id is a ExternalLink", ("outside.h5",)),
    ("run file whose ids are a virtual dataset over another file", lambda cli, d, s: [
        "report", mutated(cli, d, linked_elsewhere("virtual"))], "keeps its data in another file", ("outside.h5",)),
    ("run file whose ids are a soft link", lambda cli, d, s: [
        "detect", mutated(cli, d, linked_elsewhere("soft")), "-d", "loss", "--no-save"], "is a SoftLink", ()),
    ("negative given label", lambda cli, d, s: [
        "detect", mutated(cli, d, replace_field("samples/given_label", np.full(1797, -3, np.int32))), "-d", "loss"],
     "samples/given_label holds -3, outside the 10 classes 0..9", ()),
    ("given label beyond the classes", lambda cli, d, s: [
        "prune", mutated(cli, d, replace_field("samples/given_label", np.arange(1797, dtype=np.int32))),
        "--ratio", "0.1", "-o", d / "p.h5"], "holds 1796, outside the 10 classes", ()),
    ("float given labels", lambda cli, d, s: [
        "detect", mutated(cli, d, replace_field("samples/given_label", np.zeros(1797, np.float32))), "-d", "loss"],
     "samples/given_label should be int32, not float32", ()),
    ("eval_pred outside the classes", lambda cli, d, s: [
        "detect", mutated(cli, d, replace_field("dynamics/eval_pred", np.full((1797, 1), 40, np.int32))),
        "-d", "datamap", "-d", "learned", "--no-save"], "dynamics/eval_pred holds a class outside 0..9", ()),
    ("stored scores of the wrong length", lambda cli, d, s: [
        "prune", mutated(cli, d, lambda h5: h5.create_dataset("scores/loss", data=np.zeros(5, np.float32))),
        "--ratio", "0.1", "-o", d / "p.h5"], "scores/loss has shape 5; the schema says N = 1797", ()),
    ("flags of the wrong rank", lambda cli, d, s: [
        "report", mutated(cli, d, lambda h5: (h5.create_dataset("scores/loss", data=np.zeros(1797, np.float32)),
                                              h5.create_dataset("flags/loss", data=np.zeros((1797, 2), bool))))],
     "flags/loss has shape 1797 x 2; the schema says N = 1797", ()),
    ("probabilities of the wrong width", lambda cli, d, s: [
        "export", mutated(cli, d, replace_field("probs/late_mean", np.zeros((1797, 3), np.float16))),
        "--cleanlab", d / "c.npz"], "probs/late_mean has shape 1797 x 3; the schema says N x C = 1797 x 10", ()),
    ("schema version as text", lambda cli, d, s: [
        "detect", mutated(cli, d, set_root_attr("schema_version", "one"))],
     "'schema_version' attribute should be an integer", ()),
    ("num_epochs zero", lambda cli, d, s: ["detect", mutated(cli, d, set_root_attr("num_epochs", 0))],
     "num_epochs is 0; a run records 1 to", ()),
    ("num_epochs huge", lambda cli, d, s: ["detect", mutated(cli, d, set_root_attr("num_epochs", 10**12))],
     "num_epochs is 1000000000000", ()),
    ("num_epochs as an array", lambda cli, d, s: ["detect", mutated(cli, d, set_root_attr("num_epochs", [1, 2]))],
     "'num_epochs' attribute should be an integer", ()),
    ("dataset attribute without a name", lambda cli, d, s: [
        "report", mutated(cli, d, set_root_attr("dataset", '{"root": null}'))], "names no dataset", ()),
    ("empty class list", lambda cli, d, s: [
        "detect", mutated(cli, d, replace_field("classes/name", np.array([], dtype="S1")))], "names no classes", ()),
    ("a removal mask of the wrong length", lambda cli, d, s: [
        "train", "-l", labels_with(cli, d, lambda h5: h5.create_dataset("samples/removed", data=np.zeros(50, bool))),
        "-o", d / "r.h5"], "samples/removed has shape 50; the schema says N = 1797", ()),
    ("a removal mask of integers", lambda cli, d, s: [
        "train", "-l", labels_with(cli, d, lambda h5: h5.create_dataset("samples/removed",
                                                                        data=np.ones(1797, np.int32))),
        "-o", d / "r.h5"], "samples/removed should be bool, not int32", ()),
    ("recipe of billion-laughs anchors", lambda cli, d, s: ["run", write(d / "r.yaml", BILLION_LAUGHS)],
     "once its aliases (*name) are expanded", ()),
    ("recipe nested 10,000 deep", lambda cli, d, s: ["run", write(d / "r.yaml", "steps: " + "[" * 10000 + "]" * 10000)],
     "nested more than 50 levels deep", ()),
    ("recipe of 2 MB", lambda cli, d, s: ["run", write(d / "r.yaml", "# " + "x" * (2 << 20))], "larger than 1 MiB", ()),
    ("recipe that is a pipe", lambda cli, d, s: ["run", fifo(d / "r.yaml")], "is not a regular file", ()),
    ("run file that is a pipe", lambda cli, d, s: ["detect", fifo(d / "run.h5")], "is not a regular file", ()),
    ("model option of billion-laughs anchors", lambda cli, d, s: [
        "train", "-d", "digits", "-M", "width={" + BILLION_LAUGHS.replace("\n", ", ").rstrip(", ") + "}",
        "-o", d / "r.h5"], "once its aliases (*name) are expanded", ()),
    ("detector weights declaring a million members", lambda cli, d, s: [
        "detect", run_file(cli, d), "-d", "learned", "--detector-option", f"learned.weights={huge_weights(d)}"],
     "its metadata declares members 1000000; a detector has 1 to 64", ()),
    ("train-detector with a negative batch size", lambda cli, d, s: [
        "train-detector", run_file(cli, d), "-b", "-3", "-o", d / "w.safetensors"], "batch size -3", ()),
    ("train-detector for zero epochs", lambda cli, d, s: [
        "train-detector", run_file(cli, d), "-e", "0", "-o", d / "w.safetensors"], "at least one epoch", ()),
    ("train-detector at a NaN learning rate", lambda cli, d, s: [
        "train-detector", run_file(cli, d), "--lr", "nan", "-o", d / "w.safetensors"], "not nan", ()),
    ("negative count of suspects", lambda cli, d, s: ["detect", run_file(cli, d), "--top", "-1"],
     "--top -1 cannot be negative", ()),
    ("negative momentum", lambda cli, d, s: ["train", "-d", "digits", "--momentum", "-0.5", "-o", d / "r.h5"],
     "momentum must lie in [0, 1)", ()),
    ("negative weight decay", lambda cli, d, s: ["train", "-d", "digits", "--weight-decay", "-1", "-o", d / "r.h5"],
     "weight decay cannot be negative", ()),
    ("negative seed", lambda cli, d, s: ["train", "-d", "digits", "--seed", "-4", "-o", d / "r.h5"],
     "seed must lie in 0..2^63-1", ()),
    ("negative model width", lambda cli, d, s: ["train", "-d", "digits", "-M", "width=-3", "-o", d / "r.h5"],
     "small-cnn: width must be at least 1", ()),
    ("dataset's location given as an option", lambda cli, d, s: ["train", "-d", "npz", "-D", f"root={d / 'x.npz'}",
                                                                  "-o", d / "r.h5"],
     "where dataset 'npz' lives is --data-root PATH", ()),
    ("more folds than samples", lambda cli, d, s: ["train", "-d", "blobs", "-D", "samples=20", "-m", "mlp",
                                                   "--folds", "50", "-o", d / "r.h5"],
     "--folds 50 is more folds than the 20 samples", ()),
    ("output is an existing folder", lambda cli, d, s: ["synth", "-o", folder(d / "out")],
     "is a folder; give the name of a file to write", ()),
    ("scores written to a pipe", lambda cli, d, s: ["detect", run_file(cli, d), "-d", "loss", "--scores-out",
                                                    fifo(d / "pipe")], "is not a regular file (a device, pipe", ()),
    ("report written under a file", lambda cli, d, s: ["report", run_file(cli, d), "--html", write(d / "f", "x") / "r.html"],
     "a folder on its path is a file", ()),
    ("output name too long", lambda cli, d, s: ["synth", "-o", d / ("x" * 300 + ".h5")], "File name too long", ()),
    ("output is the command's input", lambda cli, d, s: ["prune", run_file(cli, d), "--ratio", "0.1", "-o", d / "run.h5"],
     "is this command's input", ()),
    ("a required field missing", lambda cli, d, s: [
        "detect", mutated(cli, d, lambda h5: h5.__delitem__("samples/given_label"))],
     "lacks samples/given_label, which every noisyctl run file holds", ()),
]


@pytest.mark.parametrize("what, setup, message, may_leave", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input(cli, tmp_path, monkeypatch, what, setup, message, may_leave):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    argv = setup(cli, work, site)
    before = {p.relative_to(work) for p in work.rglob("*")}
    line = cli.error(*argv)  # one `error:` line, non-zero exit, no traceback
    assert message in line, line
    after = {p.relative_to(work) for p in work.rglob("*")}
    left = {str(p) for p in after - before if not p.name.endswith(".lock")}
    assert left <= set(may_leave), f"{what} left {left}"
    assert not [p for p in work.rglob("*.tmp")], "a temporary file was left behind"
    plugins.reset()


def test_nan_losses_keep_the_epochs_finished_so_far(cli, tmp_path, monkeypatch):
    from noisyctl.training import Recorder

    real_update = Recorder.update

    def diverges_in_epoch_three(self, indices, logits, targets=None, **values):
        if self.epochs_done == 2:
            logits = logits * float("nan")
        return real_update(self, indices, logits, targets, **values)

    monkeypatch.setattr(Recorder, "update", diverges_in_epoch_three)
    labels = labels_file(cli, tmp_path)
    line = cli.error("train", "-l", labels, "-e", "5", "-q", "-o", tmp_path / "r.h5")
    assert "training loss became nan in epoch 3" in line and "the 2 finished epoch(s) are kept" in line
    with h5py.File(tmp_path / "r.h5") as h5:
        assert h5.attrs["num_epochs"] == 2 and np.isfinite(h5["dynamics/train_loss"][:]).all()

"""Locks against two writers, property tests (hypothesis) and a bounded fuzz of the readers."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisyctl.builtin.noise.flips import pairflip, uniform
from noisyctl import plugins
from noisyctl.api import BlockDetector, NoiseContext, hookimpl
from noisyctl.fileio import exclusive
from noisyctl.store import Labels, RunFile, read_labels, write_labels_file
from noisyctl.training import Checkpoints

# The characters an HDF5 string can hold: UTF-8, so no lone surrogates (h5py refuses to write them),
# and no NUL.
HDF5_TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


def test_a_second_process_training_into_the_same_file_is_refused(cli, tmp_path):
    cli("synth", "-o", tmp_path / "l.h5")
    out = tmp_path / "r.h5"
    with exclusive(Checkpoints(out).folder / "lock", "training (the first process)"):
        line = cli.error("train", "-l", tmp_path / "l.h5", "-e", "1", "-q", "-o", out)
    assert "another noisyctl process is training into" in line and not out.exists()
    cli("train", "-l", tmp_path / "l.h5", "-e", "1", "-q", "-o", out)  # free again once the first is done
    assert out.exists() and not Checkpoints(out).folder.exists()


def test_a_second_process_saving_scores_into_the_same_file_is_refused(cli, digits_run, tmp_path):
    import shutil

    run = tmp_path / "run.h5"
    shutil.copy(digits_run, run)
    with exclusive(run.with_name(f".{run.name}.lock"), "saving scores (the first process)"):
        assert "another noisyctl process is saving scores" in cli.error("detect", run, "-d", "loss")
    cli("detect", run, "-d", "loss")
    assert not run.with_name(f".{run.name}.lock").exists()


class _ReplacedWhileScoring:
    """A detector during whose scoring another run is written at the run's path (a `train -o` finishing)."""

    replacement = None

    class Detector(BlockDetector):
        reads = ("train_loss",)

        def score(self, dynamics):
            import os
            import shutil

            # as train does: a new file moved into place (the open run keeps reading the old one)
            shutil.copy(_ReplacedWhileScoring.replacement, dynamics.path.with_name("new.tmp"))
            os.replace(dynamics.path.with_name("new.tmp"), dynamics.path)
            return super().score(dynamics)

        def score_block(self, block):
            return block["train_loss"].mean(axis=1)

    @staticmethod
    @hookimpl
    def register_detectors(register):
        register("slow-scorer", _ReplacedWhileScoring.Detector)


def test_scores_are_saved_only_into_the_file_that_was_scored(cli, digits_run, tmp_path):
    import shutil

    run, other = tmp_path / "run.h5", tmp_path / "other.h5"
    shutil.copy(digits_run, run)
    cli("synth", "-o", tmp_path / "l.h5")
    cli("train", "-l", tmp_path / "l.h5", "-e", "1", "-q", "-o", other)
    _ReplacedWhileScoring.replacement = other
    plugins.add_local_plugin(_ReplacedWhileScoring)
    try:
        line = cli.error("detect", run, "-d", "slow-scorer")
    finally:
        plugins.remove_local_plugin(_ReplacedWhileScoring)
        plugins.reset()
    assert "was replaced by another file while it was scored" in line
    assert _digest(run) == _digest(other)  # the newer file stands, without the first run's scores
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob(".*.lock"))
    cli("detect", run, "-d", "loss")  # scoring the file that is there now saves
    with RunFile(run) as saved:
        assert "loss" in saved.scores()


def noise_context(labels, classes, seed):
    return NoiseContext(labels=np.asarray(labels), class_names=[str(c) for c in range(classes)],
                        rng=np.random.default_rng(seed))


@settings(max_examples=60, deadline=None)
@given(classes=st.integers(2, 12), n=st.integers(1, 400), rate=st.floats(0, 0.99), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from([uniform, pairflip]))
def test_noise_is_exact_never_the_same_class_and_reproducible(classes, n, rate, seed, kind):
    labels = np.random.default_rng(seed).integers(0, classes, n)
    noisy = kind(noise_context(labels, classes, seed), rate)
    assert (noisy != labels).sum() == round(rate * n)  # exact, and a flip never lands on its own class
    assert ((noisy >= 0) & (noisy < classes)).all()
    assert np.array_equal(noisy, kind(noise_context(labels, classes, seed), rate))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 50), classes=st.integers(1, 6), data=st.data())
def test_labels_files_round_trip(tmp_path, n, classes, data):
    ids = data.draw(st.lists(st.text(HDF5_TEXT, min_size=1, max_size=12), min_size=n, max_size=n, unique=True))
    given_labels = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    reviewed = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    labels = Labels(ids=ids, given_labels=given_labels, class_names=[f"c{i}" for i in range(classes)],
                    dataset={"name": "x", "root": None, "options": {"k": [1, "ü"]}}, true_labels=given_labels[::-1].copy(),
                    reviewed=reviewed)
    write_labels_file(tmp_path / "l.h5", labels)
    back = read_labels(tmp_path / "l.h5")
    assert back.ids == ids and np.array_equal(back.given_labels, given_labels) and back.dataset == labels.dataset
    assert np.array_equal(back.true_labels, labels.true_labels)
    assert (back.reviewed is None and not reviewed.any()) or np.array_equal(back.reviewed, reviewed)


def test_an_id_hdf5_cannot_store_is_refused_in_one_line(tmp_path):
    from noisyctl.errors import NoisyctlError

    labels = Labels(ids=["a\x00b"], given_labels=np.array([0]), class_names=["c"], dataset={})
    with pytest.raises(NoisyctlError, match="NUL character"):
        write_labels_file(tmp_path / "l.h5", labels)
    assert not list(tmp_path.iterdir())


def test_fuzzed_recipes_are_run_checked_or_refused_in_one_line(cli, tmp_path):
    valid = ("steps:\n  - synth: {dataset: digits, noise: pairflip, rate: 0.2, out: l.h5}\n"
             "  - train: {labels: l.h5, epochs: 2, out: r.h5}\n  - detect: {run: r.h5, detector: [loss]}\n")
    rng = np.random.default_rng(0)
    alphabet = list(":{}[]-,'\"\n #!&*|>%@`") + list("abcdefgh0123456789")
    for attempt in range(40):
        text = list(valid)
        for _ in range(rng.integers(1, 6)):
            position = int(rng.integers(0, len(text)))
            if rng.random() < 0.5:
                del text[position]
            else:
                text.insert(position, str(rng.choice(alphabet)))
        recipe = tmp_path / f"r{attempt}.yaml"
        recipe.write_text("".join(text))
        result = cli("run", recipe, "--check", ok=False)
        assert "Traceback" not in result.stdout + result.stderr, "".join(text)
        if result.exit_code:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_fuzzed_run_files_are_read_or_refused_in_one_line(cli, digits_run, tmp_path):
    """Run files cut at random points, and run files whose JSON attributes hold random text or
    payloads that would execute code if anything unpickled or evaluated them."""
    import h5py

    data = digits_run.read_bytes()
    rng = np.random.default_rng(1)
    cases = []
    for attempt, cut in enumerate(rng.integers(0, len(data), size=12)):
        path = tmp_path / f"cut{attempt}.h5"
        path.write_bytes(data[:int(cut)])
        cases.append(path)
    payloads = ["{not json", "cos\nsystem\n(S'touch /tmp/pwned'\ntR.", "!!python/object/apply:os.system ['touch x']",
                '{"name": ["digits"]}', "null", '"__import__(\'os\').system(\'x\')"', "[]", "1e999"]
    for attempt, payload in enumerate(payloads):
        path = tmp_path / f"attr{attempt}.h5"
        path.write_bytes(data)
        with h5py.File(path, "r+") as h5:
            h5.attrs[["dataset", "training", "noise", "plugins"][attempt % 4]] = payload
        cases.append(path)
    for path in cases:
        for command in (["detect", path, "-d", "loss", "--no-save", "-k", "3"], ["report", path]):
            result = cli(*command, ok=False)
            assert "Traceback" not in result.stdout + result.stderr, (path.name, result.stderr)
            if result.exit_code:
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: "), (path.name, result.stderr)
                assert "internal error" not in lines[0], (path.name, lines[0])
    assert not (tmp_path / "x").exists()


READ_EVERYTHING = """
import sys
from noisyctl.errors import NoisyctlError
from noisyctl.store import RunFile
try:
    with RunFile(sys.argv[1]) as run:
        run.epochs(), run.scores(), run.flags(), run.features(), run.probabilities("late_mean")
        for _ in run.iter_blocks(tuple(c for c in ("train_loss", "train_margin", "eval_prob") if run.has_channel(c))):
            pass
except NoisyctlError as exc:
    print(exc)
"""


@pytest.mark.slow
def test_run_files_with_flipped_bits_are_read_or_refused_in_one_line(cli, digits_run, tmp_path):
    """Random bit flips, half of them in the first 64 KiB where HDF5 keeps its metadata. Reading
    must finish: a child process with a time limit checks that, since a libhdf5 loop cannot be
    interrupted in-process (variable-length strings in a damaged global heap used to cause one).
    Then the commands either work or say in one line that the file is damaged."""
    data = digits_run.read_bytes()
    rng = np.random.default_rng(2)
    refused = 0
    for attempt in range(16):
        damaged = bytearray(data)
        for _ in range(rng.integers(1, 8)):
            position = int(rng.integers(0, 65536 if rng.random() < 0.5 else len(data)))
            damaged[position] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flipped{attempt}.h5"
        path.write_bytes(bytes(damaged))
        try:
            subprocess.run([sys.executable, "-c", READ_EVERYTHING, str(path)], capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"reading {path.name} (bits flipped at random) did not finish")
        for command in (["detect", path, "-d", "loss", "--no-save", "-k", "3"], ["report", path]):
            result = cli(*command, ok=False)
            assert "Traceback" not in result.stdout + result.stderr, (path.name, result.stderr)
            if result.exit_code:
                refused += 1
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: "), (path.name, result.stderr)
                assert "internal error" not in lines[0], (path.name, lines[0])
    assert refused, "no flip was noticed: the checksums are not being checked"


def test_paths_named_in_files_cannot_reach_outside_the_dataset_root(cli, tmp_path):
    """A review CSV is matched by id only (its path column is for the reviewer's eyes), an id that
    climbs out of the root refuses the whole file, and an id from a file sent from elsewhere is
    never turned into a path outside the root."""
    import csv

    from PIL import Image

    from noisyctl.review import sample_path

    root = tmp_path / "images"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(secret)
    labels = tmp_path / "labels.h5"
    cli("synth", "-d", "imagefolder", "--data-root", root, "-o", labels)
    dataset = read_labels(labels).dataset
    assert sample_path(dataset, "cat/0.png") == str(root / "cat" / "0.png")
    assert sample_path(dataset, "../secret.png") == "" and sample_path(dataset, str(secret)) == ""

    def review(rows):
        path = tmp_path / "review.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "path", "reviewed_label"])
            writer.writerows(rows)
        return path

    out = tmp_path / "reviewed.h5"
    cli("import-review", review([["cat/0.png", str(secret), "dog"]]), "--labels", labels, "-o", out)
    after = read_labels(out)
    assert after.ids == read_labels(labels).ids and after.given_labels[after.ids.index("cat/0.png")] == 1
    line = cli.error("import-review", review([["cat/1.png", "", "dog"], ["../secret.png", "", "cat"]]),
                     "--labels", labels, "-o", tmp_path / "refused.h5")
    assert "id '../secret.png' is not in the labels" in line and not (tmp_path / "refused.h5").exists()


def _digest(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# A command whose output is one of its inputs (issue 25): every one refused before any work.
OUTPUT_IS_INPUT = [
    ("prune", ["prune", "RUN", "--ratio", "0.1", "-o", "RUN"]),
    ("prune --retrain", ["prune", "RUN", "--ratio", "0.1", "-o", "p.h5", "--retrain", "RUN"]),
    ("correct --apply", ["correct", "RUN", "-c", "knn", "--apply", "-o", "RUN"]),
    ("correct --export", ["correct", "RUN", "-c", "knn", "--export", "RUN"]),
    ("report --html", ["report", "RUN", "--html", "RUN"]),
    ("export --cleanlab", ["export", "RUN", "--cleanlab", "RUN"]),
    ("export --suspects", ["export", "RUN", "--suspects", "RUN"]),
    ("detect --scores-out", ["detect", "RUN", "-d", "loss", "--scores-out", "RUN"]),
    ("train-detector", ["train-detector", "RUN", "-e", "1", "-o", "RUN"]),
    ("train on its own labels", ["train", "-l", "LABELS", "-e", "1", "-o", "LABELS"]),
    ("import-review", ["import-review", "REVIEW", "-l", "LABELS", "-o", "LABELS"]),
    ("through a hard link", ["prune", "RUN", "--ratio", "0.1", "-o", "HARDLINK"]),
    ("through a symlink", ["prune", "SYMLINK", "--ratio", "0.1", "-o", "RUN"]),
]


@pytest.mark.parametrize("argv", [row[1] for row in OUTPUT_IS_INPUT], ids=[row[0] for row in OUTPUT_IS_INPUT])
def test_an_output_that_is_an_input_is_refused_and_nothing_is_lost(cli, digits_run, tmp_path, argv):
    import os
    import shutil

    run = tmp_path / "run.h5"
    shutil.copy(digits_run, run)
    labels = tmp_path / "labels.h5"
    cli("synth", "-o", labels)
    review = tmp_path / "review.csv"
    review.write_text("id,label\ndigits/0000,0\n")
    os.link(run, tmp_path / "hard.h5")
    (tmp_path / "soft.h5").symlink_to(run)
    names = {"RUN": run, "LABELS": labels, "REVIEW": review, "HARDLINK": tmp_path / "hard.h5",
             "SYMLINK": tmp_path / "soft.h5"}
    before = {path: _digest(path) for path in (run, labels, review)}
    line = cli.error(*[names.get(a, a) for a in argv])
    assert "is this command's input" in line and "nothing was written" in line, line
    assert {path: _digest(path) for path in before} == before
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "p.h5").exists()


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "folder", "is a folder; give the name of a file"),
    (lambda d: d / "a-file" / "x.h5", "a folder on its path is a file"),
    (lambda d: d / "fifo", "is not a regular file (a device, pipe or socket)"),
    (lambda d: d / ("n" * 250 + ".h5"), "its name is longer than"),
], ids=["a folder", "under a file", "a pipe", "a name too long"])
def test_outputs_noisyctl_cannot_replace_safely_are_refused_and_survive(cli, tmp_path, make, message):
    import os
    import stat

    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("keep me")
    os.mkfifo(tmp_path / "fifo")
    target = make(tmp_path)
    assert message in cli.error("synth", "-o", target)
    assert (tmp_path / "folder").is_dir() and (tmp_path / "a-file").read_text() == "keep me"
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)
    assert not list(tmp_path.rglob(".*.tmp"))


def test_debris_of_killed_writers_is_removed_and_a_live_writers_is_kept(cli, digits_run, tmp_path):
    import shutil

    run = tmp_path / "run.h5"
    shutil.copy(digits_run, run)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # the pid of a process that has exited
    dead = tmp_path / f".run.h5.{gone}.abcd1234.tmp"
    dead.write_bytes(b"x" * 1000)
    live = tmp_path / f".run.h5.{os.getpid()}.efgh5678.tmp"
    live.write_bytes(b"being written")
    (tmp_path / ".run.h5.lock").write_bytes(b"")  # nobody holds it: a killed detect's
    cli("detect", run, "-d", "loss", "--no-save")  # a command that only reads the run cleans up
    assert not dead.exists() and not (tmp_path / ".run.h5.lock").exists() and live.exists()
    with exclusive(tmp_path / ".run.h5.lock", "saving scores (another process)"):
        cli("detect", run, "-d", "loss", "--no-save")
        assert (tmp_path / ".run.h5.lock").exists()  # held: not debris


def test_a_lock_released_by_another_thread_is_free(tmp_path):
    """A Recorder closed by another thread than the one that opened it leaves no lock behind."""
    import threading
    from contextlib import ExitStack

    holding = ExitStack()
    holding.enter_context(exclusive(tmp_path / "lock", "training (a Recorder)"))
    closing = threading.Thread(target=holding.close)
    closing.start()
    closing.join()
    with exclusive(tmp_path / "lock", "training (the next Recorder)"):
        pass


def test_no_process_is_signalled_to_tell_whether_it_runs_on_windows(monkeypatch):
    """os.kill(pid, 0) terminates the process on Windows: there every writer counts as alive."""
    import os

    from noisyctl import fileio

    def kill(pid, signal):
        raise AssertionError(f"os.kill({pid}, {signal}) called")

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(os, "name", "nt")
    assert fileio._alive(os.getpid() + 1)


HOSTILE_IDS = ["[/]", "[link=http://evil.example]click[/link]", "\x1b[31mred\x1b[0m", "\x1b]8;;http://x\x1b\\a\x1b]8;;\x1b\\",
               ":smile:", "=HYPERLINK(\"http://x\")", "+1+1", "@SUM(A1)", "-2+3"]


def test_names_from_files_are_plain_text_on_screen_and_in_spreadsheets(cli, tmp_path, monkeypatch):
    """Ids and class names are data: never markup, emoji codes, terminal escapes or spreadsheet formulas."""
    import csv
    import json

    monkeypatch.setenv("COLUMNS", "400")  # whole ids in the tables

    rows = [{"id": HOSTILE_IDS[i % len(HOSTILE_IDS)] + f"#{i}", "text": f"sample {i} " + ("good" if i % 2 else "bad"),
             "label": "[bold]yes" if i % 2 else ":smile:"} for i in range(60)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    data = ["-d", "text", "--data-root", tmp_path / "d.jsonl", "-D", "id_column=id"]
    cli("synth", *data, "-r", "0.2", "-o", tmp_path / "l.h5")
    cli("train", "-l", tmp_path / "l.h5", "-m", "text-bag", "-e", "2", "-q", "-o", tmp_path / "r.h5")
    printed = cli("detect", tmp_path / "r.h5", "-k", "60").stdout + cli("report", tmp_path / "r.h5", "-k", "60").stdout
    assert "\x1b" not in printed and "\\x1b" in printed  # shown escaped, never obeyed
    assert "[/]#" in printed and "[link=http://evil.example]" in printed and "[bold]yes" in printed
    assert ":smile:" in printed and "\U0001f604" not in printed
    cli("export", tmp_path / "r.h5", "--suspects", tmp_path / "s.csv")
    cli("correct", tmp_path / "r.h5", "-c", "knn", "-k", "30", "--export", tmp_path / "review.csv")
    for name in ("s.csv", "review.csv"):
        with open(tmp_path / name, newline="", encoding="utf-8") as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        assert not [c for c in cells if c.startswith(("=", "+", "@")) or (c.startswith("-") and not c[1:2].isdigit())]
        assert "'=HYPERLINK(\"http://x\")#0" in cells or any(c.startswith("'=HYPERLINK") for c in cells)
    # what a reviewer fills in comes back as the same ids and classes
    with open(tmp_path / "review.csv", newline="", encoding="utf-8") as handle:
        review = list(csv.DictReader(handle))
    for row in review:
        row["reviewed_label"] = row["given_label"]
    with open(tmp_path / "review.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(review[0]))
        writer.writeheader()
        writer.writerows(review)
    result = cli.json("import-review", tmp_path / "review.csv", "-l", tmp_path / "l.h5", "-o", tmp_path / "rev.h5")
    assert result["reviewed"] == len(review) and result["changed"] == 0


@pytest.mark.parametrize("content, message", [
    ("id,reviewed_label\ndigits/0003,3\ndigits/0003,7\ndigits/0003,remove\n",
     "line 3: id 'digits/0003' was already reviewed on line 2"),
    ('id,reviewed_label\ndigits/0003,"3\ndigits/0004,4\n', "is not a readable CSV file"),
    ("id,reviewed_label\ndigits/0003,3,extra\n", "line 2 has more cells than the header"),
    ("id,reviewed_label,note\ndigits/0003,3\n", "line 2 has fewer cells than the header"),
], ids=["an id three times", "an unterminated quote", "a row too long", "a row too short"])
def test_a_review_csv_that_cannot_be_applied_as_a_whole_changes_nothing(cli, tmp_path, content, message):
    cli("synth", "-o", tmp_path / "l.h5")
    (tmp_path / "review.csv").write_text(content)
    line = cli.error("import-review", tmp_path / "review.csv", "-l", tmp_path / "l.h5", "-o", tmp_path / "out.h5")
    assert message in line, line
    assert not (tmp_path / "out.h5").exists()


# Where a small tmpfs cannot be mounted (no root), the commands run with this sitecustomize: every file
# Python opens for writing under the disk's folder shares the bytes left, past which a write raises
# the same OSError(ENOSPC) a full disk does.
FULL_DISK_SITECUSTOMIZE = """
import builtins, errno, io, os
_disk = os.environ.get("NOISYCTL_TEST_DISK")
_left = [int(os.environ.get("NOISYCTL_TEST_DISK_LEFT", "0"))]
_open = io.open


class _Limited:
    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        size = len(data.encode()) if isinstance(data, str) else memoryview(data).nbytes
        if size > _left[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        _left[0] -= size
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def _open_limited(file, mode="r", *args, **kwargs):
    handle = _open(file, mode, *args, **kwargs)
    if _disk and not isinstance(file, int) and set(mode) & set("wax+") \\
            and os.path.realpath(os.fspath(file)).startswith(_disk):
        return _Limited(handle)
    return handle


io.open = builtins.open = _open_limited
"""


class SmallDisk:
    """A folder that runs out of space: a real 4 MiB tmpfs where one can be mounted (root, as CI here
    has), else the same ENOSPC from the sitecustomize above."""

    def __init__(self, folder: Path, mounted: bool) -> None:
        self.path, self.mounted, self.env = folder, mounted, {}

    def fill(self, leave: int) -> None:
        """Leave ``leave`` bytes free for the next command."""
        (self.path / "filler").unlink(missing_ok=True)
        if self.mounted:
            free = os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize
            (self.path / "filler").write_bytes(b"\0" * max(0, free - leave))
            return
        inject = self.path.parent / "inject"
        inject.mkdir(exist_ok=True)
        (inject / "sitecustomize.py").write_text(FULL_DISK_SITECUSTOMIZE)
        self.env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")])),
                    "NOISYCTL_TEST_DISK": str(self.path.resolve()), "NOISYCTL_TEST_DISK_LEFT": str(leave)}


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = not os.environ.get("NOISYCTL_TEST_NO_MOUNT") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode == 0
    try:
        yield SmallDisk(disk, mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_the_previous_file_whole(cli, digits_run, small_disk):
    """A full disk (in a subprocess: the command leaves without Python's teardown, where libhdf5
    crashed with exit 139 after a failed write)."""
    import shutil

    def noisyctl(*args):
        env = {**os.environ, **small_disk.env}
        done = subprocess.run([sys.executable, "-m", "noisyctl", *map(str, args)], capture_output=True, text=True,
                              env=env, timeout=300)
        return done.returncode, done.stderr.strip().splitlines()

    disk = small_disk.path
    shutil.copy(digits_run, disk / "run.h5")
    cli("detect", disk / "run.h5", "-d", "loss", "-k", "0")
    cli("correct", disk / "run.h5", "-c", "knn", "--apply", "-o", disk / "fixed.h5")
    cli("synth", "-o", disk.parent / "l.h5")
    before = _digest(disk / "fixed.h5")
    for leave, argv, written in [
        (8 * 1024, ["correct", disk / "run.h5", "-c", "consensus", "--apply", "-o", disk / "fixed.h5"],
         "fixed.h5; it is unchanged"),
        (200 * 1024, ["train", "-l", disk.parent / "l.h5", "-e", "3", "-q", "-o", disk / "r.h5"],
         "nothing was written"),
        (20 * 1024, ["train", "-l", disk.parent / "l.h5", "-e", "3", "-q", "-o", disk / "r.h5"],
         "nothing was written"),
    ]:
        shutil.rmtree(disk / "r.h5.ckpt", ignore_errors=True)
        small_disk.fill(leave)
        code, lines = noisyctl(*argv)
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error: no space left on the device"), lines
        assert written in lines[0], lines
        assert _digest(disk / "fixed.h5") == before and not (disk / "r.h5").exists()
        assert not list(disk.glob(".*.tmp"))


FUZZ_DTYPES = ["int8", "int32", "int64", "uint8", "float16", "float32", "float64", "bool", "S5", "str", "complex64"]


def _fuzz_value(dtype: str, shape: tuple, rng):
    import h5py

    if dtype == "str":
        return np.array([f"s{i}" for i in range(int(np.prod(shape)))], dtype=h5py.string_dtype()).reshape(shape)
    if dtype == "S5":
        return rng.integers(97, 123, size=(*shape, 5), dtype=np.uint8).view("S5").reshape(shape)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith(("int", "uint")):
        return rng.integers(-3 if dtype.startswith("int") else 0, 12, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * 3).astype(dtype)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 40)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_run_files_fuzzed_over_the_schema_work_or_are_refused_in_one_line(cli, digits_run, tmp_path, data):
    """Any schema field replaced by an array of a random dtype and shape, or a root attribute by a
    random value: detect and report either work or say what is wrong in one line, never an internal
    error or a hang (each case runs in a few seconds)."""
    import shutil

    import h5py

    from noisyctl.store import ATTRIBUTES, FIELDS

    path = tmp_path / f"fuzz{data.draw(st.integers(0, 10**9))}.h5"
    shutil.copy(digits_run, path)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n, e = 1797, 6
    with h5py.File(path, "r+") as h5:
        for _ in range(data.draw(st.integers(1, 3))):
            if data.draw(st.booleans()):
                field = data.draw(st.sampled_from([f.path.replace("<detector>", "loss") for f in FIELDS]))
                shape = data.draw(st.sampled_from([(n,), (n, e), (n + 1,), (e,), (), (n, 10), (3, 2), (n, e, 2), (0,)]))
                dtype = data.draw(st.sampled_from(FUZZ_DTYPES))
                if field in h5:
                    del h5[field]
                h5[field] = _fuzz_value(dtype, shape, rng)
            else:
                name = data.draw(st.sampled_from([a.name for a in ATTRIBUTES]))
                value = data.draw(st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                                            st.text(HDF5_TEXT, max_size=20),
                                            st.just('{"name": "digits"}'), st.just("[1, 2]"), st.just("null")))
                h5.attrs[name] = value
    for command in (["detect", path, "-d", "loss", "--no-save", "-k", "3"], ["report", path, "-k", "3"]):
        result = cli(*command, ok=False)
        assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
        if result.exit_code:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
            assert "internal error" not in lines[0], lines[0]


def test_ids_a_spreadsheet_would_rewrite_as_numbers_come_back_from_a_review_unchanged(cli, tmp_path):
    """A text id of 12 hex digits may be all digits (one in 280 texts); a spreadsheet reads such a
    cell, or one with leading zeros, as a number and saves 2.04982E+11 or 123. Written with an
    apostrophe, they come back as the ids; short class names (1, 10) are written as they are. An id
    that itself begins with an apostrophe gets a second one, so the one removed is the guard."""
    import csv
    import json

    ids = ["204981736512", "000123", "12e3", "'0042"] + [f"t{i}" for i in range(36)]
    rows = [{"id": sample_id, "text": f"sample {i} " + ("good" if i % 2 else "bad"), "label": str(1 + i % 2)}
            for i, sample_id in enumerate(ids)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    cli("synth", "-d", "text", "--data-root", tmp_path / "d.jsonl", "-D", "id_column=id", "-o", tmp_path / "l.h5")
    cli("train", "-l", tmp_path / "l.h5", "-e", "2", "--folds", "0", "-q", "-o", tmp_path / "r.h5")
    cli("detect", tmp_path / "r.h5", "-d", "loss")
    cli("correct", tmp_path / "r.h5", "--top", "40", "--export", tmp_path / "review.csv")
    with open(tmp_path / "review.csv", newline="", encoding="utf-8") as handle:
        review = list(csv.DictReader(handle))
    written = {row["id"] for row in review}
    assert {"'204981736512", "'000123", "'12e3", "''0042"} <= written and {row["given_label"] for row in review} == {"1", "2"}
    for row in review:
        row["reviewed_label"] = "2"
    with open(tmp_path / "review.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(review[0]))
        writer.writeheader()
        writer.writerows(review)
    cli("import-review", tmp_path / "review.csv", "-l", tmp_path / "l.h5", "-o", tmp_path / "rev.h5")
    reviewed = read_labels(tmp_path / "rev.h5")
    assert reviewed.reviewed.all() and set(reviewed.given_labels.tolist()) == {reviewed.class_names.index("2")}

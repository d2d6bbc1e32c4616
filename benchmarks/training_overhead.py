"""What recording dynamics costs: a plain hand-written PyTorch loop with and without a
noisyctl.Recorder, and noisyctl's own training with recording on and off, on the same model and
data, interleaved in one run; then the Recorder's peak memory at 100k and 1M samples.

Recording from the training forward pass (loss and margin per presentation) should cost at most
5% wall time over training without it. The eval-mode recording pass (an extra forward pass over
the training set) is reported on its own, as a share of an epoch. Memory must not grow with the
epochs: per epoch the Recorder holds [N] vectors, never [N x E].
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from noisyctl.api import DatasetData, TensorSampleSet
from noisyctl.data import load_dataset
from noisyctl.synth import synthesize
from noisyctl.training import Recorder, Trainer, TrainOptions, build_model


def enlarged(data: DatasetData, times: int) -> DatasetData:
    """The dataset repeated ``times`` over (with distinct ids), for epochs long enough to time."""
    train = data.train
    inputs = torch.cat([train.inputs] * times)
    ids = [f"{i}/{sample_id}" for i in range(times) for sample_id in train.ids]
    return DatasetData(train=TensorSampleSet(ids, np.tile(train.labels, times), inputs),
                       class_names=data.class_names, input_shape=data.input_shape)


def plain_epoch(model, optimizer, data: DatasetData, labels: torch.Tensor, batch_size: int, device,
                recorder: Recorder | None = None) -> None:
    """The loop a user would write: shuffle, forward, mean loss, backward, step; with a Recorder, the
    one line more (and end_epoch) that records the dynamics."""
    model.train()
    loader = torch.utils.data.DataLoader(data.train, batch_size=batch_size, shuffle=True)
    for inputs, index in loader:
        inputs, targets = inputs.to(device), labels[index].to(device)
        logits = model(inputs)
        if recorder is not None:
            recorder.update(index, logits, targets)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if recorder is not None:
        recorder.end_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()


def _memory_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident since the last reset) of this process."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def peak_memory(samples: int, probabilities: bool, epochs: int = 8, classes: int = 10, batch: int = 1024) -> None:
    """Peak resident memory of a Recorder over ``epochs`` epochs of ``samples`` (random logits, an
    eval pass each epoch), after the first, the middle and the last epoch: growth with the epochs
    would show. Linux only (/proc)."""
    import tempfile

    labels = np.random.default_rng(0).integers(0, classes, samples)
    logits = torch.randn(batch, classes)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM: the peak counts from here
    before = _memory_mib("VmRSS")
    peaks = []
    with tempfile.TemporaryDirectory() as folder:
        recorder = Recorder(Path(folder) / "run.h5", labels, epochs=epochs, record_probs=probabilities)
        for _ in range(epochs):
            for start in range(0, samples, batch):
                index = torch.arange(start, min(start + batch, samples))
                recorder.update(index, logits[:len(index)])
                recorder.record_eval(index, logits[:len(index)])
            recorder.end_epoch()
            peaks.append(_memory_mib("VmHWM"))
        recorder.close()
        closed = _memory_mib("VmHWM")
    print(f"{samples},{before:.0f},{peaks[0]:.0f},{peaks[epochs // 2 - 1]:.0f},{peaks[-1]:.0f},{closed:.0f}")


def memory_table(console: Console) -> None:
    """peak_memory at 100k and 1M samples, each in a fresh process."""
    table = Table(title="Recorder peak memory (MiB resident above the process's start; 8 epochs, 10 classes, an "
                        "eval pass each epoch)")
    for column in ("samples", "late-epoch probabilities", "epoch 1", "epoch 4", "epoch 8",
                   "close (run file written)", "per sample at epoch 8"):
        table.add_column(column, justify="right")
    for samples in (100_000, 1_000_000):
        for probabilities in (False, True):
            done = subprocess.run([sys.executable, __file__, "--memory", str(samples),
                                   *(["--memory-probs"] if probabilities else [])],
                                  capture_output=True, text=True, check=True)
            n, before, first, middle, last, closed = map(float, done.stdout.strip().splitlines()[-1].split(","))
            table.add_row(f"{int(n):,}", "on" if probabilities else "off", f"{first - before:,.0f}",
                          f"{middle - before:,.0f}", f"{last - before:,.0f}", f"{closed - before:,.0f}",
                          f"{(last - before) * 2**20 / n:,.0f} B")
    console.print(table)
    console.print("Flat from epoch 1 to 8 means nothing grows with the epochs; with probabilities on, the last "
                  "quarter of the epochs adds the [N x C] probabilities (float32 per epoch, float64 sum).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--times", type=int, default=8, help="repeat digits this many times (default 8: 14,376)")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per variant")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--memory", type=int, default=0, help=argparse.SUPPRESS)  # one peak_memory measurement
    parser.add_argument("--memory-probs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-only", action="store_true", help="only the memory table")
    args = parser.parse_args()
    if args.memory:
        return peak_memory(args.memory, args.memory_probs)
    if args.memory_only:
        return memory_table(Console(width=140))

    spec = {"name": "digits", "root": None, "options": {}}
    data = enlarged(load_dataset(spec), args.times)
    labels = synthesize(spec, "uniform", 0.2, seed=0)
    labels.ids = list(data.train.ids)
    labels.given_labels = np.tile(labels.given_labels, args.times)
    labels.true_labels = np.tile(labels.true_labels, args.times)
    options = TrainOptions(model=args.model, batch_size=args.batch_size, device=args.device,
                           epochs=args.epochs + 1)
    trainer = Trainer(labels, data, options)
    device = trainer.device
    plain_model, _ = build_model(options, data)
    plain_model.to(device)
    plain_optimizer = torch.optim.SGD(plain_model.parameters(), lr=options.lr, momentum=0.9, nesterov=True,
                                      weight_decay=options.weight_decay)
    given = torch.as_tensor(labels.given_labels)
    folder = Path(tempfile.mkdtemp())
    # Each Recorder sees one more epoch than is timed: the warm-up.
    plain_recorder = Recorder(folder / "plain.h5", labels.given_labels, epochs=args.epochs + 1)
    trainer_recorder = trainer.recorder(folder / "trainer.h5", resume=None, restart=True, fingerprint="", info={})

    def timed(run) -> float:
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def trainer_epoch(epoch: int) -> None:
        trainer.train_epoch(epoch, trainer_recorder)
        trainer_recorder.end_epoch()

    # One warm-up epoch each, then interleave so drift in machine load hits every variant alike.
    variants = {
        "plain PyTorch loop": lambda e: plain_epoch(plain_model, plain_optimizer, data, given, args.batch_size, device),
        "plain loop + Recorder": lambda e: plain_epoch(plain_model, plain_optimizer, data, given, args.batch_size,
                                                       device, plain_recorder),
        "noisyctl train, recording off": lambda e: trainer.train_epoch(e),
        "noisyctl train, recording on": trainer_epoch,
        "eval recording pass": lambda e: trainer._predict(data.train),
    }
    for run in variants.values():
        run(0)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for epoch in range(1, args.epochs + 1):
        for name, run in variants.items():
            times[name].append(timed(lambda: run(epoch)))
    median = {name: statistics.median(values) for name, values in times.items()}
    plain_recorder.abandon()  # nothing to write
    trainer_recorder.abandon()
    shutil.rmtree(folder, ignore_errors=True)

    table = Table(title=f"{args.model} on digits x{args.times} ({len(data.train):,} samples), batch "
                        f"{args.batch_size}, {device}, median of {args.epochs} epochs")
    table.add_column("variant")
    table.add_column("seconds / epoch", justify="right")
    table.add_column("samples / s", justify="right")
    for name, seconds in median.items():
        table.add_row(name, f"{seconds:.3f}", f"{len(data.train) / seconds:,.0f}")
    console = Console(width=120)
    console.print(table)
    console.print(f"plain loop + Recorder / plain loop:      {median['plain loop + Recorder'] / median['plain PyTorch loop']:.3f}"
                  "  (target <= 1.05)")
    on, off = median["noisyctl train, recording on"], median["noisyctl train, recording off"]
    console.print(f"train recording on / recording off:      {on / off:.3f}  (target <= 1.05)")
    console.print(f"train recording off / plain loop:        {off / median['plain PyTorch loop']:.3f}")
    console.print(f"eval recording pass / training epoch:    {median['eval recording pass'] / on:.3f}")
    memory_table(Console(width=140))


if __name__ == "__main__":
    main()

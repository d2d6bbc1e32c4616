"""What recording dynamics costs: noisyctl training with recording on, with it off, and a plain
hand-written PyTorch loop, on the same model and data, interleaved in one run.

Recording from the training forward pass (loss and margin per presentation) should cost at most
5% wall time over training without it. The eval-mode recording pass (an extra forward pass over
the training set) is reported on its own, as a share of an epoch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from noisyctl.api import DatasetData, TensorSampleSet
from noisyctl.data import load_dataset
from noisyctl.synth import synthesize
from noisyctl.training import Trainer, TrainOptions, build_model


def enlarged(data: DatasetData, times: int) -> DatasetData:
    """The dataset repeated ``times`` over (with distinct ids), for epochs long enough to time."""
    train = data.train
    inputs = torch.cat([train.inputs] * times)
    ids = [f"{i}/{sample_id}" for i in range(times) for sample_id in train.ids]
    return DatasetData(train=TensorSampleSet(ids, np.tile(train.labels, times), inputs),
                       class_names=data.class_names, input_shape=data.input_shape)


def plain_epoch(model, optimizer, data: DatasetData, labels: torch.Tensor, batch_size: int, device) -> None:
    """The loop a user would write: shuffle, forward, mean loss, backward, step."""
    model.train()
    loader = torch.utils.data.DataLoader(data.train, batch_size=batch_size, shuffle=True)
    for inputs, index in loader:
        inputs, targets = inputs.to(device), labels[index].to(device)
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--times", type=int, default=8, help="repeat digits this many times (default 8: 14,376)")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per variant")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    spec = {"name": "digits", "root": None, "options": {}}
    data = enlarged(load_dataset(spec), args.times)
    labels = synthesize(spec, "uniform", 0.2, seed=0)
    labels.ids = list(data.train.ids)
    labels.given_labels = np.tile(labels.given_labels, args.times)
    labels.true_labels = np.tile(labels.true_labels, args.times)
    options = TrainOptions(model=args.model, batch_size=args.batch_size, device=args.device, epochs=args.epochs)
    trainer = Trainer(labels, data, options)
    device = trainer.device
    plain_model, _ = build_model(options, data)
    plain_model.to(device)
    plain_optimizer = torch.optim.SGD(plain_model.parameters(), lr=options.lr, momentum=0.9, nesterov=True,
                                      weight_decay=options.weight_decay)
    given = torch.as_tensor(labels.given_labels)

    def timed(run) -> float:
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    # One warm-up epoch each, then interleave so drift in machine load hits every variant alike.
    variants = {
        "plain PyTorch loop": lambda e: plain_epoch(plain_model, plain_optimizer, data, given, args.batch_size, device),
        "noisyctl, recording off": lambda e: trainer.train_epoch(e),
        "noisyctl, recording on": lambda e: trainer.train_epoch(e, record=True),
        "eval recording pass": lambda e: trainer.record_eval(e),
    }
    for run in variants.values():
        run(0)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for epoch in range(1, args.epochs + 1):
        for name, run in variants.items():
            times[name].append(timed(lambda: run(epoch)))
    median = {name: statistics.median(values) for name, values in times.items()}

    table = Table(title=f"{args.model} on digits x{args.times} ({len(data.train):,} samples), batch "
                        f"{args.batch_size}, {device}, median of {args.epochs} epochs")
    table.add_column("variant")
    table.add_column("seconds / epoch", justify="right")
    table.add_column("samples / s", justify="right")
    for name, seconds in median.items():
        table.add_row(name, f"{seconds:.3f}", f"{len(data.train) / seconds:,.0f}")
    console = Console(width=120)
    console.print(table)
    on, off, plain = (median["noisyctl, recording on"], median["noisyctl, recording off"],
                      median["plain PyTorch loop"])
    console.print(f"recording on / recording off: {on / off:.3f}  (target <= 1.05)")
    console.print(f"recording on / plain loop:    {on / plain:.3f}")
    console.print(f"recording off / plain loop:   {off / plain:.3f}")
    console.print(f"eval recording pass / training epoch: {median['eval recording pass'] / on:.3f}")


if __name__ == "__main__":
    main()

"""A plain DDP training loop that records with noisyctl.Recorder (run by test_recorder under torchrun,
2 CPU processes with gloo)."""

import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import noisyctl

dist.init_process_group("gloo")
digits = load_digits()
inputs = torch.tensor(digits.images / 16.0, dtype=torch.float32).flatten(1)
labels = digits.target.copy()
labels[::10] = (labels[::10] + 1) % 10
dataset = TensorDataset(inputs, torch.as_tensor(labels), torch.arange(len(labels)))
torch.manual_seed(0)
model = DistributedDataParallel(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
sampler = DistributedSampler(dataset, shuffle=True, seed=0)
eval_sampler = DistributedSampler(dataset, shuffle=False)
epochs = 3
with noisyctl.Recorder(sys.argv[1], labels, epochs=epochs, true_labels=digits.target) as recorder:
    for epoch in range(recorder.epochs_done, epochs):
        sampler.set_epoch(epoch)
        for x, y, index in DataLoader(dataset, batch_size=100, sampler=sampler):
            logits = model(x)
            recorder.update(index, logits, y)
            optimizer.zero_grad()
            F.cross_entropy(logits, y).backward()
            optimizer.step()
        recorder.evaluate(model.module, DataLoader(dataset, batch_size=500, sampler=eval_sampler))
        recorder.end_epoch(state={"model": model.module.state_dict()})
dist.destroy_process_group()
# All work is done and the run file is written. In about 1 run in 10 here, gloo's threads then abort
# in C++ teardown after the last Python line ("terminate called without an active exception", also
# before noisyctl changed anything here): leave without that teardown.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)

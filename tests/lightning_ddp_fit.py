"""A Lightning fit under the DDP strategy on 2 CPU processes, recording with noisyctl's callback (run
by test_integrations; Lightning starts the second process by running this script again)."""

import sys

import lightning
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from noisyctl.integrations.lightning import RecordDynamics


class Module(lightning.LightningModule):
    """A classifier under the callback's contract: training_step returns the loss and the logits."""

    def __init__(self, net=None, momentum: float = 0.0):
        super().__init__()
        self.net = net or torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        self.momentum = momentum

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        logits = self(x)
        return {"loss": F.cross_entropy(logits, y), "logits": logits}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=self.momentum)


if __name__ == "__main__":
    digits = load_digits()
    labels = digits.target.copy()
    labels[::10] = (labels[::10] + 1) % 10
    data = TensorDataset(torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.as_tensor(labels),
                         torch.arange(len(labels)))
    torch.manual_seed(0)
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                callbacks=[RecordDynamics(sys.argv[1], labels, true_labels=digits.target)])
    trainer.fit(Module(), DataLoader(data, batch_size=100, shuffle=True))

"""Built-in datasets, read from local disk or generated, never downloaded (digits ships with scikit-learn)."""

from noisyctl.api import hookimpl
from . import arrays, cifar, digits, generated, imagefolder, mnist, table, text


@hookimpl
def register_datasets(register):
    register("digits", digits.load_digits)
    register("imagefolder", imagefolder.load_imagefolder)
    register("cifar10", cifar.load_cifar10)
    register("cifar100", cifar.load_cifar100)
    register("mnist", mnist.load_mnist)
    register("fashion-mnist", mnist.load_fashion_mnist)
    register("npz", arrays.load_npz)
    register("hdf5", arrays.load_hdf5)
    register("shapes", generated.load_shapes)
    register("blobs", generated.load_blobs)
    register("table", table.load_table)
    register("text", text.load_text)
    register("tickets", text.load_tickets)

import torch
import pytest

from pixloom.data.base import ImageDataset


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def tiny_binary_dataset(n=64, size=6, seed=0, classes=0) -> ImageDataset:
    """Small binary images with structure (a bar whose row depends on the class) plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, max(classes, 3), (n,), generator=g)
    images = (torch.rand(n, 1, size, size, generator=g) < 0.1).to(torch.uint8)
    for k in range(n):
        images[k, 0, int(labels[k]) % size] = 1
    return ImageDataset(images, labels if classes else None, levels=2, num_classes=classes, name="tiny")


@pytest.fixture
def tiny_data():
    return tiny_binary_dataset()

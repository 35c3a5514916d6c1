import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def ring8():
    from playground.data import load_data

    return load_data("ring8", n=2000, seed=0)


@pytest.fixture(scope="session")
def digits():
    from playground.data import load_data

    return load_data("digits", image_size=28)

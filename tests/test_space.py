import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pareco.space import ChannelGroup, WidthSpace


def make_space(sizes=(16, 10, 64, 7), round_to=1, min_multiplier=0.42):
    groups = tuple(ChannelGroup(f"g{i}", s, (f"conv{i}",)) for i, s in enumerate(sizes))
    fixed = (ChannelGroup("input", 3, (), (), False),)
    return WidthSpace(groups, fixed, min_multiplier, round_to)


def test_channels_floor_and_clamp():
    space = make_space()
    ch = space.channels(torch.tensor([1.0, 0.7, 0.5, 0.42], dtype=torch.float64))
    assert ch.tolist() == [16, 7, 32, 2]  # 0.7 * 10 is 7, not 6: guarded against 6.9999
    assert space.channels(space.largest()).tolist() == [16, 10, 64, 7]


def test_channels_batched_and_round_to():
    space = make_space(round_to=4)
    alpha = torch.tensor([[0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    ch = space.channels(alpha)
    assert ch.shape == (2, 4)
    assert ch[0].tolist() == [8, 4, 32, 4]  # 3.5 → at least round_to
    assert ch[1].tolist() == [16, 10, 64, 7]  # full even when not a multiple of 4


@given(st.lists(st.floats(0.42, 1.0), min_size=4, max_size=4), st.integers(0, 3))
def test_channels_monotone(values, i):
    space = make_space()
    a = torch.tensor(values, dtype=torch.float64)
    b = a.clone()
    b[i] = 1.0
    assert (space.channels(b) >= space.channels(a)).all()
    assert (space.channels(a) >= 1).all()


def test_json_round_trip_and_describe():
    space = make_space(round_to=2)
    back = WidthSpace.from_json(space.to_json())
    assert back == space
    text = space.describe()
    assert "4 searchable groups" in text and "conv2" in text and "input" in text


def test_sample_uniform_smallest():
    space = make_space()
    s = space.sample(1000, torch.Generator().manual_seed(0))
    assert s.shape == (1000, 4) and s.min() >= 0.42 and s.max() <= 1.0
    assert torch.equal(space.uniform(0.5), torch.full((4,), 0.5, dtype=torch.float64))
    assert torch.equal(space.smallest(), torch.full((4,), 0.42, dtype=torch.float64))
    with pytest.raises(ValueError):
        space.uniform(0.2)


def test_bad_configuration():
    with pytest.raises(ValueError, match="min_multiplier"):
        make_space(min_multiplier=0.0)
    with pytest.raises(ValueError, match="round_to"):
        make_space(round_to=0)

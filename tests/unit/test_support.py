"""The tests' own comparison of ranked lists: lax only where floating point may differ."""
import pytest

from tests.support import assert_same_rankings

LISTS = {1: [(10, 0.9), (11, 0.5), (12, 0.5000001), (13, 0.2)]}


def test_near_ties_may_swap_and_the_last_place_may_hold_either_of_two_near_equal_items():
    assert_same_rankings({1: [(10, 0.9), (12, 0.5000001), (11, 0.5), (13, 0.2)]}, LISTS)
    assert_same_rankings({1: [(7, 0.3), (8, 0.2000001)]}, {1: [(7, 0.3), (9, 0.2)]})


@pytest.mark.parametrize("got", [
    {1: [(11, 0.9), (10, 0.5), (12, 0.5000001), (13, 0.2)]},  # a swap between different scores
    {1: [(10, 0.9), (14, 0.5), (12, 0.5000001), (13, 0.2)]},  # another item that is not at the end
    {1: [(10, 0.9), (11, 0.5), (12, 0.5000001)]},  # shorter
    {1: [(10, 0.9), (11, 0.5), (12, 0.5000001), (13, 0.25)]},  # another score
    {2: LISTS[1]},  # another query
])
def test_anything_but_near_ties_differing_fails(got):
    with pytest.raises(AssertionError):
        assert_same_rankings(got, LISTS)

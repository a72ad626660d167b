"""Sortable ids: time-ordered, and strictly increasing in one process when asked to be."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from stackyard.jobs.ids import MonotonicIds, sortable_id

MS = st.integers(min_value=0, max_value=2**48 - 1)


@given(st.lists(MS, min_size=2, max_size=50))
def test_monotonic_ids_increase_whatever_the_clock_says(stamps: list[int]):
    ids = MonotonicIds()
    made = [ids.next(ms) for ms in stamps]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(len(i) == 26 for i in made)


def test_many_ids_in_one_millisecond_keep_their_order():
    ids = MonotonicIds()
    made = [ids.next(1_764_000_000_000) for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == 1000
    plain = [sortable_id(1_764_000_000_000) for _ in range(1000)]
    assert plain != sorted(plain), "without MonotonicIds one millisecond's ids come in random order"


@given(MS, MS)
def test_a_later_millisecond_sorts_later(a: int, b: int):
    if a < b:
        assert sortable_id(a) < sortable_id(b)

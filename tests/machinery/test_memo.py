"""The memo's keys: a read set's key is its fields' ids in the state table, as bytes while they
fit a byte and as a tuple past that; either way the memo answers as the profile does."""

from model.explorer import explore
from model.explorer.table import StateTable
from model.profiles import get
from tests.stepper_check import agreeing_stepper


def test_the_memo_answers_alike_past_256_values_of_a_field():
    toy = get("toy")
    config = toy.adjust(toy.default_config())
    states = list(explore(toy, config, symmetry=False).states)
    crowded = StateTable()
    s0 = states[0]
    for n in range(300):  # the first field's ids of the explored states are then 300 and more
        crowded.ids(s0._replace(**{s0._fields[0]: ("filler", n)}))
    assert not crowded.small
    steppers = [agreeing_stepper(toy, config, states, table) for table in (None, crowded)]
    assert steppers[0].table.small
    assert {type(k) for bundles in steppers[1].bundles for k in bundles} == {bytes, tuple}
    assert (steppers[0].hits, steppers[0].misses) == (steppers[1].hits, steppers[1].misses)
    assert steppers[0].hits > steppers[0].misses

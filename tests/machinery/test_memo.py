"""The memo's keys: a read set's key is its fields' ids in the state table, as bytes while they
fit a byte and as a tuple past that; either way the memo answers as the profile does."""

from model.explorer import Stepper, explore
from model.explorer.table import StateTable
from model.profiles import get


def test_the_memo_answers_alike_past_256_values_of_a_field():
    toy = get("toy")
    config = toy.adjust(toy.default_config())
    states = list(explore(toy, config, symmetry=False).states)
    cs = toy.calls(config)
    crowded = StateTable()
    s0 = states[0]
    for n in range(300):  # the first field's ids of the explored states are then 300 and more
        crowded.ids(s0._replace(**{s0._fields[0]: ("filler", n)}))
    assert not crowded.small
    steppers = Stepper(toy, config, cs), Stepper(toy, config, cs, crowded)
    for stepper in steppers:
        for state in states:
            stepper.begin(state)
            for ci, call in enumerate(cs):
                assert stepper(ci) == toy.step(config, state, call), (call, state)
    assert steppers[0].table.small
    assert {type(k) for bundles in steppers[1].bundles for k in bundles} == {bytes, tuple}
    assert (steppers[0].hits, steppers[0].misses) == (steppers[1].hits, steppers[1].misses)
    assert steppers[0].hits > steppers[0].misses

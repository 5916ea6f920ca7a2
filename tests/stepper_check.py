"""What the memo tests share: a stepper held against `Profile.step` call by call."""

from model.explorer import Stepper


def agreeing_stepper(profile, config, states, table=None) -> Stepper:
    """A stepper that has answered every call on every state as `profile.step` does (asserted),
    for the caller to look at its hits and misses."""
    cs = profile.calls(config)
    stepper = Stepper(profile, config, cs, table)
    for state in states:
        stepper.begin(state)
        for ci, call in enumerate(cs):
            assert stepper(ci) == profile.step(config, state, call), (call, state)
    return stepper

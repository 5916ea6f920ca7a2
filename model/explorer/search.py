"""Bounded breadth-first exploration of the reachable graph of one configuration.

From the initial state, every call of `profile.calls(config)` is tried in every reachable state, in a
fixed order (so two runs give the same graph, the same node ids, the same traces). The graph's
nodes are integer ids (the `State` of node i is `states[i]`) and its arcs carry the indexes (into
`Exploration.calls`) of the successful calls that lead from one state to the other, kept in flat
arrays (`Arcs`) while the search runs and turned into a networkx DiGraph only when a user asks
for `Exploration.graph`; failing calls are self-loops the graph omits, but every one of them is
run through the step properties (check-then-commit) and its errno checked.

Checks, none skipped (a property found violated is reported once, with its first, shortest
trace, and not looked for again):
- every `always` state property in every distinct state (once per state: a state is a value);
- every `always` step property on every tried edge, failing calls included;
- every `sometimes` property until it is witnessed;
- every failing call returns a negative errno the kernel knows (`errno_known`), and no call
  crashes the model's code (`call_completes`);
- on a complete exploration, the profile's graph properties (`model/explorer/graph.py`; for
  pKVM: nothing stranded, no dead end).

A violation is reported once per property, with the shortest trace from the initial state (BFS
parent pointers: the first state of the BFS order that violates a property is at minimal depth).

Speed comes from three things, each exact: steps and state properties are memoised on the
fields of the state they read (`Stepper`, `StateChecker`; a step also on the elements it
read, when the profile's view keeps its writes one by one), and a state's calls are answered
together, one lookup per read set (`Stepper.sweep`), the failures that change nothing and that
no property left can see being counted, not looked at; states the profile's symmetry
deems interchangeable are explored once per orbit (checked as the search goes); states are
stored packed (`StateTable`: a short bytes key of per-field value ids) and the arcs in flat
integer arrays (`Arcs`).

The model never prints and neither does this module: progress goes to an optional callback, the
results come back as an `Exploration` (with `summary()` as plain JSON-able data).
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_right
from typing import Callable, Iterable

from model.explorer.checkpoint import Snapshot
from model.explorer.graph import graph_properties
from model.explorer.memo import Reads, StateChecker, Stepper
from model.explorer.results import GRAPH_CHECKS, Arcs, Exploration, Violation
from model.explorer.table import Keys, StateTable
from model.transitions import Outcome
from model.explorer.traces import Asymmetric, blame, errno_known, trace
from model.properties import Property


def explore(profile, config, *, max_depth: int | None = None, max_states: int | None = None,
            symmetry: bool = True, properties: Iterable[Property] | None = None,
            on_edge: Callable | None = None, progress: Callable | None = None,
            graph_checks: bool = True, memo: bool = True,
            stop_on_violation: bool = False, stop_when_witnessed: bool = False,
            symmetry_check: int = 200, stops: tuple = (), checkpoint: Callable | None = None,
            checkpoint_every: float = 600.0, resume: Snapshot | None = None) -> Exploration:
    """Breadth-first search of the reachable graph of `config` under the profile's protocol.

    Symmetry reduction (`profile.symmetry`) is sound only for a protocol that treats
    interchangeable pages, VMs and gfns alike, which a mutant need not do (a range checked by
    its first page only). So a reduced search tests it as it goes: for the first `symmetry_check` states it
    expands, every generator of the group must map the state to one with the same successor
    orbits and the same step-property failures; and every trace must replay on concrete states.
    If either fails, the search is run again without symmetry, and `symmetry["refused"]` says
    why. (`on_edge` then also saw the edges of the abandoned run.)

    `on_edge(src_state, call, outcome)` is called for every tried call, failing ones included
    (conformance hooks in here). `progress(states, edges, depth, frontier)` is called now and
    then. `properties` defaults to every property of the profile. `memo=False` calls
    `profile.step` itself for every call instead of the memoised `Stepper`.
    `stop_on_violation` ends the search with the BFS layer in which the first violation shows
    (every violation of that minimal length is still found, each with its shortest trace);
    `stop_when_witnessed` with the layer in which the last `sometimes` property is witnessed
    (a machine searched only for witnesses: `stopped` is "witnessed").
    An exception of a type in `stops` (say Ctrl-C, or a deadline raised from `progress`)
    ends the search early but keeps what it found: the result is incomplete, `stopped` is
    "interrupted" and `interruption` the exception, and every violation found so far comes with
    its trace.

    `checkpoint(snapshot)` is given the search's progress (`model/explorer/checkpoint.py`)
    between two nodes every `checkpoint_every` seconds, and when a stop in `stops` ends the
    search (rolled back to the last node expanded whole); `resume`, such a snapshot, goes on
    from there, with the same nodes, violations, witnesses and counts as one search.
    """
    kwargs = dict(max_depth=max_depth, max_states=max_states,
                  properties=properties, on_edge=on_edge, progress=progress,
                  graph_checks=graph_checks, memo=memo, stop_on_violation=stop_on_violation,
                  stop_when_witnessed=stop_when_witnessed,
                  stops=stops, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    if symmetry:
        try:
            return _explore(profile, config, symmetry=True, symmetry_check=symmetry_check,
                            resume=resume, **kwargs)
        except Asymmetric as why:  # a resumed search has passed its self-test, or not begun it
            # The search again from its start, unreduced: not one its checkpoints may resume.
            result = _explore(profile, config, symmetry=False, symmetry_check=0, resume=None,
                              **{**kwargs, "checkpoint": None})
            result.symmetry.update({"requested": True, "refused": str(why)})
            return result
    return _explore(profile, config, symmetry=False, symmetry_check=0, resume=resume, **kwargs)


def _explore(profile, config, *, max_depth, max_states, symmetry, properties,
             on_edge, progress, graph_checks, memo, stop_on_violation, stop_when_witnessed,
             symmetry_check, stops, checkpoint, checkpoint_every, resume) -> Exploration:
    config.validate()
    start = time.perf_counter() - (resume.seconds if resume is not None else 0.0)
    props = list(properties) if properties is not None else list(profile.properties.values())
    state_always = [p for p in props if p.kind == "always" and p.state]
    step_always = [p for p in props if p.kind == "always" and p.step]
    pending_state = [p for p in props if p.kind == "sometimes" and p.state]
    pending_step = [p for p in props if p.kind == "sometimes" and p.step]
    sometimes = {p.name: False for p in props if p.kind == "sometimes"}
    witnesses: dict[str, tuple] = {}
    sym = profile.symmetry(config, enabled=symmetry)
    canon = sym.canonical
    cs = profile.calls(config)
    s0 = canon(profile.initial_state(config))
    states = StateTable() if resume is None else resume.states
    ids, pack = states.ids, states.pack
    s0_ids = ids(s0)
    if resume is None:
        states.add(pack(s0_ids))
    stepper = Stepper(profile, config, cs, states) if memo else None
    node_of = states.get
    # Under symmetry, a raw successor that is not its own canonical form is remembered in
    # `raw` (its key's number there indexes `raw_node`); one that is, is found by its node's key.
    symmetric = not sym.trivial
    raw, raw_node = Keys(), array("i")
    names = [c.name for c in cs]
    range_calls = range(len(cs))
    parent, via, depth_of = array("i", [-1]), array("i", [-1]), array("i", [0])  # per node
    arcs = Arcs()
    found: dict[str, tuple] = {}  # property -> ("state", node) | ("step", node, call idx, outcome)
    crashes: list[str] = []
    if resume is not None:
        parent, via, depth_of, arcs = resume.parent, resume.via, resume.depth_of, resume.arcs
        found, crashes = resume.found, resume.crashes
        sometimes.update(resume.sometimes)
        witnesses.update(resume.witnesses)
        pending_state = [p for p in pending_state if not sometimes[p.name]]
        pending_step = [p for p in pending_step if not sometimes[p.name]]

    predicates = [p.state for p in state_always] + [p.state for p in pending_state]
    predicates_named = [p.name for p in state_always] + [p.name for p in pending_state]
    checker = StateChecker(profile, config, predicates, states) if memo else None
    view = profile.view

    usual = [True] * len(state_always) + [False] * len(pending_state)

    def notable(i: int, state) -> bool:
        """Whether predicate i says something: an invariant false, a `sometimes` true."""
        if checker is not None:
            return checker(i) != usual[i]
        return bool(predicates[i](view(config, state))) != usual[i]

    def settled(i: int) -> bool:
        name = predicates_named[i]
        return name in found if i < len(state_always) else sometimes[name]

    def check_state(node: int, state, state_ids: list[int]) -> None:
        if checker is not None:
            checker.begin(state, state_ids)
            said, unanswered = checker.sweep(usual)
            said += [i for i in unanswered if not settled(i) and notable(i, state)]
        else:
            said = [i for i in range(len(predicates)) if not settled(i) and notable(i, state)]
        for i in said:
            name = predicates_named[i]
            if i < len(state_always):
                found.setdefault(name, ("state", node))
            elif not sometimes[name]:
                sometimes[name] = True
                witnesses[name] = ("state", node)

    if resume is None:
        check_state(0, s0, s0_ids)

    # The step properties an edge must be shown, per call, errno and whether the call wrote: a
    # property that reads nothing of either state on a first such edge is a function of those
    # alone (that the post-state is the pre-state is itself seen: `same_state`), so one that
    # holds there holds on every such edge, as a `sometimes` one that does not fails on every
    # one. Cleared when a property is found or witnessed. A sweep skips, counted, the failures
    # that change nothing and have none to be shown (`quiet`).
    sweep = stepper is not None and on_edge is None
    replay = Stepper.replay
    value_id = states.value_id
    written_ids: dict[int, tuple] = {}  # id(answer) -> (answer, its written fields' ids)
    positions = {name: i for i, name in enumerate(type(s0)._fields)}
    edge_props: dict[tuple, tuple] = {}

    def props_for(ci: int, errno: int, s, t) -> tuple[list, list]:
        got = edge_props.get((ci, errno, t is s))
        if got is None:
            got = edge_props[(ci, errno, t is s)] = (
                [p for p in step_always if p.name not in found and _tells(p, ci, errno, s, t, True)],
                [p for p in pending_step if _tells(p, ci, errno, s, t, False)])
        return got

    def _tells(p: Property, ci: int, errno: int, s, t, usual: bool) -> bool:
        pre_reads = Reads(s, positions)
        post_reads = pre_reads if t is s else Reads(t, positions)
        pre = view(config, pre_reads)
        verdict = bool(p.step(names[ci], errno, pre, pre if t is s else view(config, post_reads)))
        return (verdict != usual or pre_reads.everything or post_reads.everything
                or bool(pre_reads.read) or bool(post_reads.read))

    def quiet(ci: int, errno: int) -> bool:
        state = stepper.state
        return errno_known(errno) and props_for(ci, errno, state, state) == ([], [])
    edges = tried = 0
    truncated = False
    stopped = None
    frontier, nxt = [0], []
    depth = 0
    if resume is not None:
        edges, tried, depth = resume.edges, resume.tried, resume.depth
        layer_end = bisect_right(depth_of, depth)
        frontier, nxt = range(resume.next, layer_end), list(range(layer_end, len(states)))
        if not frontier and nxt:  # stopped between two layers
            frontier, nxt, depth = nxt, [], depth + 1
    last_report = time.perf_counter()
    last_saved = last_report
    interruption = None
    # What the search holds before each node, to roll an interrupted one back: states, arcs,
    # sources of arcs, edges, tried, found, witnesses, crashes.
    mark = whole = None

    def snapshot(next_node: int) -> Snapshot:
        return Snapshot(states, parent, via, depth_of, arcs, found, crashes, sometimes,
                        witnesses, edges, tried, depth, next_node, time.perf_counter() - start)

    try:
        while frontier:
            if max_depth is not None and depth >= max_depth:
                truncated, stopped = True, "max_depth"
                break
            if stop_on_violation and found:
                truncated, stopped = True, "violation"
                break
            if stop_when_witnessed and all(sometimes.values()):
                truncated, stopped = True, "witnessed"
                break
            for node in frontier:
                if checkpoint is not None:
                    mark = (len(states), len(arcs.dst), len(arcs.start), edges, tried,
                            len(found), len(witnesses), len(crashes))
                s, s_ids = states.expand(node)
                pre = view(config, s)
                out: dict[int, list] = {}
                if stepper is not None:
                    stepper.begin(s, s_ids)
                if sweep:
                    answered, unanswered, quiet_count = stepper.sweep(quiet)
                    tried += quiet_count
                    todo = sorted(answered + [(ci, None) for ci in unanswered])
                else:
                    todo = [(ci, None) for ci in range_calls]
                before = len(found), len(pending_step)
                for ci, answer in todo:
                    # `answer`: the memo's (errno, written fields) for the call, from the sweep,
                    # or None: the call is run. An answer's successor is built only when
                    # something needs the state itself: its key is the parent's field ids with
                    # the written ones replaced (numbered once per answer).
                    t = t_ids = outcome = None
                    if answer is None:
                        try:
                            if stepper is not None:
                                outcome = stepper(ci)
                            else:
                                outcome = profile.step(config, s, cs[ci])
                        except Exception as err:  # noqa: BLE001 - reported with its trace, not hidden
                            if "call_completes" not in found:
                                found["call_completes"] = ("crash", node, ci)
                                crashes.append(f"{cs[ci]} raised {err!r} in the last state of the trace")
                            continue
                        if outcome is None:
                            continue
                        errno, t = outcome
                    else:
                        errno, written = answer
                        if not written:
                            t, t_ids = s, s_ids
                        else:
                            numbered = written_ids.get(id(answer))
                            if numbered is None:
                                numbered = written_ids[id(answer)] = (
                                    answer, [(i, value_id(i, v)) for i, v in written])
                            t_ids = list(s_ids)
                            for i, n in numbered[1]:
                                t_ids[i] = n
                    tried += 1
                    if on_edge is not None:
                        on_edge(s, cs[ci], outcome)
                    hints = edge_props.get((ci, errno, t is s))
                    if hints is None:
                        if t is None:
                            t = replay(s, answer).state
                        hints = props_for(ci, errno, s, t)
                    checks, hopes = hints
                    if checks or hopes or (errno and not errno_known(errno)):
                        if t is None:
                            t = replay(s, answer).state
                        if outcome is None:
                            outcome = Outcome(errno, t)
                        post = pre if t is s else view(config, t)
                        name = names[ci]
                        for p in checks:
                            if p.name not in found and not p.step(name, errno, pre, post):
                                found[p.name] = ("step", node, ci, outcome)
                        for p in hopes:
                            if not sometimes[p.name] and p.step(name, errno, pre, post):
                                sometimes[p.name] = True
                                witnesses[p.name] = ("step", node, ci, outcome)
                                pending_step.remove(p)
                        if errno and not errno_known(errno):
                            found.setdefault("errno_known", ("step", node, ci, outcome))
                    if errno:
                        continue
                    edges += 1
                    if t_ids is None:
                        t_ids = ids(t, s, s_ids)
                    t_key = pack(t_ids)
                    target = node_of(t_key)  # a node's key is its own canonical form
                    c, c_ids, c_key = t, t_ids, t_key
                    remember = False  # a raw successor that is not its canonical form
                    if target is None and symmetric:
                        r = raw.get(t_key)
                        if r is not None:
                            target = raw_node[r]
                        else:
                            if t is None:
                                t = replay(s, answer).state
                            c = canon(t)
                            c_ids = ids(c, t, t_ids)  # the fields no renaming moves are t's
                            c_key = pack(c_ids)
                            if c_key != t_key:
                                remember = True
                                target = node_of(c_key)
                    if target is None:
                        if max_states is not None and len(states) >= max_states:
                            truncated, stopped = True, "max_states"
                            continue
                        if c is None:
                            c = t = replay(s, answer).state
                        target = states.add(c_key)
                        parent.append(node)
                        via.append(ci)
                        depth_of.append(depth + 1)
                        nxt.append(target)
                        check_state(target, c, c_ids)
                    if remember:
                        raw.add(t_key)
                        raw_node.append(target)
                    targets = out.get(target)
                    if targets is None:
                        out[target] = [ci]
                    else:
                        targets.append(ci)
                for target, cis in out.items():
                    arcs.add(node, target, cis)
                if before != (len(found), len(pending_step)):
                    edge_props.clear()  # a failure that was loud may be quiet now
                    if sweep:
                        stepper.generation += 1
                if node < symmetry_check and symmetric and stopped != "max_states":
                    _check_equivariance(profile, config, stepper or Stepper(profile, config, cs), cs,
                                        sym, s, step_always)
                whole = node
                if checkpoint is not None and stopped is None \
                        and time.perf_counter() - last_saved > checkpoint_every:
                    checkpoint(snapshot(node + 1))
                    last_saved = time.perf_counter()
                if progress is not None:
                    now = time.perf_counter()
                    if now - last_report > 0.1:
                        last_report = now
                        progress(len(states), edges, depth, len(nxt))
            frontier, nxt = nxt, []
            if frontier:
                depth += 1
    except stops as stop:  # Ctrl-C or a deadline: keep what was found
        # (past --max-states no checkpoint is taken: a node's successors were dropped)
        if checkpoint is not None and mark is not None and stopped is None:
            if whole != node:  # roll the node being expanded back
                edges, tried = mark[3], mark[4]
                _roll_back(mark, states, parent, via, depth_of, arcs, found, witnesses,
                           sometimes, crashes)
            checkpoint(snapshot(node if whole != node else node + 1))
        truncated, stopped, interruption = True, "interrupted", stop
        states.truncate(len(depth_of))  # a state added as the interrupt came, its parent not
    # Past the search only the table, the arcs and the BFS tree are kept: the memos and the raw
    # successors go before the graph properties build their rows.
    raw = raw_node = stepper = checker = None
    complete = not truncated
    seconds = time.perf_counter() - start
    if progress is not None and interruption is None:
        try:
            progress(len(states), edges, depth, 0)
        except stops as stop:  # at the very end: the search is complete, its graph unchecked
            interruption = stop

    result = Exploration(
        profile=profile, config=config, arcs=arcs, states=states, calls=cs, depth_of=depth_of, depth=depth,
        complete=complete, seconds=seconds, edges=edges, tried=tried, violations=[],
        sometimes=sometimes, symmetry={}, graph_checks={}, witnesses=witnesses)
    result.parent, result.via = parent, via
    result.sym = sym
    result.props = {p.name: p for p in props}
    result.stopped = stopped
    result.interruption = interruption
    result.symmetry = {"enabled": symmetry, **sym.describe(), "states": len(states)}

    graph_found: dict[str, int] = {}
    if complete and graph_checks and interruption is None:
        result.graph_checks = graph_properties(profile, config, arcs, states, graph_found)
    else:
        result.graph_checks = {"checked": False}
    # Violations in the order of the property catalog, then the errno and graph checks.
    by_name = {p.name: p for p in props}
    for name in [p.name for p in props if p.name in found] + [n for n in found if n not in by_name]:
        prop = by_name.get(name)
        doc = prop.doc if prop else GRAPH_CHECKS[name]
        if name == "call_completes":
            doc = f"{doc}: {crashes[0]}"
        kind = "state" if prop is not None and prop.state else "step"
        steps = trace(result, found[name], name)
        why = blame(result, prop, steps)
        result.violations.append(Violation(name, doc, kind, steps, "; ".join(why.where),
                                           why.text()))
    graph_docs = {g.name: g.doc for g in profile.graph}
    for name, node in graph_found.items():
        result.violations.append(Violation(name, graph_docs[name], "graph",
                                           trace(result, ("state", node), None)))
    result.seconds = time.perf_counter() - start  # graph properties and traces included
    return result


def _roll_back(mark, states, parent, via, depth_of, arcs, found, witnesses, sometimes,
               crashes) -> None:
    """Forget what the node being expanded when the search stopped added."""
    nodes, arc_count, sources, _edges, _tried, found_count, witnessed, crashed = mark
    states.truncate(nodes)
    for column in (parent, via, depth_of):
        del column[nodes:]
    arcs.truncate(arc_count, sources)
    for name in list(found)[found_count:]:
        del found[name]
    for name in list(witnesses)[witnessed:]:
        del witnesses[name]
        sometimes[name] = False
    del crashes[crashed:]


def _successor_orbits(profile, config, stepper, cs, canon, state, step_always) -> tuple[set, set]:
    """The representatives of a state's successors, and (transition, property) step failures."""
    succ, failures = set(), set()
    pre = profile.view(config, state)
    stepper.begin(state)
    for ci, call in enumerate(cs):
        try:
            outcome = stepper(ci)
        except Exception:  # noqa: BLE001 - a crash is reported by the search itself
            failures.add((call.name, "call_completes"))
            continue
        if outcome is None:
            continue
        post = profile.view(config, outcome.state)
        for p in step_always:
            if not p.step(call.name, outcome.errno, pre, post):
                failures.add((call.name, p.name))
        if outcome.errno == 0:
            succ.add(canon(outcome.state))
    return succ, failures


def _check_equivariance(profile, config, stepper, cs, sym, state, step_always) -> None:
    """Raise Asymmetric unless every generator maps `state` to a state with the same successor
    orbits and the same step-property failures (a necessary condition of soundness, tested on
    the states a search expands first)."""
    mine = None
    for gen in sym.generators():
        other = sym.image(state, *gen)
        if other == state:
            continue
        if mine is None:
            mine = _successor_orbits(profile, config, stepper, cs, sym.canonical, state,
                                     step_always)
        theirs = _successor_orbits(profile, config, stepper, cs, sym.canonical, other,
                                   step_always)
        if theirs != mine:
            diff = sorted(str(x) for x in (theirs[1] ^ mine[1]))[:1]
            what = f"step properties differ ({diff[0]})" if diff else "successors differ"
            raise Asymmetric(f"renamed states behave differently: {what}")

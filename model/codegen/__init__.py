"""Code generation: the transitions of one fixed configuration as straight-line code.

`trace.py` is the reading (every call traced once over a state of symbolic cells, into a
decision tree); `python.py` compiles the trees to Python functions over packed states
(`compiled_successors`), checked against the concrete reading; `search.py` counts the reachable
states on them; `native.py` encodes the trees as arrays for one numba-compiled search;
`promela.py` writes the same trees as a Promela model for SPIN.
"""

"""Inference backends: the runtimes that execute the network, behind one interface.

See :mod:`lw_refinenet_ros.engine.backends.base` for the contract. Each runtime lives in its
own module and is imported only when asked for, so that a missing optional runtime costs
nothing until someone selects it.
"""

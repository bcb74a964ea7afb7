"""isobox: run any OCI image as a container or as a virtual machine.

The Python API offers every operation of the CLI::

    import isobox
    isobox.pull("localhost:5000/app:1")
    result = isobox.run("busybox", ["echo", "hello"], remove=True)   # container
    result = isobox.run("busybox", ["echo", "hello"], vm=True)        # virtual machine
    for w in isobox.list_workloads(all=True): print(w.name, w.status)
"""

from __future__ import annotations

__version__ = "0.1.0"

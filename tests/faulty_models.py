"""Text models that misbehave the ways a zoo model can, for tests/test_executors.py: saved as pickled torch modules
(the `pickle` adapter, trust_pickle=True), so a worker process loads them through a real adapter. The worker imports
this module to unpickle them: it is found on the sys.path the test process hands its spawned workers (pytest puts
tests/ on it)."""

import ctypes
import os
import time

import numpy as np
import torch

from zoo2vec import ModelCard

HOW = ("hang", "segfault", "exit", "memory", "raise")


class Misbehaving(torch.nn.Module):
    """A two-class text model whose forward does `how` first ("fine": nothing)."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.linear = torch.nn.Linear(1, 2)

    def forward(self, texts):
        if self.how == "hang":
            time.sleep(3600)
        elif self.how == "segfault":
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        elif self.how == "exit":
            os._exit(3)
        elif self.how == "memory":
            hog = np.empty(2**30)  # 8 GiB at once, past any test cap; were no cap there, only one page would be written
            hog[0] = 1.0
        elif self.how == "raise":
            raise RuntimeError("weights corrupted")
        lengths = torch.tensor([[len(t) / 100.0] for t in texts])
        return self.linear(lengths)


def save(models_folder, name: str, how: str):
    """A model folder `name` whose model does `how`."""
    folder = models_folder / name
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(Misbehaving(how), folder / "model.pt")
    ModelCard(name, "text", label_names=["short", "long"], description=f"a text model that does '{how}'",
              adapter={"kind": "pickle", "file": "model.pt"}).save(folder)
    return folder


def behave(how: str) -> str:
    """Do `how` at once, in whatever process calls it (tests/test_isolation.py's workers); "fine" answers."""
    Misbehaving(how).forward(["some text"])
    return f"{how}: answered in process {os.getpid()}"

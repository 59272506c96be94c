"""The recovery tasks of ``genprior recover``: which operator, which parameter, which methods.

Noise: for the Gaussian tasks (``cs``, ``phase``) ``noise_std`` is CSGM's per-measurement
standard deviation with unnormalised N(0, 1) entries; since genprior's A has N(0, 1/m) entries,
the noise actually added is ``noise_std / sqrt(m)`` (the same problem divided by sqrt(m)).
For the other tasks it is the per-pixel standard deviation; for ``denoise`` the swept
parameter is that standard deviation itself.
"""

import math
from dataclasses import dataclass

from genprior.errors import check_choice


@dataclass(frozen=True)
class Task:
    """A recovery task.

    Attributes:
        name: the task's name on the command line.
        operator: the registry name of its operator.
        param: the swept parameter's name, also the column name in the results.
        sweep: the full protocol's parameter values.
        quick_sweep: the values of ``--quick``.
        noise_std: default noise level (see the module docstring).
        methods: every method that applies, the prior first.
        default_methods: the methods run when none are named.
        normalise_noise: divide noise_std by sqrt(m) (Gaussian measurement matrices).
    """

    name: str
    operator: str
    param: str
    sweep: tuple[float, ...]
    quick_sweep: tuple[float, ...]
    noise_std: float
    methods: tuple[str, ...]
    default_methods: tuple[str, ...]
    normalise_noise: bool = False

    def noise_level(self, param: float, noise_std: float) -> float:
        """The standard deviation actually added to each measurement at ``param``."""
        if self.name == "denoise":
            return float(param)
        return noise_std / math.sqrt(param) if self.normalise_noise else noise_std

    def cast(self, value: float) -> float | int:
        """``value`` as the parameter's type: a whole number for counts and factors.

        Raises:
            ValueError: a fractional value for a count or factor.
        """
        if self.param not in ("m", "factor", "size"):
            return float(value)
        if float(value) != int(value):
            raise ValueError(
                f"--params: {self.param} must be whole numbers for task "
                f"{self.name}; received {value}"
            )
        return int(value)


LINEAR_BASELINES = ("lasso-dct", "lasso-wavelet", "pinv")
PHASE_BASELINES = ("amplitude-flow-dct", "amplitude-flow-wavelet")

TASKS: dict[str, Task] = {
    "cs": Task(
        "cs",
        "cs",
        "m",
        (10, 25, 50, 100, 200, 300, 400, 500, 750),
        (25, 50, 100, 200),
        0.1,
        ("vae", *LINEAR_BASELINES),
        ("vae", "lasso-dct", "lasso-wavelet"),
        True,
    ),
    "inpaint": Task(
        "inpaint",
        "inpaint-random",
        "fraction",
        (0.05, 0.1, 0.2, 0.3, 0.5, 0.75),
        (0.1, 0.3),
        0.05,
        ("vae", *LINEAR_BASELINES),
        ("vae", *LINEAR_BASELINES),
    ),
    "superres": Task(
        "superres",
        "superres",
        "factor",
        (2, 4, 7),
        (2, 4),
        0.05,
        ("vae", *LINEAR_BASELINES),
        ("vae", *LINEAR_BASELINES),
    ),
    "denoise": Task(
        "denoise",
        "denoise",
        "noise_std",
        (0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
        (0.2, 0.5),
        0.0,
        ("vae", *LINEAR_BASELINES),
        ("vae", *LINEAR_BASELINES),
    ),
    "phase": Task(
        "phase",
        "phase",
        "m",
        (25, 50, 100, 200, 400, 750),
        (50, 200),
        0.1,
        ("vae", *PHASE_BASELINES),
        ("vae", *PHASE_BASELINES),
        True,
    ),
}


def get_task(name: str) -> Task:
    """The task called ``name``; OptionError listing the choices otherwise."""
    check_choice("task", name, tuple(TASKS))
    return TASKS[name]

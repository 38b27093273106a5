"""Optional noise on boundary messages, for testing privacy-preserving coordination.

With ``NoiseSettings(kind="laplace", scale_mw=b)`` every DSO adds independent
Laplace(0, b) noise to each boundary value it sends (``BoundaryProposal.p_mw``) and the
TSO adds it to each consensus value it sends (``BoundaryUpdate.consensus_p_mw``);
``kind="gaussian"`` draws N(0, b^2) instead. Their internal values stay exact. For the
Laplace mechanism, a boundary value with sensitivity ``Delta`` MW (e.g. the largest
change one customer can make) is ``epsilon = Delta / b`` differentially private per
message; the scale ``b`` is the privacy parameter the user sets.

Each agent draws from its own generator, seeded from ``seed`` and the agent's name, so a
run is reproducible; the generator's state is part of the agent's checkpoint.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

KINDS = ("none", "laplace", "gaussian")


@dataclass(frozen=True)
class NoiseSettings:
    kind: str = "none"  #: "none", "laplace" or "gaussian"
    scale_mw: float = 0.0  #: Laplace scale b or Gaussian sigma, in MW
    seed: int = 0  #: seed of every agent's noise generator (mixed with the agent's name)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"noise kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not (self.scale_mw >= 0 and np.isfinite(self.scale_mw)):
            raise ValueError(f"noise scale {self.scale_mw!r} must be a finite number of MW >= 0")

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.scale_mw > 0

    def generator(self, agent: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(agent.encode())])

    def perturb(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``values`` plus this noise (unchanged when inactive)."""
        if not self.active:
            return values
        if self.kind == "laplace":
            return values + rng.laplace(0.0, self.scale_mw, size=np.shape(values))
        return values + rng.normal(0.0, self.scale_mw, size=np.shape(values))


def parse_noise(spec: str, seed: int = 0) -> NoiseSettings:
    """``laplace:0.01`` or ``gaussian:0.05`` (MW)."""
    try:
        kind, scale = spec.split(":", 1)
        return NoiseSettings(kind, float(scale), seed)
    except ValueError as exc:
        raise ValueError(f"--noise {spec!r}: expected laplace:SCALE_MW or gaussian:SCALE_MW ({exc})") from None

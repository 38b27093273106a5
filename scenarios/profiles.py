"""Seeded daily profiles: load, wind and EV charging availability.

Every profile is drawn from a ``numpy.random.Generator`` handed in by the caller;
nothing here holds state.

* Load: the IEEE RTS-96 hourly load shape (winter weekday, percent of the daily peak;
  Grigg et al., IEEE Trans. Power Syst. 14(3), 1999, Table 4), times a per-bus,
  per-hour multiplicative noise ``1 + N(0, load_noise_std)`` clipped to [0.9, 1.1].
* Wind: capacity factor ``cf_t = clip(base_t + a_t, 0, 1)`` with a diurnal base
  ``mean_cf (1 + 0.3 cos(2 pi (t - 3) / 24))`` (windier at night) and an AR(1)
  deviation ``a_t = 0.8 a_(t-1) + N(0, 0.08)``, ``a_0 ~ N(0, 0.13)``, one per farm.
* EV availability: the fraction of a station's chargers occupied in hour t, a mix of
  home charging (evening to morning) and workplace charging (office hours), scaled
  to a peak of 1; plus a per-station jitter of +-0.05.

For horizons other than 24 h the daily shapes repeat.
"""

from __future__ import annotations

import numpy as np

#: IEEE RTS-96 hourly load, winter weekday, percent of daily peak (hour 0 = 0:00-1:00).
RTS_LOAD_SHAPE_PCT = np.array(
    [67, 63, 60, 59, 59, 60, 74, 86, 95, 96, 96, 95, 95, 95, 93, 94, 99, 100, 100, 96, 91, 83, 73, 63],
    dtype=float,
)

#: Occupied share of charging points per hour (home-dominated mix), before jitter.
EV_AVAILABILITY = np.array(
    [0.9, 0.9, 0.9, 0.9, 0.85, 0.75, 0.55, 0.4, 0.45, 0.55, 0.55, 0.5,
     0.5, 0.5, 0.45, 0.4, 0.4, 0.5, 0.7, 0.85, 0.9, 0.95, 1.0, 0.95],
    dtype=float,
)


def _repeat(shape: np.ndarray, horizon_h: int) -> np.ndarray:
    return np.resize(shape, horizon_h)


def load_profile(rng: np.random.Generator, base_mw: np.ndarray, horizon_h: int, noise_std: float = 0.02) -> np.ndarray:
    """(n, T) load: ``base_mw`` (n,) times the RTS shape times seeded noise."""
    shape = _repeat(RTS_LOAD_SHAPE_PCT / 100.0, horizon_h)
    noise = np.clip(1.0 + rng.normal(0.0, noise_std, size=(len(base_mw), horizon_h)), 0.9, 1.1)
    return np.asarray(base_mw, dtype=float)[:, None] * shape[None, :] * noise


def wind_profile(rng: np.random.Generator, capacity_mw: np.ndarray, horizon_h: int, mean_cf: float = 0.35) -> np.ndarray:
    """(n_farms, T) available wind power in MW."""
    capacity_mw = np.asarray(capacity_mw, dtype=float)
    t = np.arange(horizon_h)
    base = mean_cf * (1.0 + 0.3 * np.cos(2 * np.pi * (t - 3) / 24.0))
    dev = np.empty((len(capacity_mw), horizon_h))
    dev[:, 0] = rng.normal(0.0, 0.13, size=len(capacity_mw))
    for k in range(1, horizon_h):
        dev[:, k] = 0.8 * dev[:, k - 1] + rng.normal(0.0, 0.08, size=len(capacity_mw))
    return capacity_mw[:, None] * np.clip(base[None, :] + dev, 0.0, 1.0)


def ev_availability(rng: np.random.Generator, n_stations: int, horizon_h: int) -> np.ndarray:
    """(n_stations, T) share of each station's chargers occupied, in [0, 1]."""
    shape = _repeat(EV_AVAILABILITY, horizon_h)
    jitter = rng.uniform(-0.05, 0.05, size=(n_stations, horizon_h))
    return np.clip(shape[None, :] + jitter, 0.0, 1.0)

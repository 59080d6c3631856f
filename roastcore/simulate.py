"""The built-in dataset: batch roasts from a lumped heat-transfer model of a drum roaster.

Nothing here fits curves. Each roast integrates a small set of energy balances at sub-second
steps (see docs/simulator.md for the equations):

* hot air (ET) relaxes towards the burner's inlet temperature and is cooled by the bean load;
* the drum wall is heated by the air and cooled by the beans touching it;
* the bean mass takes heat from the air (convection, stronger with airflow) and from the drum
  (conduction), loses heat to evaporating water (moisture is a state variable, latent heat from
  the drying rate) and gains heat from the first-crack exotherm;
* the logged BT is a probe with first-order lag that sits in the hot drum before CHARGE, so it
  starts at the drum temperature and falls until it meets the rising beans: the turning point;
* the logger adds small noise and quantises to 0.1 °F.

The operator follows a fixed policy: charge at high gas, bring the gas down in steps from the
dry-end mark to just before first crack (to manage the declining rate of rise), open the airflow
at dry end and at first crack, and drop when BT reaches the drop temperature once the roast
level's minimum development time has passed.

Public API: `RoastParams`, `sample_params(rng)`, `simulate_profile(params, seed)`,
`simulate_batch(params, seeds)`, `dataset_params(n, seed)`, `generate_dataset(n, seed)`,
`roast_stats(profile)`, `calibration_table(synthetic, real)`.

All roasts of a batch are integrated together with numpy (one array element per roast): 200
roasts take about a second on one core (benchmarks/bench_simulate.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from roastcore.profile import Profile, ProfileMeta, find_turning_point, rate_of_rise

log = logging.getLogger(__name__)

DT_S = 0.25  # integration step; 4 steps per logged sample
LOG_INTERVAL_S = 1.0
STEPS_PER_SAMPLE = int(round(LOG_INTERVAL_S / DT_S))
MAX_ROAST_S = 1200.0  # safety cap; calibrated roasts drop by ~15 min
LOGGER_DECIMALS = 1  # the logger shows 0.1 °F
NOISE_WANDER_S = 20.0  # correlation time of the slow part of the probe noise

# Physical constants in °F units. Heat terms are written per unit heat capacity of the dry
# bean, so a latent heat becomes "°F of dry-bean temperature per kg water per kg dry bean".
WATER_TO_DRY_HEAT_CAPACITY = 2.6  # c_water / c_dry_bean (4.18 / ~1.6 kJ/kg/K)
LATENT_HEAT_F = 2300.0  # L_v / c_dry in °F: (2200 kJ/kg / 1.7 kJ/kg/K) * 1.8
EQUILIBRIUM_MOISTURE = 0.015  # dry-basis moisture the roast dries towards (roasted coffee ~1-2%)
DRYING_ACTIVATION_K = 3500.0  # E/R of the drying rate (Arrhenius in the bean temperature)
DRYING_REFERENCE_F = 302.0  # temperature at which the drying rate equals its reference value
FIRST_CRACK_HEAT_F = 8.0  # total exotherm released over first crack, °F of dry bean
FIRST_CRACK_WIDTH_F = 8.0  # temperature scale over which the crack reaction speeds up
REFERENCE_DENSITY_G_L = 700.0
DRY_END_MOISTURE_FRACTION = 0.15  # DRY_END: this fraction of the free water has evaporated
FIRST_CRACK_END_EXTENT = 0.9  # FCe: this fraction of the crack reaction has run


# ------------------------------------------------------------------ catalogue
@dataclass(frozen=True)
class Machine:
    """A roaster model: how it is preheated, how it moves heat, how its probe behaves."""

    name: str
    charge_temp_f: tuple[float, float]  # (mean, sd) of the preheat the operator charges at
    nominal_batch_kg: float
    probe_tau_s: float  # BT probe time constant once buried in beans
    air_coeff: float  # 1/s: convective air->bean coefficient at mid airflow
    drum_coeff: float  # 1/s: conductive drum->bean coefficient
    air_tau_s: float  # how fast the drum air follows the burner
    drum_tau_s: float  # thermal time constant of the drum wall against the air
    bean_cools_air: float  # how strongly a nominal load pulls the air towards BT
    bean_cools_drum: float  # 1/s: how fast a nominal load pulls the drum wall towards BT
    burner_gain_f: float  # inlet air rise above ambient at full gas and mid airflow
    noise_f: float  # logger noise sd
    crack_gas: float  # the house profile: gas reached just before first crack, as a fraction of charge gas
    development_gas: float  # gas after FCs for an "expressive light" roast, same units
    weight: float  # share in the default dataset


# Heat-transfer and probe constants were fitted (Nelder-Mead on a nominal roast per machine) to
# the median onyx-dev curve of that machine: BT and RoR each minute to first crack, TP, RoR peak,
# duration and final RoR. See docs/simulator.md.
MACHINES: dict[str, Machine] = {
    m.name: m
    for m in (
        Machine(name="Diedrich CR-35", charge_temp_f=(413.0, 9.0), nominal_batch_kg=14.0,
                probe_tau_s=27.7, air_coeff=0.00249, drum_coeff=0.0009, air_tau_s=24.8,
                drum_tau_s=342.0, bean_cools_air=0.449, bean_cools_drum=0.00319,
                burner_gain_f=737.0, noise_f=0.12, crack_gas=0.92, development_gas=0.88,
                weight=0.5),
        Machine(name="Diedrich CR-70", charge_temp_f=(440.0, 10.0), nominal_batch_kg=28.0,
                probe_tau_s=36.5, air_coeff=0.00181, drum_coeff=0.0004, air_tau_s=53.8,
                drum_tau_s=190.0, bean_cools_air=0.682, bean_cools_drum=0.00487,
                burner_gain_f=991.0, noise_f=0.15, crack_gas=0.89, development_gas=0.72,
                weight=0.15),
        # A convection roaster: hot air does nearly all the work and the probe is quick.
        Machine(name="Loring S70 Peregrine", charge_temp_f=(425.0, 9.0), nominal_batch_kg=13.0,
                probe_tau_s=14.0, air_coeff=0.00361, drum_coeff=0.00054, air_tau_s=13.2,
                drum_tau_s=319.0, bean_cools_air=0.33, bean_cools_drum=0.00268,
                burner_gain_f=657.0, noise_f=0.10, crack_gas=0.89, development_gas=0.88,
                weight=0.35),
    )
}


@dataclass(frozen=True)
class RoastLevel:
    """What a roast level asks of the roaster: where to drop and how to develop."""

    name: str
    drop_temp_f: float  # nominal published finish temperature
    min_development_s: float  # the roaster never drops sooner than this after FCs
    charge_gas: float  # typical gas at charge: darker roasts are taken slower
    cut_scale: float  # share of the machine's pre-crack gas reduction made: darks keep their momentum
    development_boost: float  # darker roasts keep more gas after FCs (added to Machine.development_gas)
    charge_offset_f: float  # darker roasts are charged a little hotter
    weight: float


ROAST_LEVELS: dict[str, RoastLevel] = {
    lv.name: lv
    for lv in (
        RoastLevel("expressive light", 398.0, 50.0, 0.86, 1.0, 0.00, -4.0, 0.43),
        RoastLevel("light", 403.0, 60.0, 0.86, 0.9, 0.02, 0.0, 0.22),
        RoastLevel("moderate", 410.0, 75.0, 0.85, 0.75, 0.05, 4.0, 0.20),
        RoastLevel("expressive dark", 414.0, 90.0, 0.84, 0.6, 0.08, 10.0, 0.08),
        RoastLevel("dark", 422.0, 100.0, 0.84, 0.45, 0.12, 14.0, 0.07),
    )
}


@dataclass(frozen=True)
class Process:
    name: str
    moisture_pct: tuple[float, float]  # green moisture, wet basis (mean, sd)
    flavor_bias: dict[str, float]  # extra weight on flavour categories
    weight: float


PROCESSES: dict[str, Process] = {
    p.name: p
    for p in (
        Process("washed", (10.8, 0.5), {"citrus": 1.0, "floral": 0.8, "tea": 0.8}, 0.45),
        Process("natural", (10.0, 0.6), {"fruity": 1.5, "sweet": 0.5}, 0.2),
        Process("honey", (10.4, 0.5), {"sweet": 1.0, "caramel": 0.8, "fruity": 0.5}, 0.12),
        Process("anaerobic natural", (10.4, 0.6), {"fruity": 2.0, "spice": 0.6}, 0.12),
        Process("anaerobic washed", (11.2, 0.5), {"fruity": 1.0, "floral": 0.8, "spice": 0.4}, 0.11),
    )
}

# (origin, altitude range m, varieties, regions) -- altitude drives bean density.
ORIGINS: tuple[tuple[str, tuple[float, float], tuple[str, ...], tuple[str, ...]], ...] = (
    ("Ethiopia", (1800.0, 2300.0), ("Landrace", "74110", "Heirloom"), ("Guji", "Yirgacheffe", "Sidama")),
    ("Colombia", (1400.0, 2100.0), ("Caturra", "Castillo", "Pink Bourbon", "Gesha"), ("Huila", "Nariño", "Tolima")),
    ("Kenya", (1500.0, 2000.0), ("SL28", "SL34", "Ruiru 11"), ("Nyeri", "Kirinyaga", "Embu")),
    ("Honduras", (1200.0, 1800.0), ("Catuai", "Pacas", "Parainema"), ("Marcala", "Santa Barbara")),
    ("El Salvador", (1100.0, 1700.0), ("Bourbon", "Pacamara"), ("Chalatenango", "Apaneca")),
    ("Guatemala", (1300.0, 2000.0), ("Bourbon", "Caturra"), ("Huehuetenango", "Antigua")),
    ("Brazil", (900.0, 1300.0), ("Yellow Catuai", "Mundo Novo"), ("Cerrado", "Sul de Minas")),
    ("Indonesia", (1100.0, 1600.0), ("Typica", "Ateng"), ("Aceh", "Java")),
)

# Flavour notes as Onyx prints them (lower-cased like roastcore.io), grouped in categories.
# A coffee draws 2-4 categories, weighted by roast level (bright -> roasty) plus its process's
# bias, and one note from each.
FLAVOR_NOTES: dict[str, tuple[str, ...]] = {
    "fruity": ("plum", "raspberry", "stone fruit", "dried berries"),
    "citrus": ("grapefruit", "tangerine", "cara cara orange"),
    "floral": ("jasmine", "rose", "honeysuckle"),
    "tea": ("black tea", "earl grey", "sweet tea"),
    "sweet": ("brown sugar", "raw honey", "vanilla"),
    "caramel": ("caramel", "molasses", "burnt sugar"),
    "nutty": ("almond", "candied walnuts", "hazelnut"),
    "chocolate": ("milk chocolate", "cocoa", "dark chocolate"),
    "body": ("creamy", "silky", "thick & syrupy"),
    "spice": ("clove", "cinnamon", "cardamom"),
    "smoky": ("smoke", "tobacco", "toasted oak"),
}
FLAVOR_CATEGORIES = tuple(FLAVOR_NOTES)
_LEVEL_FLAVOR_WEIGHTS = {
    "expressive light": (2.0, 1.5, 1.5, 1.2, 1.0, 0.3, 0.1, 0.1, 0.2, 0.2, 0.0),
    "light": (1.6, 1.2, 1.0, 1.0, 1.0, 0.6, 0.3, 0.4, 0.3, 0.2, 0.0),
    "moderate": (0.8, 0.5, 0.3, 0.4, 1.2, 1.2, 0.8, 1.0, 0.6, 0.3, 0.05),
    "expressive dark": (0.3, 0.1, 0.1, 0.1, 0.8, 1.2, 1.0, 1.6, 1.0, 0.5, 0.4),
    "dark": (0.1, 0.0, 0.0, 0.0, 0.5, 0.8, 1.0, 2.0, 1.2, 0.6, 1.2),
}


# ------------------------------------------------------------------ parameters
def _key(name) -> str | None:
    """Lower-case, single-spaced: how level and process names are compared and stored."""
    return " ".join(name.split()).lower() if isinstance(name, str) else None


@dataclass
class RoastParams:
    """Everything that decides one simulated roast. Temperatures in °F, times in seconds.

    The defaults are the nominal roast the machine constants were fitted on: an expressive light
    washed Colombian on a Diedrich CR-35 at 90 % load. `sample_params` draws realistic variety.
    """

    # The roast
    machine: str = "Diedrich CR-35"  # a key of MACHINES: preheat, heat transfer, probe lag
    roast_level: str = "expressive light"  # a key of ROAST_LEVELS (any case): gas policy, development
    batch_kg: float = 12.6  # green load; 30-130 % of the machine's nominal batch
    charge_temp_f: float = 413.0  # BT (the probe in the preheated drum) at CHARGE
    charge_gas: float = 0.86  # burner at CHARGE, 0..1 of full; the policy scales from it
    drop_temp_f: float = 400.0  # the intended finish: the operator drops once BT reaches it
    # The bean
    process: str = "washed"  # label (PROCESSES set the usual moisture when sampling)
    origin: str = "Colombia"
    variety: str = "Caturra"
    altitude_m: float = 1700.0  # label only: it acts through density_g_l
    density_g_l: float = 700.0  # denser beans take heat and give up water more slowly
    moisture_pct: float = 10.8  # green moisture, wet basis: more water, a longer drying phase
    bean_temp_f: float = 70.0  # green beans (and room) temperature
    first_crack_f: float = 385.0  # bean (not probe) temperature at which first crack starts
    # Labels
    flavors: tuple[str, ...] = ()
    product: str = "Colombia Huila Washed"  # batches of one coffee share it (grouped splits)
    batch_id: str = "sim-0000"

    def __post_init__(self):
        # Names are matched like the importers spell them (roastcore.io.normalize): any case,
        # any inner whitespace; levels and processes are stored lower-case.
        machines = {_key(m): m for m in MACHINES}
        if _key(self.machine) not in machines:
            raise ValueError(f"machine: {self.machine!r} is unknown; expected one of {list(MACHINES)}")
        self.machine = machines[_key(self.machine)]
        if _key(self.roast_level) not in ROAST_LEVELS:
            raise ValueError(f"roast_level: {self.roast_level!r} is unknown; expected one of {list(ROAST_LEVELS)}")
        self.roast_level = _key(self.roast_level)
        for name in ("process", "origin", "variety", "product", "batch_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: {value!r} must be a non-empty string")
        self.process = _key(self.process)
        if isinstance(self.flavors, str):
            raise ValueError(f"flavors: {self.flavors!r} is one string; give a tuple of names")
        self.flavors = tuple(str(f) for f in self.flavors)
        ranges = {
            "altitude_m": (0.0, 3000.0),
            "density_g_l": (550.0, 850.0),
            "moisture_pct": (6.0, 14.0),
            "batch_kg": (0.1, 60.0),
            "charge_temp_f": (330.0, 500.0),
            "bean_temp_f": (32.0, 110.0),
            "charge_gas": (0.6, 1.0),
            "first_crack_f": (370.0, 415.0),
            "drop_temp_f": (380.0, 450.0),
        }
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: {value!r} is not a number") from None
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{name}: {value!r} is outside the plausible range {lo:g}..{hi:g}")
            setattr(self, name, value)
        if self.drop_temp_f < self.first_crack_f - 10.0:
            raise ValueError(
                f"drop_temp_f: {self.drop_temp_f:g} °F is more than 10 °F below first_crack_f "
                f"({self.first_crack_f:g} °F); the roast would end before first crack"
            )
        nominal = MACHINES[self.machine].nominal_batch_kg
        if not 0.3 * nominal <= self.batch_kg <= 1.3 * nominal:
            raise ValueError(
                f"batch_kg: {self.batch_kg:g} kg does not suit {self.machine} "
                f"(nominal {nominal:g} kg; use 30-130% of it)"
            )


# ------------------------------------------------------------------ simulation
# The operator's policy: from the dry-end mark to just before first crack the gas comes down in
# GAS_STEPS equal steps at evenly spaced BT marks (by RoastLevel.cut_scale of the machine's
# usual reduction to Machine.crack_gas); at FCs it goes to the development gas.
DRY_END_MARK_F = 300.0  # the BT at which the operator makes the first change
LAST_STEP_BEFORE_CRACK_F = 10.0  # the last step is this far below the expected first crack
GAS_STEPS = 4
OPERATOR_WAIT_S = 60.0  # before TP the probe shows the drum, not the beans: no moves on it
AIRFLOW_STEPS = (0.35, 0.5, 0.75)  # charge, after dry end, after first crack
GAS_SLEW_PER_S = 0.005  # a hand on the gas valve: 0.5 % of full scale per second
CHARGE_POUR_S = 3.0  # beans take a few seconds to pour in and bury the probe
PROBE_AIR_SHARE = 0.06  # a buried probe still sees a little of the hot air
DRYING_RATE_PER_S = 0.0012  # drying rate constant at DRYING_REFERENCE_F for reference density
FIRST_CRACK_RATE_PER_S = 1.0 / 90.0  # crack reaction rate when the bean is at first_crack_f


def _arr(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _logger_noise(rngs: Sequence[np.random.Generator], n_samples: int, sd_f: np.ndarray) -> np.ndarray:
    """[roasts, samples] of white noise plus a slow wander (probe contact changes as beans tumble).

    Each roast draws from its own generator, so its noise does not depend on its batch mates.
    """
    white = np.stack([rng.normal(0.0, 1.0, n_samples) for rng in rngs])
    shocks = np.stack([rng.normal(0.0, 1.0, n_samples) for rng in rngs])
    phi = math.exp(-LOG_INTERVAL_S / NOISE_WANDER_S)
    shocks *= math.sqrt(1.0 - phi * phi)
    wander = np.empty_like(shocks)
    acc = np.zeros(len(rngs))
    for k in range(n_samples):  # an AR(1) filter, vectorised across roasts
        acc = phi * acc + shocks[:, k]
        wander[:, k] = acc
    return (white + wander) * np.asarray(sd_f, dtype=np.float64)[:, None]


@dataclass
class _Trace:
    """What the integrator records for one roast, before it becomes a Profile."""

    bt: np.ndarray
    et: np.ndarray
    events: dict[str, float] = field(default_factory=dict)


def _integrate(params: Sequence[RoastParams], seeds: Sequence[int], states: dict | None = None) -> list[_Trace]:
    """Integrate all roasts together; each array element is one roast.

    `states`, when given, receives the per-second internal state ([n, samples] arrays of bean,
    drum, air, water, gas, evap, crack) for inspection and the docs.
    """
    n = len(params)
    machines = [MACHINES[p.machine] for p in params]
    levels = [ROAST_LEVELS[p.roast_level] for p in params]
    n_samples = int(MAX_ROAST_S / LOG_INTERVAL_S) + 1

    # Logged noise is drawn per roast from its own seed, so a roast does not depend on its batch.
    rngs = [np.random.default_rng(seed) for seed in seeds]
    noise_sd = _arr([m.noise_f for m in machines])
    noise_bt = _logger_noise(rngs, n_samples, noise_sd)
    noise_et = _logger_noise(rngs, n_samples, 2.0 * noise_sd)  # ET swings more in the air stream

    load = _arr([p.batch_kg / m.nominal_batch_kg for p, m in zip(params, machines, strict=True)])
    # Denser (harder, high-grown) beans: less surface per unit heat capacity, tighter cell walls.
    density_ratio = _arr([REFERENCE_DENSITY_G_L / p.density_g_l for p in params])
    uptake = density_ratio**0.5
    drying = DRYING_RATE_PER_S * density_ratio**1.5
    air_coeff = _arr([m.air_coeff for m in machines]) * uptake
    drum_coeff = _arr([m.drum_coeff for m in machines]) * uptake
    air_tau = _arr([m.air_tau_s for m in machines])
    drum_tau = _arr([m.drum_tau_s for m in machines])
    cools_air = _arr([m.bean_cools_air for m in machines]) * load
    cools_drum = _arr([m.bean_cools_drum for m in machines]) * load
    burner_gain = _arr([m.burner_gain_f for m in machines])
    probe_tau = _arr([m.probe_tau_s for m in machines])
    charge_gas = _arr([p.charge_gas for p in params])
    crack_gas = 1.0 - (1.0 - _arr([m.crack_gas for m in machines])) * _arr([lv.cut_scale for lv in levels])
    gas_drop_per_step = (1.0 - crack_gas) * charge_gas / GAS_STEPS
    # Never more gas after FCs than before it: that would bend the RoR back up (a "flick").
    dev_gas = np.minimum(_arr([m.development_gas + lv.development_boost for m, lv in zip(machines, levels, strict=True)]),
                         crack_gas) * charge_gas
    min_dev = _arr([lv.min_development_s for lv in levels])
    first_crack = _arr([p.first_crack_f for p in params])
    drop_temp = _arr([p.drop_temp_f for p in params])
    ambient = _arr([p.bean_temp_f for p in params])
    moisture0 = _arr([p.moisture_pct / (100.0 - p.moisture_pct) for p in params])  # dry basis
    dry_end_moisture = EQUILIBRIUM_MOISTURE + (1 - DRY_END_MOISTURE_FRACTION) * (moisture0 - EQUILIBRIUM_MOISTURE)
    inv_ref_k = 1.0 / ((DRYING_REFERENCE_F - 32.0) / 1.8 + 273.15)

    # State. Before CHARGE the drum, its air and the probe sit at the preheat temperature.
    charge = _arr([p.charge_temp_f for p in params])
    bean = ambient.copy()
    air = charge.copy()
    drum = charge.copy()
    probe = charge.copy()
    water = moisture0.copy()
    crack = np.zeros(n)
    gas = charge_gas.copy()
    gas_target = charge_gas.copy()
    airflow = np.full(n, AIRFLOW_STEPS[0])

    bt_true = np.empty((n, n_samples))
    et_true = np.empty((n, n_samples))
    bt_true[:, 0], et_true[:, 0] = probe, air
    t_dry = np.full(n, np.nan)
    t_fcs = np.full(n, np.nan)
    t_fce = np.full(n, np.nan)
    dropped_at = np.full(n, -1)
    gas_steps_taken = np.zeros(n)
    past_crack = np.zeros(n, dtype=bool)
    active = np.ones(n, dtype=bool)

    # Per-step constants, hoisted out of the loop (it runs ~4000 times).
    dt = DT_S
    gas_step = GAS_SLEW_PER_S * dt
    air_rate = dt / air_tau
    drum_rate = dt / drum_tau
    drum_load_rate = dt * cools_drum
    probe_rate = dt / probe_tau
    drying_c0 = DRYING_ACTIVATION_K * inv_ref_k
    drying_c1 = DRYING_ACTIVATION_K * 1.8  # E/R over kelvin, with kelvin = (°F + 459.67) / 1.8
    crack_offset = first_crack / FIRST_CRACK_WIDTH_F
    t = 0.0
    for k in range(1, n_samples):
        # Airflow only changes on the operator's once-a-second moves.
        inlet_gain = burner_gain * (1.0 - 0.3 * (airflow - 0.5))  # more air dilutes the flame
        air_coeff_now = air_coeff * np.sqrt(airflow + 0.5)  # and scrubs the beans harder
        for _ in range(STEPS_PER_SAMPLE):
            t += dt
            gas += np.minimum(np.maximum(gas_target - gas, -gas_step), gas_step)
            air += air_rate * (ambient + inlet_gain * gas - air - cools_air * (air - bean))
            drum += drum_rate * (air - drum) - drum_load_rate * (drum - bean)
            evap = drying * np.maximum(water - EQUILIBRIUM_MOISTURE, 0.0) * np.exp(
                drying_c0 - drying_c1 / (bean + 459.67))
            crack_rate = FIRST_CRACK_RATE_PER_S * (1.0 - crack) * np.exp(
                np.minimum(bean / FIRST_CRACK_WIDTH_F - crack_offset, 3.0))
            heat = (air_coeff_now * (air - bean) + drum_coeff * (drum - bean)
                    - LATENT_HEAT_F * evap + FIRST_CRACK_HEAT_F * crack_rate)
            bean += dt * heat / (1.0 + WATER_TO_DRY_HEAT_CAPACITY * water)
            water -= dt * evap
            crack += dt * crack_rate
            # Until the beans have poured in, the probe sees the hot drum air.
            exposed = 1.0 - min(t / CHARGE_POUR_S, 1.0) * (1.0 - PROBE_AIR_SHARE)
            probe += probe_rate * (bean + exposed * (air - bean) - probe)

        bt_true[:, k], et_true[:, k] = probe, air
        if states is not None:
            for name, value in (("bean", bean), ("drum", drum), ("air", air), ("water", water),
                                ("gas", gas), ("evap", evap), ("crack", crack)):
                states.setdefault(name, np.full((n, n_samples), np.nan))[:, k] = value
        now = k * LOG_INTERVAL_S
        logged = np.round(probe + noise_bt[:, k], LOGGER_DECIMALS)

        # Events the simulation knows exactly (the bean state, not the lagging probe).
        newly = active & np.isnan(t_dry) & (water <= dry_end_moisture)
        t_dry[newly] = now
        newly = active & np.isnan(t_fcs) & (bean >= first_crack)
        t_fcs[newly] = now
        newly = active & np.isnan(t_fce) & (crack >= FIRST_CRACK_END_EXTENT)
        t_fce[newly] = now

        # The operator's moves, on what the logger shows.
        step_span = (first_crack - LAST_STEP_BEFORE_CRACK_F - DRY_END_MARK_F) / (GAS_STEPS - 1)
        mark = DRY_END_MARK_F + gas_steps_taken * step_span
        step = (active & (gas_steps_taken < GAS_STEPS) & (logged >= mark) & (now > OPERATOR_WAIT_S)
                & np.isnan(t_fcs))
        gas_steps_taken[step] += 1
        gas_target[step] -= gas_drop_per_step[step]
        airflow[step & (gas_steps_taken == 1)] = AIRFLOW_STEPS[1]
        step = active & ~past_crack & ~np.isnan(t_fcs)
        gas_target[step] = dev_gas[step]
        airflow[step] = AIRFLOW_STEPS[2]
        past_crack |= step

        drop = active & ~np.isnan(t_fcs) & (logged >= drop_temp) & (now - t_fcs >= min_dev)
        dropped_at[drop] = k
        active &= ~drop
        if not active.any():
            break

    traces = []
    for i in range(n):
        end = int(dropped_at[i])
        if end < 0:
            end = k
            log.warning("roast %d (%s, %s) never reached %.0f °F; dropped at the %.0f s cap",
                        i, params[i].machine, params[i].roast_level, drop_temp[i], end * LOG_INTERVAL_S)
        bt = np.round(bt_true[i, : end + 1] + noise_bt[i, : end + 1], LOGGER_DECIMALS)
        et = np.round(et_true[i, : end + 1] + noise_et[i, : end + 1], LOGGER_DECIMALS)
        events = {}
        tp = find_turning_point(bt_true[i, : end + 1], LOG_INTERVAL_S)
        if tp is not None:
            events["TP"] = tp[0]
        for name, when in (("DRY_END", t_dry[i]), ("FCs", t_fcs[i]), ("FCe", t_fce[i])):
            if np.isfinite(when) and when <= end * LOG_INTERVAL_S:
                events[name] = float(when)
        events["DROP"] = end * LOG_INTERVAL_S
        traces.append(_Trace(bt=bt, et=et, events=events))
    return traces


def simulate_batch(params: Sequence[RoastParams], seeds: Sequence[int]) -> list[Profile]:
    """Simulate several roasts at once (vectorised); roast i depends only on params[i], seeds[i]."""
    params = list(params)
    seeds = [int(s) for s in seeds]
    if len(params) != len(seeds):
        raise ValueError(f"seeds: {len(seeds)} seeds for {len(params)} params; give one per roast")
    if not params:
        return []
    for i, p in enumerate(params):
        if not isinstance(p, RoastParams):
            raise TypeError(f"params[{i}]: expected RoastParams, got {type(p).__name__}")
    traces = _integrate(params, seeds)
    return [Profile(bt=tr.bt, interval_s=LOG_INTERVAL_S, et=tr.et, events=tr.events, meta=_meta(p))
            for p, tr in zip(params, traces, strict=True)]


def simulate_profile(params: RoastParams, seed: int = 0) -> Profile:
    """One simulated roast: BT every second from CHARGE to DROP, events and metadata filled."""
    return simulate_batch([params], [seed])[0]


def _meta(p: RoastParams) -> ProfileMeta:
    return ProfileMeta(
        origin=p.origin, process=p.process, variety=p.variety, roast_level=p.roast_level,
        flavors=p.flavors, roaster=p.machine, charge_temp_f=p.charge_temp_f,
        target_finish_f=p.drop_temp_f, altitude_m=p.altitude_m, density=p.density_g_l,
        weight_g=round(p.batch_kg * 1000.0, 1), batch_id=p.batch_id, product=p.product,
    )


# ------------------------------------------------------------------ sampling
def _choice(rng: np.random.Generator, options: dict, attr: str = "weight"):
    names = list(options)
    weights = np.array([getattr(options[k], attr) for k in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _sample_flavors(rng: np.random.Generator, roast_level: str, process: str) -> tuple[str, ...]:
    """2-4 notes: roast level sets the categories' base weights, the process tilts them."""
    weights = np.array(_LEVEL_FLAVOR_WEIGHTS[roast_level], dtype=float)
    bias = PROCESSES[process].flavor_bias if process in PROCESSES else {}
    for category, extra in bias.items():
        weights[FLAVOR_CATEGORIES.index(category)] += extra * weights.max() / 2.0
    k = min(int(rng.integers(2, 5)), int((weights > 0).sum()))
    picked = rng.choice(len(FLAVOR_CATEGORIES), size=k, replace=False, p=weights / weights.sum())
    notes = []
    for i in sorted(picked):
        options = FLAVOR_NOTES[FLAVOR_CATEGORIES[i]]
        notes.append(options[int(rng.integers(len(options)))])
    return tuple(notes)


@dataclass(frozen=True)
class _Product:
    """A coffee as sold: what every batch of it shares."""

    name: str
    origin: str
    variety: str
    process: str
    altitude_m: float
    density_g_l: float
    moisture_pct: float
    roast_level: str
    machine: str
    drop_temp_f: float
    flavors: tuple[str, ...]
    # The roaster's recipe for this coffee; batches repeat it closely.
    load: float  # share of the machine's nominal batch
    charge_gas: float
    charge_temp_f: float


def _sample_product(rng: np.random.Generator, lot: int) -> _Product:
    origin, (alt_lo, alt_hi), varieties, regions = ORIGINS[int(rng.integers(len(ORIGINS)))]
    process = _choice(rng, PROCESSES)
    roast_level = _choice(rng, ROAST_LEVELS)
    machine = _choice(rng, MACHINES)
    altitude = float(np.round(rng.uniform(alt_lo, alt_hi), -1))
    # High-grown coffee matures slowly and is denser (free-settled green density, g/l).
    density = float(np.clip(610.0 + 0.05 * altitude + rng.normal(0.0, 15.0), 620.0, 790.0))
    mean, sd = PROCESSES[process].moisture_pct
    moisture = float(np.clip(rng.normal(mean, sd), 8.5, 12.8))
    level = ROAST_LEVELS[roast_level]
    drop = float(np.round(level.drop_temp_f + rng.normal(0.0, 2.5)))
    region = regions[int(rng.integers(len(regions)))]
    load = rng.uniform(0.8, 1.05)
    mean, sd = MACHINES[machine].charge_temp_f
    # Operators charge bigger batches hotter so the drum does not collapse under the load.
    charge = mean + level.charge_offset_f + 40.0 * (load - 0.9) + rng.normal(0.0, sd)
    return _Product(
        name=f"{origin} {region} {process.title()} #{lot}", origin=origin,
        variety=varieties[int(rng.integers(len(varieties)))], process=process,
        altitude_m=altitude, density_g_l=round(density, 1), moisture_pct=round(moisture, 2),
        roast_level=roast_level, machine=machine, drop_temp_f=drop,
        flavors=_sample_flavors(rng, roast_level, process), load=load,
        charge_gas=float(np.clip(level.charge_gas + rng.normal(0.0, 0.02),
                                 level.charge_gas - 0.03, level.charge_gas + 0.03)),
        charge_temp_f=float(np.clip(charge, 355.0, 470.0)),
    )


def _sample_batch(rng: np.random.Generator, product: _Product, batch_id: str) -> RoastParams:
    """One batch of a product: the recipe repeated, with the small day-to-day differences."""
    machine = MACHINES[product.machine]
    return RoastParams(
        machine=product.machine, roast_level=product.roast_level, process=product.process,
        origin=product.origin, variety=product.variety, altitude_m=product.altitude_m,
        density_g_l=product.density_g_l,
        moisture_pct=round(float(np.clip(product.moisture_pct + rng.normal(0.0, 0.15), 8.0, 13.0)), 2),
        batch_kg=round(machine.nominal_batch_kg * (product.load + rng.normal(0.0, 0.01)), 2),
        charge_temp_f=round(product.charge_temp_f + rng.normal(0.0, 3.0), 1),
        bean_temp_f=round(float(np.clip(rng.normal(70.0, 4.0), 55.0, 90.0)), 1),
        charge_gas=round(product.charge_gas + rng.normal(0.0, 0.005), 3),
        first_crack_f=round(float(385.0 + 0.03 * (product.density_g_l - 700.0) + rng.normal(0.0, 1.5)), 1),
        drop_temp_f=product.drop_temp_f, flavors=product.flavors, product=product.name,
        batch_id=batch_id,
    )


def sample_params(rng: np.random.Generator) -> RoastParams:
    """One roast of a freshly drawn coffee, with the default dataset's distributions."""
    product = _sample_product(rng, lot=int(rng.integers(1, 10_000)))
    return _sample_batch(rng, product, batch_id=f"sim-{int(rng.integers(10**8)):08d}")


def dataset_params(n: int = 200, seed: int = 0) -> tuple[list[RoastParams], list[int]]:
    """The parameters and noise seeds behind `generate_dataset(n, seed)`, roast by roast.

    Coffees come in runs of 2-4 batches that share a `product` (and its bean, level, machine and
    target finish); batches differ in load, preheat, gas, green-bean temperature and noise.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: {n!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    params: list[RoastParams] = []
    lot = 0
    while len(params) < n:
        lot += 1
        product = _sample_product(rng, lot)
        for _ in range(int(rng.integers(2, 5))):
            if len(params) == n:
                break
            params.append(_sample_batch(rng, product, batch_id=f"sim{seed}-{len(params):04d}"))
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]
    return params, seeds


def generate_dataset(n: int = 200, seed: int = 0) -> list[Profile]:
    """`n` simulated roasts, deterministic for `seed` (see `dataset_params`)."""
    params, seeds = dataset_params(n, seed)
    log.info("simulating %d roasts (seed %s)", n, seed)
    return simulate_batch(params, seeds)


# ------------------------------------------------------------------ calibration
# Where onyx-dev has no marks (first crack), the table compares with the domain range instead.
DOMAIN_RANGES: dict[str, tuple[float, float]] = {
    "fcs_temp_f": (385.0, 400.0),
    "fcs_time_min": (7.0, 13.0),
}
CALIBRATION_METRICS = (
    "charge_f", "tp_temp_f", "tp_time_s", "fcs_temp_f", "fcs_time_min", "duration_min",
    "drop_f", "peak_ror", "final_ror",
)


def roast_stats(profile: Profile) -> dict[str, float]:
    """The quantities the calibration compares, for one real or simulated roast (NaN if unknown)."""
    bt = profile.bt
    ror = rate_of_rise(bt, profile.interval_s)
    tp = profile.turning_point()
    start = 0 if tp is None else int(round(tp[0] / profile.interval_s))
    fcs = profile.events.get("FCs")
    return {
        "charge_f": profile.charge_f,
        "tp_temp_f": np.nan if tp is None else tp[1],
        "tp_time_s": np.nan if tp is None else tp[0],
        "fcs_temp_f": np.nan if fcs is None else float(np.interp(fcs, profile.times_s, bt)),
        "fcs_time_min": np.nan if fcs is None else fcs / 60.0,
        "duration_min": profile.duration_s / 60.0,
        "drop_f": profile.finish_f,
        "peak_ror": float(ror[start:].max()),
        "final_ror": float(ror[-1]),
    }


def calibration_table(synthetic: Sequence[Profile], real: Sequence[Profile]):
    """Synthetic vs real quantiles (5/50/95 %) and the real min/max, one row per metric.

    Returns a pandas DataFrame indexed by metric. Rows the real data cannot fill (no FCs marks)
    carry the domain range from DOMAIN_RANGES as real_min/real_max and say so in `reference`.
    """
    import pandas as pd  # only the calibration needs pandas

    syn = pd.DataFrame([roast_stats(p) for p in synthetic], columns=list(CALIBRATION_METRICS))
    ref = pd.DataFrame([roast_stats(p) for p in real], columns=list(CALIBRATION_METRICS))
    rows = []
    for metric in CALIBRATION_METRICS:
        s, r = syn[metric].dropna(), ref[metric].dropna()
        row = {"metric": metric, "n_syn": len(s), "n_real": len(r)}
        for q in (5, 50, 95):
            row[f"syn_p{q}"] = float(np.percentile(s, q)) if len(s) else np.nan
        if len(r):
            for q in (5, 50, 95):
                row[f"real_p{q}"] = float(np.percentile(r, q))
            row["real_min"], row["real_max"] = float(r.min()), float(r.max())
            row["reference"] = "real"
        elif metric in DOMAIN_RANGES:
            row["real_min"], row["real_max"] = DOMAIN_RANGES[metric]
            row["reference"] = "domain range"
        rows.append(row)
    cols = ["n_syn", "syn_p5", "syn_p50", "syn_p95", "n_real", "real_min", "real_p5", "real_p50",
            "real_p95", "real_max", "reference"]
    return pd.DataFrame(rows).set_index("metric").reindex(columns=cols)


def calibration_markdown(table) -> str:
    """The calibration table as a Markdown table (what docs/simulator.md shows)."""
    cols = ["syn_p5", "syn_p50", "syn_p95", "real_min", "real_p5", "real_p50", "real_p95", "real_max"]
    lines = ["| metric | " + " | ".join(cols) + " | reference |", "|---" * (len(cols) + 2) + "|"]
    for metric, row in table.iterrows():
        cells = ["" if not np.isfinite(row[c]) else f"{row[c]:.1f}" for c in cols]
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {row['reference']} |")
    return "\n".join(lines)

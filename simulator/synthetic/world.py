"""The fixed world the synthetic generator draws payments from.

A catalogue of card countries, brands, funding types, channels and merchant
category codes (MCC), each with the offsets it adds to the fraud log-odds and
to the issuer's approval log-odds, plus a book of merchants drawn once from the
seed. The numbers are made up but shaped like a European/US card-not-present
book: US-heavy Zipf-like country volume, a handful of high-fraud countries,
prepaid cards riskier and declined more, electronics, jewelry, travel,
gambling and digital goods riskier than groceries and restaurants, and a
heavy-tailed merchant volume.

Everything here is a table; `simulator.synthetic.model` turns the tables into
per-row probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# code, fraud log-odds offset, approval log-odds offset. Volume follows the order
# of the list: weight 1 / rank**COUNTRY_ZIPF (US ~29 %, GB ~14 %, ... RO ~0.7 %).
# fmt: off
COUNTRIES: tuple[tuple[str, float, float], ...] = (
    ("US", 0.0, 0.3), ("GB", -0.1, 0.2), ("DE", -0.4, 0.3), ("FR", -0.2, 0.2),
    ("BR", 0.9, -0.5), ("CA", 0.0, 0.2), ("AU", 0.0, 0.2), ("ES", -0.1, 0.1),
    ("IT", 0.0, 0.0), ("NL", -0.4, 0.3), ("MX", 0.8, -0.6), ("JP", -0.3, 0.1),
    ("IN", 0.5, -0.7), ("SE", -0.5, 0.3), ("CH", -0.4, 0.3), ("BE", -0.3, 0.2),
    ("PL", 0.0, 0.0), ("IE", 0.0, 0.1), ("AT", -0.3, 0.2), ("DK", -0.5, 0.3),
    ("NO", -0.5, 0.3), ("SG", -0.1, 0.2), ("CN", 0.4, -0.4), ("HK", 0.2, 0.0),
    ("AE", 0.3, -0.2), ("TR", 0.7, -0.5), ("NG", 1.6, -1.0), ("ID", 1.1, -0.6),
    ("PH", 1.0, -0.5), ("RO", 0.9, -0.4),
)
# fmt: on
COUNTRY_ZIPF = 1.1

# brand, share in most countries, approval log-odds offset.
BRANDS: tuple[tuple[str, float, float], ...] = (
    ("visa", 0.56, 0.0),
    ("mastercard", 0.33, 0.0),
    ("amex", 0.07, 0.2),
    ("discover", 0.02, -0.3),
    ("jcb", 0.01, -0.2),
    ("unionpay", 0.01, -0.5),
)
# Countries whose brand mix differs from the default (shares in BRANDS order).
BRAND_MIX: dict[str, tuple[float, ...]] = {
    "US": (0.52, 0.26, 0.14, 0.07, 0.005, 0.005),
    "JP": (0.40, 0.20, 0.05, 0.0, 0.35, 0.0),
    "CN": (0.25, 0.17, 0.03, 0.0, 0.0, 0.55),
    "HK": (0.45, 0.30, 0.07, 0.0, 0.03, 0.15),
}

# funding, share, fraud offset, approval offset.
FUNDINGS: tuple[tuple[str, float, float, float], ...] = (
    ("credit", 0.55, 0.0, 0.2),
    ("debit", 0.38, -0.3, 0.0),
    ("prepaid", 0.07, 1.0, -0.9),
)

# channel, fraud offset, approval offset; the moto share depends on the MCC.
CHANNELS: tuple[tuple[str, float, float], ...] = (("ecommerce", 0.0, 0.0), ("moto", 0.3, -0.2))

# mcc, description, volume weight, median amount, sigma of log(amount),
# fraud offset, share of moto (mail/telephone order) payments.
MCCS: tuple[tuple[str, str, float, float, float, float, float], ...] = (
    ("5411", "grocery stores", 12, 45, 0.8, -0.9, 0.02),
    ("5812", "restaurants", 9, 32, 0.7, -0.8, 0.08),
    ("5814", "fast food", 7, 12, 0.5, -0.9, 0.02),
    ("5311", "department stores", 6, 70, 0.9, 0.0, 0.08),
    ("5651", "family clothing", 7, 60, 0.8, 0.1, 0.05),
    ("5732", "electronics", 5, 180, 1.0, 0.8, 0.10),
    ("5999", "miscellaneous retail", 7, 45, 1.0, 0.2, 0.10),
    ("5942", "book stores", 2, 22, 0.6, -0.4, 0.05),
    ("5815", "digital goods: media", 6, 9, 0.8, 0.5, 0.0),
    ("5816", "digital goods: games", 4, 14, 1.0, 0.9, 0.0),
    ("5817", "digital goods: applications", 4, 12, 0.9, 0.5, 0.0),
    ("4722", "travel agencies", 3, 420, 0.9, 0.7, 0.35),
    ("4511", "airlines", 3, 330, 0.8, 0.6, 0.30),
    ("7011", "hotels", 4, 190, 0.8, 0.2, 0.45),
    ("4121", "taxis and ride sharing", 5, 18, 0.6, -0.2, 0.08),
    ("5944", "jewelry", 1, 550, 1.1, 1.1, 0.25),
    ("7995", "gambling", 2, 55, 1.2, 1.2, 0.02),
    ("4814", "telecom services", 4, 40, 0.6, -0.1, 0.35),
    ("4899", "cable and streaming", 4, 14, 0.4, -0.5, 0.05),
    ("5912", "drug stores", 3, 28, 0.7, -0.4, 0.05),
    ("8999", "professional services", 2, 140, 1.1, 0.0, 0.50),
    ("5968", "subscriptions", 3, 30, 0.6, 0.3, 0.20),
)

MERCHANTS = 3000
MERCHANT_ZIPF = 1.1  # volume of a merchant within its MCC: 1 / rank**MERCHANT_ZIPF
MERCHANT_FRAUD_SD = 0.4  # sd of a merchant's fraud log-odds effect


LOOKUP_CELLS = 1 << 16


@dataclass(frozen=True, slots=True)
class Sampler:
    """Inverse-CDF lookup: `index(key)` == np.searchsorted(edges, key, side="left").

    For categorical draws over millions of rows, a binary search per key is the
    generator's hot spot. A table over `LOOKUP_CELLS` equal cells of [0, top)
    gives every key a starting index at or before its answer, and a few
    vectorised steps on the keys not yet there finish the search exactly.
    Keys must lie in [0, top) and at or below the last edge.
    """

    edges: np.ndarray
    start: np.ndarray
    scale: float

    @classmethod
    def over(cls, edges: np.ndarray, top: float) -> Sampler:
        """A sampler for sorted `edges`, keys in [0, top)."""
        scale = LOOKUP_CELLS / top
        # Start from the previous cell's lower bound: key * scale may round up a cell.
        lower = np.maximum(np.arange(LOOKUP_CELLS) - 1, 0) / scale
        return cls(edges=edges, start=np.searchsorted(edges, lower, side="left"), scale=scale)

    def index(self, key: np.ndarray) -> np.ndarray:
        """Index of the first edge >= key, for every key."""
        cell = np.minimum((key * self.scale).astype(np.int64), LOOKUP_CELLS - 1)
        pos = self.start[cell]
        moving = np.flatnonzero(self.edges[pos] < key)
        while moving.size:
            pos[moving] += 1
            moving = moving[self.edges[pos[moving]] < key[moving]]
        return pos


@dataclass(frozen=True, slots=True)
class World:
    """The catalogue as arrays, plus the merchant book drawn from the seed.

    Categories are drawn by inverse CDF with one uniform u per row:
    `country.index(u)`, `funding.index(u)`, `mcc.index(u)`; conditional draws
    use keys `2 * group + u` against edges `2 * group + cumulative share`, so
    one lookup serves all groups: `brand.index(2 * country + u) - country *
    len(BRANDS)`, `merchant_order[merchant.index(2 * mcc + u)]` (merchants
    listed grouped by MCC).
    """

    country: Sampler
    brand: Sampler
    funding: Sampler
    mcc: Sampler
    merchant: Sampler
    merchant_order: np.ndarray
    merchant_mcc: np.ndarray
    merchant_fraud: np.ndarray
    country_fraud: np.ndarray
    country_auth: np.ndarray
    brand_auth: np.ndarray
    funding_fraud: np.ndarray
    funding_auth: np.ndarray
    channel_fraud: np.ndarray
    channel_auth: np.ndarray
    mcc_log_median: np.ndarray
    mcc_log_sigma: np.ndarray
    mcc_fraud: np.ndarray
    mcc_moto: np.ndarray


def cumulative(weights: np.ndarray) -> np.ndarray:
    """Cumulative shares along the last axis, the last entry pinned to 1.0.

    Pinning guards against a draw of u close to 1 falling past the last
    category through rounding of the cumulative sum.
    """
    w = np.asarray(weights, dtype=np.float64)
    cum = np.cumsum(w / w.sum(axis=-1, keepdims=True), axis=-1)
    cum[..., -1] = 1.0
    return cum


def _grouped(cum: np.ndarray) -> Sampler:
    """Sampler over keys 2 * group + u for a (groups, k) cumulative table."""
    n_groups = cum.shape[0]
    return Sampler.over((2.0 * np.arange(n_groups)[:, None] + cum).ravel(), 2.0 * n_groups)


def _brand_sampler() -> Sampler:
    """Brand mix by country: BRAND_MIX or the default shares."""
    default = [share for _, share, _ in BRANDS]
    mixes = [BRAND_MIX.get(code, default) for code, _, _ in COUNTRIES]
    return _grouped(cumulative(np.array(mixes)))


def _merchant_book(rng: np.random.Generator) -> dict[str, object]:
    """Draw each merchant's MCC, fraud effect and volume rank within its MCC.

    The first len(MCCS) merchants cover every MCC once, so no MCC is empty;
    the rest get an MCC with probability proportional to its volume weight.
    """
    n_mcc = len(MCCS)
    mcc_weight = np.array([m[2] for m in MCCS], dtype=np.float64)
    extra = rng.choice(n_mcc, size=MERCHANTS - n_mcc, p=mcc_weight / mcc_weight.sum())
    merchant_mcc = rng.permutation(np.concatenate([np.arange(n_mcc), extra]))
    merchant_fraud = rng.normal(0.0, MERCHANT_FRAUD_SD, size=MERCHANTS)
    # A random rank within the MCC; merchant ids carry no volume information.
    order = np.lexsort((rng.random(MERCHANTS), merchant_mcc))
    sorted_mcc = merchant_mcc[order]
    rank = np.arange(MERCHANTS) - np.searchsorted(sorted_mcc, sorted_mcc, side="left") + 1
    weight = rank.astype(np.float64) ** -MERCHANT_ZIPF
    total = np.bincount(sorted_mcc, weights=weight, minlength=n_mcc)
    share = (np.cumsum(weight) - np.concatenate([[0.0], np.cumsum(total)])[sorted_mcc]) / total[sorted_mcc]
    share[np.r_[sorted_mcc[1:] != sorted_mcc[:-1], True]] = 1.0  # last of each MCC
    return {
        "merchant": Sampler.over(2.0 * sorted_mcc + share, 2.0 * n_mcc),
        "merchant_order": order.astype(np.int32),
        "merchant_mcc": merchant_mcc.astype(np.int32),
        "merchant_fraud": merchant_fraud,
    }


def build_world(seed_sequence: np.random.SeedSequence) -> World:
    """The catalogue as arrays and a merchant book drawn from `seed_sequence`."""
    rank = np.arange(1, len(COUNTRIES) + 1, dtype=np.float64)
    return World(
        country=Sampler.over(cumulative(rank**-COUNTRY_ZIPF), 1.0),
        brand=_brand_sampler(),
        funding=Sampler.over(cumulative(np.array([f[1] for f in FUNDINGS])), 1.0),
        mcc=Sampler.over(cumulative(np.array([m[2] for m in MCCS])), 1.0),
        country_fraud=np.array([c[1] for c in COUNTRIES]),
        country_auth=np.array([c[2] for c in COUNTRIES]),
        brand_auth=np.array([b[2] for b in BRANDS]),
        funding_fraud=np.array([f[2] for f in FUNDINGS]),
        funding_auth=np.array([f[3] for f in FUNDINGS]),
        channel_fraud=np.array([c[1] for c in CHANNELS]),
        channel_auth=np.array([c[2] for c in CHANNELS]),
        mcc_log_median=np.log([m[3] for m in MCCS]),
        mcc_log_sigma=np.array([m[4] for m in MCCS]),
        mcc_fraud=np.array([m[5] for m in MCCS]),
        mcc_moto=np.array([m[6] for m in MCCS]),
        **_merchant_book(np.random.default_rng(seed_sequence)),  # type: ignore[arg-type]
    )

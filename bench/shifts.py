"""Covariate shifts built from ../shared/data for bench/estimation_bench.py: each split is made on
something other than the label (time, brand, length, style, held-back intents, typos), plus the
same-distribution splits. Each scenario returns (x_fit, y_fit, x_monitored, y_monitored) with a
``text`` column and string labels; ``model`` names the scenario whose model it reuses."""
from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from quality_bench import SHARED, load
from textops import inputs


@dataclass(frozen=True)
class Scenario:
    name: str
    shifted: bool
    what: str
    build: Callable[[], tuple]
    model: str | None = None  # reuse this scenario's model (same training data)
    concept: bool = False  # labels changed, texts not: no label-free estimator can see it


def _twcs() -> pd.DataFrame:
    return inputs.read_table(SHARED / "twcs" / "twcs_head5k.csv")


def twcs_time():
    frame = _twcs()
    first, last = frame.iloc[:4000], frame.iloc[4000:]
    return first[["text"]], first["inbound"], last[["text"]], last["inbound"]


def brand_of(frame: pd.DataFrame) -> pd.Series:
    """The brand of each tweet's conversation: a brand's own handle for its replies, the first
    brand it mentions for a customer's tweet (None when it names none)."""
    brands = set(frame.loc[~frame["author_id"].str.isdigit(), "author_id"])
    lookup = {b.lower(): b for b in brands}

    def one(row) -> str | None:
        if row["author_id"] in brands:
            return row["author_id"]
        for handle in re.findall(r"@(\w+)", row["text"]):
            if handle.lower() in lookup:
                return lookup[handle.lower()]
        return None

    return frame.apply(one, axis=1)


def twcs_brand():
    """Trained on the ten busiest brands' conversations, monitored on every other brand's."""
    frame = _twcs()
    brand = brand_of(frame)
    top = set(brand.value_counts().head(10).index)
    seen, other = frame[brand.isin(top)], frame[brand.notna() & ~brand.isin(top)]
    return seen[["text"]], seen["inbound"], other[["text"]], other["inbound"]


def perturb(texts: pd.Series, seed: int = 0) -> pd.Series:
    """Typos and noise stronger than make_tweets.py's: 30 % of words dropped, 15 % of longer words
    with a wrong letter, a fresh @handle on 60 % of rows."""
    rng = random.Random(seed)

    def rid(k: int) -> str:
        return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(k))

    def typo(word: str) -> str:
        if len(word) > 3 and rng.random() < 0.15:
            i = rng.randrange(len(word))
            return word[:i] + rng.choice(string.ascii_lowercase) + word[i + 1:]
        return word

    out = []
    for text in texts:
        words = [typo(w) for w in str(text).split() if rng.random() > 0.3] or str(text).split()
        if rng.random() < 0.6:
            words.insert(0, "@" + rid(rng.randint(5, 12)))
        out.append(" ".join(words))
    return pd.Series(out, index=texts.index)


def twcs_typos():
    x_fit, y_fit, x_mon, y_mon = load("twcs")
    return x_fit, y_fit, pd.DataFrame({"text": perturb(x_mon["text"])}), y_mon


def _sms() -> pd.DataFrame:
    return inputs.read_table(SHARED / "sms_spam" / "sms_spam.csv")


def sms_length():
    """Trained on the shorter half of the messages, monitored on the longer half."""
    frame = _sms()
    short = frame["text"].str.len() <= frame["text"].str.len().median()
    return frame[short][["text"]], frame[short]["label"], frame[~short][["text"]], \
        frame[~short]["label"]


def sms_digits():
    """Sender style: trained on messages without a digit, monitored on messages with one."""
    frame = _sms()
    digits = frame["text"].str.contains(r"\d")
    return frame[~digits][["text"]], frame[~digits]["label"], frame[digits][["text"]], \
        frame[digits]["label"]


HELD_BACK = 16  # the first 16 card intents (sorted): about a fifth of BANKING77's test rows


def banking_held_back():
    """A group of related intents (card_*) never seen in training, then mixed into the
    monitored rows at their natural share: those rows cannot be right."""
    x_fit, y_fit, x_mon, y_mon = load("banking77")
    cards = sorted(c for c in set(y_fit) if "card" in c)[:HELD_BACK]
    keep = ~y_fit.isin(cards)
    return x_fit[keep], y_fit[keep], x_mon, y_mon


def sms_concept(flip: float = 0.3):
    """The SMS 80/20 monitored part with 30 % of its labels flipped: concept shift."""
    import numpy as np

    x_fit, y_fit, x_mon, y_mon = load("sms")
    labels = sorted(set(y_mon))
    chosen = np.random.default_rng(0).random(len(y_mon)) < flip
    flipped = y_mon.copy()
    flipped[chosen] = [labels[1 - labels.index(v)] for v in y_mon[chosen]]
    return x_fit, y_fit, x_mon, flipped


def _prior_shift(x_fit, y_fit, x_mon, y_mon, label, share, seed=0):
    """The monitored part resampled (without replacement) so that ``label`` makes ``share`` of
    it: the classes' shares move, what each class looks like does not (label shift)."""
    import numpy as np

    y = np.asarray(y_mon).astype(str)
    rng = np.random.default_rng(seed)
    mine, rest = np.flatnonzero(y == label), np.flatnonzero(y != label)
    if len(mine) / share < len(y):  # keep every row of the class, fewer of the others
        rest = rng.choice(rest, int(len(mine) * (1 - share) / share), replace=False)
    else:
        mine = rng.choice(mine, int(len(rest) * share / (1 - share)), replace=False)
    keep = np.sort(np.r_[mine, rest])
    return x_fit, y_fit, x_mon.iloc[keep], y_mon.iloc[keep]


def sms_prior():
    """SMS 80/20, the monitored part resampled to half spam (13 % in the data)."""
    return _prior_shift(*load("sms"), "spam", 0.5)


def twcs_prior():
    """twcs 80/20, the monitored part resampled to 85 % customer tweets (inbound True)."""
    return _prior_shift(*load("twcs"), "True", 0.85)


SCENARIOS = [
    Scenario("sms", False, "SMS spam, stratified 80/20", lambda: load("sms")),
    Scenario("twcs", False, "twcs_head5k, stratified 80/20", lambda: load("twcs")),
    Scenario("banking77", False, "BANKING77 official train -> test", lambda: load("banking77")),
    Scenario("twcs-time", True, "twcs first 4,000 -> last 1,000 (later tweets)", twcs_time),
    Scenario("twcs-brand", True, "twcs: ten busiest brands -> the other brands", twcs_brand),
    Scenario("twcs-typos", True, "twcs 80/20, monitored part with typos and dropped words",
             twcs_typos, model="twcs"),
    Scenario("sms-length", True, "SMS: shorter half -> longer half", sms_length),
    Scenario("sms-digits", True, "SMS: messages without digits -> with digits", sms_digits),
    Scenario("banking77-held-back", True, f"BANKING77 without {HELD_BACK} card intents -> "
             f"official test (all intents)", banking_held_back),
    Scenario("sms-prior", True, "SMS 80/20, monitored part resampled to half spam (label shift)",
             sms_prior, model="sms"),
    Scenario("twcs-prior", True, "twcs 80/20, monitored part resampled to 85 % inbound (label "
             "shift)", twcs_prior, model="twcs"),
    Scenario("sms-concept", True, "SMS 80/20 with 30 % of the monitored labels flipped",
             sms_concept, model="sms", concept=True),
]

"""A deterministic, fully SYNTHETIC named-entity corpus for demos and smoke tests.

Nothing here comes from a real corpus: sentences are produced by code from a few
dozen templates (news-wire flavoured: "<PER> visited <LOC> on Monday .",
"<ORG> shares rose 3 % in <LOC> .") whose slots are filled from small built-in lists
of *invented* people, places, organisations and miscellaneous names. Labels are
IO-style: ``PER``, ``ORG``, ``LOC``, ``MISC`` and ``O``, as in the CS224N CoNLL-2003
files, so the same pipeline (vocabulary, window features, metrics) runs on it.

It is built to be learnable by a window classifier but not trivially:

* capitalisation and the neighbouring words are the main cues;
* some words are ambiguous: ``Marlow`` is both a surname and a town, ``Kessa`` a
  first name and part of the event ``Kessa Cup``, and town names appear inside
  organisation names (``Dorvik United`` is ORG);
* some sentences start with capitalised ordinary words, some are all upper-case
  headlines, some contain no entity at all;
* about a quarter of every name list is held out of training and used only in the
  dev set, so dev contains unseen names.

Use :func:`generate_corpus`; the output depends only on its arguments.
"""

from __future__ import annotations

import numpy as np

from .data import Sentence

__all__ = ["generate_corpus"]

# --- invented name lists (the last quarter of each is dev-only) ---------------
_FIRST = [
    "Arlen", "Bexa", "Corvin", "Dalia", "Emric", "Fenna", "Garrow", "Halis", "Ilsa",
    "Joren", "Kessa", "Lirien", "Mado", "Nerys", "Oskel", "Pella", "Quorin", "Rasha",
    "Soren", "Tavi", "Ulla", "Varen", "Wyla", "Yorik",
]
_LAST = [
    "Vantrell", "Okonde", "Marlow", "Brisk", "Tallow", "Denhart", "Quillon", "Ferreby",
    "Astley", "Morvane", "Kettering", "Olusaya", "Halvorsen", "Prenn", "Dassault-Reyes",
    "McAlder", "Lindqvast", "Ruvane", "Stroud", "Ebbing",
]
_TOWN = [
    "Dorvik", "Marlow", "Kessington", "Velmora", "Ostrand", "Lunhaven", "Carradine",
    "Brellin", "Saltmere", "Tarvos", "Quenby", "Ardmoor", "Fennick", "Galloway Cross",
    "Port Alder", "Nimhurst",
]
_COUNTRY = [
    "Norvala", "Estrelia", "Kaldonia", "Vesmark", "Oruna", "Talvonia", "Brisca",
    "Zemoria",
]
_NATIONALITY = [  # MISC, aligned with _COUNTRY
    "Norvalan", "Estrelian", "Kaldonian", "Vesmarkish", "Orunan", "Talvonian",
    "Briscan", "Zemorian",
]
_ORG = [
    "Veltrona Systems", "Brakkel Group", "Halcyon Motors", "Norvala Air", "Ostrand Bank",
    "Quillon Partners", "Tessaract Mining", "Arbel Foods", "Sundial Energy", "Corvex",
    "Meridane Holdings", "Pellwick Insurance", "Graystone Capital", "Lumara Telecom",
    "Kaldon Steel", "Vireo Pharma",
]
_ORG_SUFFIX_TEAM = ["United", "City", "Rovers", "Athletic"]
_EVENT = [  # MISC
    "Kessa Cup", "Velmora Open", "Northern Games", "Tarvos Trophy", "Saltmere Classic",
    "Ardmoor Marathon", "Zemoria Rally", "Lunhaven Regatta",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]

# --- templates ------------------------------------------------------------------
# Slots: PER (full or single name), FIRST, SURNAME, LOC (town or country), TOWN,
# COUNTRY, ORG, TEAM (town + team suffix, ORG), NAT (MISC), EVENT (MISC),
# NUM, DAY, MONTH, DATE.
_TEMPLATES = [
    "{PER} visited {LOC} on {DAY} .",
    "{ORG} shares rose {NUM} % in {LOC} .",
    "{PER} , who joins {ORG} next {MONTH} , said the deal was good .",
    "The {NAT} team beat {TEAM} {NUM} - {NUM} in {TOWN} .",
    "{TOWN} police said {NUM} people were hurt .",
    "Officials in {LOC} met {PER} on {DAY} .",
    "{PER} told reporters that {ORG} would cut {NUM} jobs .",
    "{ORG} said on {DAY} it had bought a stake in {ORG} .",
    "{TOWN} {DATE}",
    "{PER} ( {COUNTRY} ) {NUM} {NUM}",
    "The {NAT} government said {PER} would visit {COUNTRY} .",
    "Shares in {ORG} fell {NUM} cents to {NUM} .",
    "{PER} scored twice as {TEAM} won the {EVENT} .",
    "He said the {NAT} economy grew {NUM} % last year .",
    "Mr {SURNAME} arrived in {LOC} late on {DAY} .",
    "In {TOWN} , {ORG} chief {PER} declined to comment .",
    "It was not clear whether the talks would resume .",
    "Prices were steady at {NUM} dollars a tonne on {DAY} .",
    "{SURNAME} said the result was a fair one .",
    "{FIRST} {SURNAME} won the {EVENT} for the {NUM} th time .",
    "Soccer - {TEAM} beat {TEAM} {NUM} - {NUM} .",
    "Results of the {EVENT} in {TOWN} on {DAY} :",
    "Traders said demand from {NAT} buyers was weak .",
    "{ORG} , based in {TOWN} , reported a profit of {NUM} million .",
    "{COUNTRY} and {COUNTRY} signed a trade pact in {TOWN} .",
    "Analysts expect the bank to raise rates in {MONTH} .",
    "A spokesman for {ORG} said {FIRST} would not stand again .",
    "Police in {COUNTRY} arrested {NUM} men after the attack .",
    "Rain delayed play at {TOWN} on {DAY} .",
    "{PER} of {COUNTRY} leads the {EVENT} by {NUM} strokes .",
]
# Labels of the slots that produce entities.
_SLOT_LABEL = {
    "PER": "PER", "FIRST": "PER", "SURNAME": "PER",
    "LOC": "LOC", "TOWN": "LOC", "COUNTRY": "LOC",
    "ORG": "ORG", "TEAM": "ORG",
    "NAT": "MISC", "EVENT": "MISC",
}


def _split_pool(names: list[str]) -> tuple[list[str], list[str]]:
    """Split a list into (seen, unseen): the last quarter is dev-only."""
    k = max(1, len(names) // 4)
    return names[:-k], names[-k:]


class _Filler:
    """Draws slot fillers; ``unseen_rate`` > 0 mixes in held-out names."""

    def __init__(self, rng: np.random.Generator, unseen_rate: float):
        self.rng = rng
        self.unseen_rate = unseen_rate
        self.pools = {
            key: _split_pool(names)
            for key, names in {
                "FIRST": _FIRST, "LAST": _LAST, "TOWN": _TOWN, "COUNTRY": _COUNTRY,
                "NAT": _NATIONALITY, "ORG": _ORG, "EVENT": _EVENT,
            }.items()
        }

    def pick(self, key: str) -> str:
        seen, unseen = self.pools[key]
        use_unseen = self.unseen_rate > 0 and self.rng.random() < self.unseen_rate
        pool = unseen if use_unseen else seen
        return pool[int(self.rng.integers(len(pool)))]

    def choice(self, items: list[str]) -> str:
        return items[int(self.rng.integers(len(items)))]

    def number(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return str(int(self.rng.integers(1, 100)))
        if r < 0.8:
            return f"{self.rng.integers(1, 100)}.{self.rng.integers(0, 10)}"
        return f"{self.rng.integers(1, 10)},{self.rng.integers(0, 1000):03d}"

    def fill(self, slot: str) -> list[str]:
        rng = self.rng
        if slot == "PER":
            r = rng.random()
            if r < 0.6:
                return [self.pick("FIRST"), self.pick("LAST")]
            return [self.pick("LAST")] if r < 0.85 else [self.pick("FIRST")]
        if slot == "FIRST":
            return [self.pick("FIRST")]
        if slot == "SURNAME":
            return [self.pick("LAST")]
        if slot == "LOC":
            return self.pick("TOWN" if rng.random() < 0.6 else "COUNTRY").split()
        if slot in ("TOWN", "COUNTRY", "NAT", "EVENT"):
            return self.pick(slot).split()
        if slot == "ORG":
            return self.pick("ORG").split()
        if slot == "TEAM":
            return self.pick("TOWN").split() + [self.choice(_ORG_SUFFIX_TEAM)]
        if slot == "NUM":
            return [self.number()]
        if slot == "DAY":
            return [self.choice(_DAYS)]
        if slot == "MONTH":
            return [self.choice(_MONTHS)]
        if slot == "DATE":
            return [f"199{rng.integers(0, 10)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"]
        raise KeyError(slot)  # pragma: no cover - templates are fixed


def _sentence(filler: _Filler) -> Sentence:
    tmpl = _TEMPLATES[int(filler.rng.integers(len(_TEMPLATES)))]
    tokens: list[str] = []
    labels: list[str] = []
    for part in tmpl.split():
        if part.startswith("{") and part.endswith("}"):
            slot = part[1:-1]
            words = filler.fill(slot)
            tokens.extend(words)
            labels.extend([_SLOT_LABEL.get(slot, "O")] * len(words))
        else:
            tokens.append(part)
            labels.append("O")
    if filler.rng.random() < 0.05:  # an all-caps headline, as in news-wire data
        tokens = [t.upper() for t in tokens]
    return Sentence(tokens, labels)


def generate_corpus(
    n_train: int = 3000, n_dev: int = 600, seed: int = 0
) -> tuple[list[Sentence], list[Sentence]]:
    """Generate a synthetic IO-labelled NER corpus (PER/ORG/LOC/MISC/O).

    Parameters
    ----------
    n_train, n_dev : int, optional
        Number of training and dev sentences (defaults 3,000 and 600, about
        30k and 6k tokens: a few epochs of a window MLP train in seconds).
    seed : int, optional
        Seed; the corpus is a pure function of ``(n_train, n_dev, seed)``, and the
        dev part does not depend on ``n_train``.

    Returns
    -------
    train, dev : list of Sentence
        Training sentences use only the "seen" three quarters of every name list;
        dev sentences draw about 35% of their names from the held-out quarter.

    Notes
    -----
    The corpus is SYNTHETIC (invented names, template sentences); scores on it say
    nothing about real NER performance. See the module docstring.
    """
    if n_train < 0 or n_dev < 0:
        raise ValueError(f"n_train and n_dev must be >= 0, got {n_train}, {n_dev}")
    train_ss, dev_ss = np.random.SeedSequence(seed).spawn(2)
    train_f = _Filler(np.random.Generator(np.random.PCG64(train_ss)), unseen_rate=0.0)
    dev_f = _Filler(np.random.Generator(np.random.PCG64(dev_ss)), unseen_rate=0.35)
    train = [_sentence(train_f) for _ in range(n_train)]
    dev = [_sentence(dev_f) for _ in range(n_dev)]
    return train, dev

"""The near-miss guard: cheap rules that veto a semantic hit embeddings score high but a person
would not answer the same way.

``near_miss(a, b)`` returns why two questions must NOT share an answer, or None. It fires on:

- negation: one question negates and the other does not ("can I" / "can't I", "with" / "without");
- numbers: different quantities, versions, prices or years ("5 km" / "10 km", "Python 2" / "Python 3");
- dates: different months, weekdays or relative days ("in May" / "in June", "today" / "tomorrow");
- units: the same kind of question in different units ("in km" / "in miles", "$" / "€");
- names: different products, models, languages, places or people ("iPhone X" / "Pixel", "Java" /
  "Kotlin", "in India" / "in Japan");
- swapped roles: the same names in another order where order matters ("Is Messi better than Ronaldo?"
  / "Is Ronaldo better than Messi?");
- opposite actions: "enable" / "disable", "upgrade" / "downgrade", "buy" / "sell", ...
- words in a script the local model cannot read (Chinese, Japanese, Greek, Cyrillic, ...): the
  English model sees them as unknown tokens, so "What does 骚客 mean?" and "What does それでも mean?"
  embed alike; such words must be the same on both sides.

Names are read in any Latin script ("Białystok" / "Kraków"), accents folded ("Kraków" = "Krakow").

Rules look for a difference, never for a topic: two questions that both say "not", or both name
Python 3, pass. Each rule costs recall on true paraphrases ("Why can't I sleep?" / "Why am I unable
to sleep?"); ``bench/semantic/bench.py`` measures what each costs and saves.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["CATEGORIES", "GuardFeatures", "features", "near_miss"]

CATEGORIES = ("negation", "numbers", "dates", "units", "names", "opposite")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CONTRACTIONS = (
    (re.compile(r"\bcan['’]t\b"), "can not"),
    (re.compile(r"\bcannot\b"), "can not"),
    (re.compile(r"\bwon['’]t\b"), "will not"),
    (re.compile(r"\bshan['’]t\b"), "shall not"),
    (re.compile(r"\bain['’]t\b"), "is not"),
    (re.compile(r"n['’]t\b"), " not"),
)
# Letters are any script's ([^\W\d_]), so "białystok" is one word, not "bia" + "ystok".
_TOKEN = re.compile(r"[$€£₹¥]|\d+(?:[.,]\d+)*(?:st|nd|rd|th)?[^\W\d_]*|[^\W\d_][\w+#]*(?:[-.][\w+#]+)*")
_NEGATIONS = _words("not no never none nobody nothing nowhere neither nor without lack lacks lacking unable")
# "no" in "no. of", "yes or no" questions and "no matter" are not negations of the question.
_NOT_NEGATING = re.compile(r"\byes or no\b|\bno matter\b|\bno\.|\bor not\b|\bwhether or not\b|\bif not\b")
_NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9,
    "half": 0.5, "twice": 2, "double": 2, "triple": 3, "dozen": 12,
}  # fmt: skip
_SCALE = {"k": 1e3, "m": 1e6, "mn": 1e6, "b": 1e9, "bn": 1e9, "lakh": 1e5, "lakhs": 1e5, "crore": 1e7, "crores": 1e7}
_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"), ("february", "feb"), ("march",), ("april", "apr"), ("may",), ("june", "jun"),
            ("july", "jul"), ("august", "aug"), ("september", "sept", "sep"), ("october", "oct"),
            ("november", "nov"), ("december", "dec"),
        ]
    )
    for name in names
}  # fmt: skip
_DAYS = _words(
    "monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday tonight weekend "
    "weekday morning evening night afternoon"
)
_UNITS = {
    **dict.fromkeys(("km", "kms", "kilometer", "kilometers", "kilometre", "kilometres"), "km"),
    **dict.fromkeys(("mile", "miles", "mi"), "mile"),
    **dict.fromkeys(("m", "meter", "meters", "metre", "metres"), "m"),
    **dict.fromkeys(("cm", "centimeter", "centimeters"), "cm"),
    **dict.fromkeys(("mm", "millimeter", "millimeters"), "mm"),
    **dict.fromkeys(("ft", "foot", "feet"), "ft"),
    **dict.fromkeys(("inch", "inches", "in."), "inch"),
    **dict.fromkeys(("kg", "kgs", "kilo", "kilos", "kilogram", "kilograms"), "kg"),
    **dict.fromkeys(("g", "gram", "grams", "gm", "gms"), "g"),
    **dict.fromkeys(("lb", "lbs", "pound", "pounds"), "lb"),
    **dict.fromkeys(("oz", "ounce", "ounces"), "oz"),
    **dict.fromkeys(("l", "liter", "liters", "litre", "litres"), "l"),
    **dict.fromkeys(("ml", "milliliter", "milliliters"), "ml"),
    **dict.fromkeys(("gallon", "gallons"), "gallon"),
    **dict.fromkeys(("celsius", "centigrade", "°c"), "celsius"),
    **dict.fromkeys(("fahrenheit", "°f"), "fahrenheit"),
    **dict.fromkeys(("kelvin",), "kelvin"),
    **dict.fromkeys(("$", "usd", "dollar", "dollars", "bucks"), "usd"),
    **dict.fromkeys(("€", "eur", "euro", "euros"), "eur"),
    **dict.fromkeys(("£", "gbp", "sterling"), "gbp"),
    **dict.fromkeys(("₹", "inr", "rupee", "rupees", "rs", "rs."), "inr"),
    **dict.fromkeys(("¥", "yen", "jpy", "yuan", "rmb"), "yen"),
    **dict.fromkeys(("bitcoin", "btc"), "btc"),
    **dict.fromkeys(("kb", "kilobyte", "kilobytes"), "kb"),
    **dict.fromkeys(("mb", "megabyte", "megabytes"), "mb"),
    **dict.fromkeys(("gb", "gigabyte", "gigabytes"), "gb"),
    **dict.fromkeys(("tb", "terabyte", "terabytes"), "tb"),
    **dict.fromkeys(("mbps",), "mbps"),
    **dict.fromkeys(("gbps",), "gbps"),
    **dict.fromkeys(("ghz",), "ghz"),
    **dict.fromkeys(("mhz",), "mhz"),
    **dict.fromkeys(("mph",), "mph"),
    **dict.fromkeys(("kmh", "kph"), "kmh"),
    **dict.fromkeys(("second", "seconds", "sec", "secs"), "s"),
    **dict.fromkeys(("minute", "minutes", "min", "mins"), "min"),
    **dict.fromkeys(("hour", "hours", "hr", "hrs"), "h"),
    **dict.fromkeys(("day", "days"), "day"),
    **dict.fromkeys(("week", "weeks"), "week"),
    **dict.fromkeys(("month", "months"), "month"),
    **dict.fromkeys(("year", "years", "yr", "yrs"), "year"),
    **dict.fromkeys(("calorie", "calories", "kcal"), "kcal"),
    **dict.fromkeys(("watt", "watts", "w"), "w"),
    **dict.fromkeys(("kw", "kilowatt", "kilowatts"), "kw"),
    **dict.fromkeys(("volt", "volts", "v"), "v"),
    **dict.fromkeys(("percent", "%"), "percent"),
}
_UNIT_KINDS = {
    "distance": {"km", "mile", "m", "cm", "mm", "ft", "inch"},
    "mass": {"kg", "g", "lb", "oz"},
    "volume": {"l", "ml", "gallon"},
    "temperature": {"celsius", "fahrenheit", "kelvin"},
    "money": {"usd", "eur", "gbp", "inr", "yen", "btc"},
    "data": {"kb", "mb", "gb", "tb"},
    "rate": {"mbps", "gbps"},
    "frequency": {"ghz", "mhz"},
    "speed": {"mph", "kmh"},
    "time": {"s", "min", "h", "day", "week", "month", "year"},
    "power": {"w", "kw"},
}
# Words of one kind whose swap changes the question; both sides must name one of the kind.
_NAMES = {
    "language": "python java javascript typescript kotlin swift ruby php perl scala rust golang go c c++ c# "
    "haskell matlab r julia lua dart elixir erlang clojure fortran cobol sql html css",
    "os": "windows linux ubuntu debian fedora macos mac osx ios android chromebook unix centos",
    "phone": "iphone ipad pixel galaxy samsung oneplus xiaomi redmi huawei nokia motorola moto oppo vivo "
    "lenovo sony htc lg blackberry",
    "llm": "gpt chatgpt claude gemini llama mistral mixtral bard copilot palm grok deepseek qwen",
    "cloud": "aws azure gcp heroku digitalocean",
    "database": "mysql postgres postgresql mongodb redis sqlite oracle cassandra",
    "browser": "chrome firefox safari edge opera",
    "company": "google apple microsoft amazon facebook meta netflix uber tesla ibm intel amd nvidia infosys "
    "tcs wipro accenture",
    "social": "facebook instagram twitter whatsapp snapchat linkedin youtube quora reddit tiktok",
    "console": "ps3 ps4 ps5 playstation xbox nintendo switch",
    "degree": "mba mtech btech bsc msc phd ms mca bca bba ca cfa cpa mbbs",
}
_NAME_KIND = {word: kind for kind, words in _NAMES.items() for word in words.split()}
_OPPOSITES = [
    ("enable", "disable"), ("activate", "deactivate"), ("turn on", "turn off"), ("switch on", "switch off"),
    ("upgrade", "downgrade"), ("increase", "decrease"), ("increase", "reduce"), ("gain", "lose"),
    ("buy", "sell"), ("add", "remove"), ("add", "delete"), ("install", "uninstall"), ("start", "stop"),
    ("open", "close"), ("lock", "unlock"), ("allow", "block"), ("allow", "deny"), ("accept", "reject"),
    ("include", "exclude"), ("import", "export"), ("encrypt", "decrypt"), ("connect", "disconnect"),
    ("subscribe", "unsubscribe"), ("follow", "unfollow"), ("block", "unblock"), ("show", "hide"),
    ("upload", "download"), ("push", "pull"), ("log in", "log out"), ("login", "logout"),
    ("sign in", "sign out"), ("sign up", "cancel"), ("win", "lose"), ("like", "dislike"), ("love", "hate"),
    ("agree", "disagree"), ("legal", "illegal"), ("possible", "impossible"), ("true", "false"),
    ("rich", "poor"), ("cheap", "expensive"), ("cheapest", "most expensive"), ("best", "worst"),
    ("fast", "slow"), ("faster", "slower"), ("before", "after"), ("maximum", "minimum"), ("max", "min"),
    ("more", "less"), ("most", "least"), ("advantages", "disadvantages"), ("pros", "cons"),
    ("benefits", "drawbacks"), ("hot", "cold"), ("strong", "weak"), ("positive", "negative"),
    ("easy", "hard"), ("easy", "difficult"), ("safe", "dangerous"), ("healthy", "unhealthy"),
    ("happy", "sad"), ("good", "bad"), ("right", "wrong"), ("success", "failure"), ("succeed", "fail"),
    ("pass", "fail"), ("hire", "fire"), ("join", "leave"), ("import", "export"), ("input", "output"),
    ("encode", "decode"), ("compress", "decompress"), ("mount", "unmount"), ("freeze", "unfreeze"),
    ("arrive", "depart"), ("borrow", "lend"), ("send", "receive"), ("ascending", "descending"),
    ("north", "south"), ("east", "west"), ("men", "women"), ("male", "female"), ("boy", "girl"),
    ("boys", "girls"), ("husband", "wife"), ("boyfriend", "girlfriend"), ("up", "down"), ("above", "below"),
    ("inside", "outside"), ("morning", "night"), ("first", "last"), ("beginner", "advanced"),
    ("old", "new"), ("older", "younger"), ("private", "public"), ("online", "offline"),
    ("dead", "alive"), ("asleep", "awake"), ("married", "single"), ("employed", "unemployed"),
]  # fmt: skip
_WORD = re.compile(r"[^\W\d_]+")
# Runs of letters outside the Latin blocks (Basic Latin to Latin Extended-B, Latin Extended
# Additional): the scripts an English sentence model reads as unknown tokens.
_OTHER_SCRIPT = re.compile(r"[^\W\d_\u0000-\u024f\u1e00-\u1eff]+")
_DIRECTIONAL = re.compile(r"\b(than|from|into|to|over|beat|beats|defeat|defeated|against)\b")
_SYMMETRIC = re.compile(
    r"\b(between|difference|differences|differ|compare|compared|comparison|similar|same|vs|versus)\b"
)
# Words of two letters or more not opening a sentence; kept when they start with a capital.
_CAPITALISED = re.compile(r"(?<![.?!]\s)(?<!^)\b([^\W\d_]{2,})\b")
_NOT_NAMES = _words(
    "i im ive id ill what why how when where who which is are do does can should would will could if the "
    "a an in on of for to and or my me you your we our us vs ok tv pc ai"
)
_ALIASES = {
    "america": "usa", "us": "usa", "u.s.": "usa", "united": "usa", "states": "usa", "american": "usa",
    "americans": "usa", "uk": "britain", "england": "britain", "british": "britain", "indian": "india",
    "indians": "india", "chinese": "china", "japanese": "japan", "german": "germany", "french": "france",
    "canadian": "canada", "australian": "australia", "pakistani": "pakistan", "russian": "russia",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class GuardFeatures:
    """What one question says that the guard compares: parsed once, compared many times."""

    tokens: tuple[str, ...]
    negations: int
    numbers: tuple[float, ...]
    dates: frozenset[str]
    units: frozenset[str]
    names: dict[str, frozenset[str]]
    models: frozenset[str]
    proper: frozenset[str]
    stems: frozenset[str]
    words: frozenset[str]
    order: tuple[str, ...]
    directional: bool
    text: str
    other_script: frozenset[str] = frozenset()
    """Words in scripts the local model cannot read; they must match exactly."""


def _normalise(text: str) -> str:
    lowered = text.lower().replace("’", "'")
    for pattern, replacement in _CONTRACTIONS:
        lowered = pattern.sub(replacement, lowered)
    return lowered


_NUMERIC = re.compile(r"(\d+(?:[.,]\d+)*)(st|nd|rd|th|[a-z]+)?")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")
_LEADING_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*")
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)")
_LETTER = re.compile(r"[^\W\d_]")


def _number(token: str, following: str | None) -> float | None:
    if not token[0].isdigit():
        return _NUMBER_WORDS.get(token)
    match = _NUMERIC.fullmatch(token)
    if match is None:
        return None
    digits = match.group(1)
    if _THOUSANDS.fullmatch(digits):
        digits = digits.replace(",", "")
    try:
        value = float(digits.replace(",", "."))
    except ValueError:
        return None
    suffix = match.group(2) or (following if following in _SCALE else None)
    if suffix in _SCALE:
        value *= _SCALE[suffix]
    return value


def _stem(word: str) -> str:
    for ending in ("ing", "ed", "es", "s", "d"):
        if len(word) > len(ending) + 3 and word.endswith(ending):
            return word[: -len(ending)]
    return word


def _fold_accents(text: str) -> str:
    """Kraków -> Krakow: the same name with or without its accents. Only marks on Latin letters
    go: a letter that is no base letter plus a mark ("ł") stays, and so do the marks of other
    scripts (Japanese "で" is not "て")."""
    if text.isascii():
        return text
    kept: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char) and kept and _is_latin(kept[-1]):
            continue
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


def _is_latin(char: str) -> bool:
    code = ord(char)
    return code <= 0x024F or 0x1E00 <= code <= 0x1EFF


def features(text: str) -> GuardFeatures:
    text = _fold_accents(text)
    lowered = _normalise(text)
    tokens = tuple(_TOKEN.findall(lowered))
    negatable = _NOT_NEGATING.sub(" ", lowered)
    negations = sum(1 for t in _TOKEN.findall(negatable) if t in _NEGATIONS)
    numbers: list[float] = []
    dates: set[str] = set()
    units: set[str] = set()
    names: dict[str, set[str]] = {}
    models: set[str] = set()
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        value = _number(token, following)
        if value is not None and token != "may":
            numbers.append(value)
        has_digit = token[0].isdigit() or any(c.isdigit() for c in token)
        unit_part = _LEADING_NUMBER.sub("", token) if has_digit else token
        if unit_part in _UNITS and (unit_part != token or len(token) > 2 or token in "$€£₹¥%"):
            units.add(_UNITS[unit_part])
        if token in _MONTHS and (token != "may" or (following or "").isdigit() or _prev_is_date(tokens, index)):
            dates.add(f"month:{_MONTHS[token]}")
        elif token in _DAYS:
            dates.add(token)
        kind = _NAME_KIND.get(token)
        if kind is not None:
            names.setdefault(kind, set()).add(token)
        if (
            has_digit
            and _LETTER.search(token)
            and not _ORDINAL.fullmatch(token)
            and unit_part not in _UNITS
            and unit_part not in _SCALE
        ):
            models.add(token)
    proper = {
        _ALIASES.get(w.lower(), w.lower())
        for w in _CAPITALISED.findall(text)
        if w[0].isupper() and w.lower() not in _NOT_NAMES
    } - set(_NAME_KIND)
    stems = frozenset(_ALIASES.get(t, _stem(t)) for t in _WORD.findall(lowered))
    named = [
        (i, name)
        for i, name in enumerate(_ALIASES.get(t, t) for t in tokens)
        if (name in proper or name in _NAME_KIND or name in models) and name not in _MONTHS and name not in _DAYS
    ]
    return GuardFeatures(
        tokens=tokens,
        negations=negations,
        numbers=tuple(sorted(numbers)),
        dates=frozenset(dates),
        units=frozenset(units),
        names={kind: frozenset(words) for kind, words in names.items()},
        models=frozenset(models),
        proper=frozenset(proper),
        stems=stems,
        words=frozenset(tokens),
        order=tuple(name for _, name in named),
        directional=_directional(tokens, named) and not _SYMMETRIC.search(lowered),
        text=" " + " ".join(tokens) + " ",
        other_script=frozenset(_OTHER_SCRIPT.findall(lowered)) if not lowered.isascii() else frozenset(),
    )


def _directional(tokens: tuple[str, ...], named: list[tuple[int, str]]) -> bool:
    """Whether a word that gives the names roles ("than", "to", "from") stands between them."""
    if len(named) < 2:
        return False
    return any(_DIRECTIONAL.fullmatch(t) for t in tokens[named[0][0] + 1 : named[-1][0]])


def _prev_is_date(tokens: tuple[str, ...], index: int) -> bool:
    return index > 0 and (
        tokens[index - 1] in {"in", "of", "on", "since", "until", "till"} or tokens[index - 1].isdigit()
    )


def _fmt(values: object) -> str:
    if isinstance(values, frozenset | set):
        return ", ".join(sorted(str(v) for v in values)) or "none"
    return str(values)


def _present(word: str, other: GuardFeatures) -> bool:
    """A name counts as present in the other question if a word there shares its stem (or a prefix
    of five letters: "Kashmir" / "Kashmiri")."""
    stem = _stem(word)
    if stem in other.stems:
        return True
    return len(stem) >= 5 and any(s[:5] == stem[:5] for s in other.stems if len(s) >= 5)


def _has_phrase(f: GuardFeatures, phrase: str) -> bool:
    if " " in phrase:
        return f" {phrase} " in f.text
    return phrase in f.words or _stem(phrase) in f.stems


def near_miss(a: str, b: str) -> str | None:
    """Why ``a`` and ``b`` must not share an answer, or None when the guard sees no reason."""
    return compare(features(a), features(b))


def compare(fa: GuardFeatures, fb: GuardFeatures) -> str | None:
    if (fa.negations > 0) != (fb.negations > 0):
        return "negation: one question is negated, the other is not"
    if fa.numbers != fb.numbers:
        return f"numbers differ: {_numbers(fa.numbers)} vs {_numbers(fb.numbers)}"
    if fa.dates != fb.dates and (fa.dates and fb.dates):
        return f"dates differ: {_fmt(fa.dates)} vs {_fmt(fb.dates)}"
    for members in _UNIT_KINDS.values():
        ua, ub = fa.units & members, fb.units & members
        if ua and ub and ua != ub:
            return f"units differ: {_fmt(ua)} vs {_fmt(ub)}"
    for kind in fa.names.keys() & fb.names.keys():
        na, nb = fa.names[kind], fb.names[kind]
        if (na - nb) and (nb - na):
            return f"names differ ({kind}): {_fmt(na)} vs {_fmt(nb)}"
    if (fa.models - fb.models) and (fb.models - fa.models):
        return f"model names differ: {_fmt(fa.models)} vs {_fmt(fb.models)}"
    if fa.other_script != fb.other_script:
        return f"names differ (other script): {_fmt(fa.other_script)} vs {_fmt(fb.other_script)}"
    only_a = {w for w in fa.proper if not _present(w, fb)}
    only_b = {w for w in fb.proper if not _present(w, fa)}
    if only_a and only_b:
        return f"names differ: {_fmt(only_a)} vs {_fmt(only_b)}"
    if (
        fa.directional
        and fb.directional
        and len(fa.order) >= 2
        and fa.order != fb.order
        and sorted(fa.order) == sorted(fb.order)
    ):
        return f"names swapped: {', '.join(fa.order)} vs {', '.join(fb.order)}"
    for left, right in _OPPOSITES:
        a_left, a_right = _has_phrase(fa, left), _has_phrase(fa, right)
        b_left, b_right = _has_phrase(fb, left), _has_phrase(fb, right)
        if (a_left and not a_right and b_right and not b_left) or (a_right and not a_left and b_left and not b_right):
            return f"opposite actions: {left!r} vs {right!r}"
    return None


def _numbers(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values) or "none"

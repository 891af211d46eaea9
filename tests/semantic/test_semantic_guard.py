"""The near-miss guard: each category fires on a near miss and stays quiet on a paraphrase."""

from __future__ import annotations

import pytest

from thrifty.semantic.guard import near_miss

NEAR_MISSES = [
    # negation
    ("How do I buy a gun with a license in India?", "How do I buy a gun without a license in India?", "negation"),
    ("Why do people worry about global warming?", "Why don't people worry about global warming?", "negation"),
    ("Can I use my phone abroad?", "Can't I use my phone abroad?", "negation"),
    # numbers, versions, years
    ("Can I run 5 km a day?", "Can I run 10 km a day?", "numbers"),
    ("How do I install Python 2?", "How do I install Python 3?", "numbers"),
    ("What was the best movie of 2015?", "What was the best movie of 2016?", "numbers"),
    ("Is a 1,000 dollar laptop worth it?", "Is a 2,000 dollar laptop worth it?", "numbers"),
    ("How to lose weight in two weeks?", "How to lose weight in three weeks?", "numbers"),
    # dates
    ("What is the weather like in Paris in May?", "What is the weather like in Paris in June?", "dates"),
    ("Is the store open on Monday?", "Is the store open on Sunday?", "dates"),
    ("What should I do today?", "What should I do tomorrow?", "dates"),
    # units
    ("How far is 5 km in miles?", "How far is 5 km in feet?", "units"),
    ("What is 100 degrees Celsius in Kelvin?", "What is 100 degrees Fahrenheit in Kelvin?", "units"),
    ("How do I convert 10 kg to pounds?", "How do I convert 10 kg to grams?", "units"),
    # product, model, language, place names
    ("Is Python good for web development?", "Is Java good for web development?", "names"),
    ("Is gpt-4o better than Claude at coding?", "Is gpt-4 better than Claude at coding?", "model names"),
    ("Is the Galaxy S8 waterproof?", "Is the Galaxy S9 waterproof?", "model names"),
    ("What is the best place to visit in India?", "What is the best place to visit in Japan?", "names"),
    ("How do I root my Samsung phone?", "How do I root my Xiaomi phone?", "names"),
    ("Why is Messi better than Ronaldo?", "Why is Ronaldo better than Messi?", "names swapped"),
    # names outside ASCII, and words in scripts the English model reads as unknown tokens
    ("Is it nice to live in Białystok, Poland?", "Is it nice to live in Kraków, Poland?", "names"),
    ("What does 骚客 mean in English?", "What does それでもまだ mean in English?", "names differ (other script)"),
    ("How do I translate '竟然' to English?", "How do I translate '才' to English?", "names differ (other script)"),
    ("What does かき mean?", "What does かぎ mean?", "names differ (other script)"),
    ("What does ΙΧΣ mean?", "What does [*] mean?", "names differ (other script)"),
    # opposite actions
    ("How do I enable dark mode on Android?", "How do I disable dark mode on Android?", "opposite"),
    ("How can I upgrade iOS on my iPad?", "How can I downgrade iOS on my iPad?", "opposite"),
    ("How do I turn on two-factor authentication?", "How do I turn off two-factor authentication?", "opposite"),
    ("Is it a good time to buy bitcoin?", "Is it a good time to sell bitcoin?", "opposite"),
    ("How do I increase my credit score?", "How do I decrease my credit score?", "opposite"),
]

PARAPHRASES = [
    ("How do I learn Python?", "What is the best way to learn python?"),
    ("Why is Trump popular?", "Why is Donald Trump so popular?"),
    ("What is life like in the US?", "What is living in America like?"),
    ("How can I lose weight fast?", "What is the quickest way to lose weight?"),
    ("What are the differences between C++ and Java?", "What are the differences between Java and C++?"),
    ("How do I enable dark mode?", "How can I turn dark mode on?"),
    ("What's the capital of France?", "What is the capital city of France?"),
    ("Which laptop should I buy?", "Which laptop I should buy?"),
    ("Is it safe to travel to Egypt?", "Is traveling to Egypt safe?"),
    ("Can I use my phone abroad?", "Can my phone be used abroad?"),
    ("How many calories are in 100g of rice?", "How many calories does 100 g of rice have?"),
    ("What is the best time to visit Paris in May?", "When in May is best to visit Paris?"),
    ("Is Kraków safe for tourists?", "Is Krakow safe for tourists?"),
    ("How do I get to Zürich airport?", "How can I get to the Zurich airport?"),
    ("What does 骚客 mean?", "What is the meaning of 骚客?"),
]


@pytest.mark.parametrize(("a", "b", "category"), NEAR_MISSES)
def test_each_category_fires(a: str, b: str, category: str) -> None:
    reason = near_miss(a, b)
    assert reason is not None, (a, b)
    assert reason.startswith(category), reason
    assert near_miss(b, a) is not None, "the guard is symmetric"


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
def test_paraphrases_pass(a: str, b: str) -> None:
    assert near_miss(a, b) is None


def test_the_same_question_always_passes() -> None:
    for a, b, _ in NEAR_MISSES:
        assert near_miss(a, a) is None
        assert near_miss(b, b) is None


def test_the_reason_names_what_differs() -> None:
    assert near_miss("Can I run 5 km a day?", "Can I run 10 km a day?") == "numbers differ: 5 vs 10"
    assert near_miss("Is Python fast?", "Is Java fast?") == "names differ (language): python vs java"
    assert near_miss("How do I enable it?", "How do I disable it?") == "opposite actions: 'enable' vs 'disable'"

"""Small seeded data sets for the guide's case studies (examples/*.py): ads checked against their product,
tweets, emails routed to numbered departments, entity extraction ending in END, and support chats.

Each generator returns plain records ready for JSONL: {"prompt", "completion"} or {"messages"}."""

from __future__ import annotations

import random
from typing import Any

Record = dict[str, Any]

# --- ads: does the ad promote the product and company it is filed under? -----------------------------

COMPANIES = {
    "Lumen": ("desk lamp", "light"), "Brewly": ("coffee maker", "coffee"), "Stride": ("running shoes", "run"),
    "Nimbus": ("umbrella", "rain"), "Crumb": ("toaster", "toast"), "Pawsome": ("dog bed", "dog"),
}  # fmt: skip
AD_TEMPLATES = (
    "The {product} from {company}: built for {use}.",
    "{company} presents a {product} you will love.",
    "Upgrade to the new {company} {product} today!",
    "Love {use}? Try the {product} by {company}.",
)


def ads(n: int, seed: int = 0) -> list[Record]:
    """Prompt "Company: …\\nProduct: …\\nAd: …\\nSupported:"; completion " yes" when the ad is about that
    product of that company, " no" when it names another product or company."""
    rng = random.Random(seed)
    names = list(COMPANIES)
    rows = []
    for _ in range(n):
        company = rng.choice(names)
        product = COMPANIES[company][0]
        supported = rng.random() < 0.5
        ad_company = company if supported else rng.choice([c for c in names if c != company])
        ad_product, ad_use = COMPANIES[ad_company]
        ad = rng.choice(AD_TEMPLATES).format(product=ad_product, company=ad_company, use=ad_use)
        prompt = f"Company: {company}\nProduct: {product}\nAd: {ad}\nSupported:"
        rows.append({"prompt": prompt, "completion": " yes" if supported else " no"})
    return rows


# --- tweets: sentiment, read as a probability -------------------------------------------------------

TWEET_GOOD = ("best day ever", "so happy with", "absolutely loving", "big thanks to", "can't stop smiling at")
TWEET_BAD = (
    "worst service from",
    "so annoyed with",
    "never again with",
    "really let down by",
    "hate how slow",
)
TWEET_TOPICS = ("the new phone", "my airline", "this cafe", "the bus company", "my bank app", "the gym")


def tweets(n: int, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        positive = rng.random() < 0.5
        phrase = rng.choice(TWEET_GOOD if positive else TWEET_BAD)
        tag = rng.choice(("", " #monday", " lol", "!!", " :)" if positive else " :("))
        text = f"{phrase} {rng.choice(TWEET_TOPICS)}{tag}"
        rows.append(
            {"prompt": f"Tweet: {text}\nSentiment:", "completion": " positive" if positive else " negative"}
        )
    return rows


# --- emails: numbered departments -------------------------------------------------------------------

DEPARTMENTS = {
    1: ("billing", ("invoice", "refund", "charged twice", "payment failed")),
    2: ("technical support", ("error message", "app crashes", "cannot log in", "password reset")),
    3: ("sales", ("price quote", "bulk order", "discount", "demo request")),
    4: ("shipping", ("package late", "tracking number", "wrong address", "damaged box")),
}
SENDERS = ("ana@example.com", "li.wei@example.org", "sam@shop.example", "kofi@mail.example")


def emails(n: int, seed: int = 0) -> list[Record]:
    """Completion " 1" … " 4"; the separator "\\n\\n###\\n\\n" ends each prompt, as the guide suggests."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        number = rng.choice(list(DEPARTMENTS))
        topic = rng.choice(DEPARTMENTS[number][1])
        subject = f"Re: {topic}" if rng.random() < 0.5 else topic.capitalize()
        body = f"Hi, about the {topic}: could you help me? Thanks"
        prompt = f"From: {rng.choice(SENDERS)}\nSubject: {subject}\n\n{body}\n\n###\n\n"
        rows.append({"prompt": prompt, "completion": f" {number}"})
    return rows


# --- entities: people, organisations, places, ending in END -----------------------------------------

PEOPLE = ("Maria Lopez", "Tom Berg", "Aiko Sato", "Omar Haddad", "Jane Okafor")
ORGS = ("Acme", "Globex", "Initech", "Umbrella Labs", "Hooli")
PLACES = ("Paris", "Lagos", "Osaka", "Lima", "Oslo")
SENTENCES = (
    "{person} joined {org} in {place}.",
    "{org} hired {person} to open its {place} office.",
    "In {place}, {person} spoke for {org}.",
)


def entities(n: int, seed: int = 0) -> list[Record]:
    """Completion " person: …\\norganization: …\\nplace: … END"; call with stop=[" END"]."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        person, org, place = rng.choice(PEOPLE), rng.choice(ORGS), rng.choice(PLACES)
        text = rng.choice(SENTENCES).format(person=person, org=org, place=place)
        completion = f" person: {person}\norganization: {org}\nplace: {place} END"
        rows.append({"prompt": f"Text: {text}\nEntities:", "completion": completion})
    return rows


# --- support chats: several turns, one reply per intent ---------------------------------------------

SYSTEM = "You are the support assistant of Acme Store. Be brief and kind."
INTENTS = {
    "order": (("Where is my order?", "My order has not arrived", "Any news on my package?"),
              "Sorry for the wait! Please send your order number and I will check it."),
    "refund": (("I want a refund", "Can I return this?", "How do refunds work?"),
               "You can return any item within 30 days for a full refund."),
    "password": (("I forgot my password", "Cannot log in", "Reset my password please"),
                 "Use 'Forgot password' on the login page; the link arrives by email."),
}  # fmt: skip
THANKS = ("Thanks!", "Great, thank you", "ok thanks")
THANKS_REPLY = "You're welcome! Anything else?"


def support_chats(n: int, seed: int = 0) -> list[Record]:
    """Two exchanges per chat: a question answered by its intent's reply, then thanks."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        intent = rng.choice(list(INTENTS))
        questions, reply = INTENTS[intent]
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": rng.choice(questions)},
            {"role": "assistant", "content": reply},
            {"role": "user", "content": rng.choice(THANKS)},
            {"role": "assistant", "content": THANKS_REPLY},
        ]
        rows.append({"messages": messages})
    return rows

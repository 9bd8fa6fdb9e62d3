"""`string_check` and `text_similarity`: comparisons of the rendered input with the rendered reference,
computed by the libraries that define the metrics (sacrebleu, rouge-score, NLTK, RapidFuzz)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from tuneforge.errors import InvalidGrader
from tuneforge.graders.models import TextMetric

_OPERATIONS: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda text, reference: text == reference,
    "ne": lambda text, reference: text != reference,
    # OpenAI's like/ilike: the input contains the reference (case-sensitive / case-insensitive).
    "like": lambda text, reference: reference in text,
    "ilike": lambda text, reference: reference.lower() in text.lower(),
}


_LIBRARIES = {"fuzzy": "rapidfuzz", "bleu": "sacrebleu", "rouge": "rouge_score"}  # gleu, meteor: nltk


def string_check(operation: str, text: str, reference: str) -> float:
    return 1.0 if _OPERATIONS[operation](text, reference) else 0.0


def check_metric(metric: TextMetric, *, grader: str) -> None:
    """Refuse, before any sample, a metric that cannot be computed on this machine."""
    param = "grader.evaluation_metric"
    if metric == "cosine":
        raise InvalidGrader(
            f"Grader '{grader}': evaluation_metric 'cosine' needs an embedding model, and tuneforge has none "
            "configured; use fuzzy_match, bleu, gleu or rouge_*",
            param=param,
        )
    library = _LIBRARIES.get(metric.split("_")[0], "nltk")
    if importlib.util.find_spec(library) is None:
        raise InvalidGrader(
            f"Grader '{grader}': evaluation_metric '{metric}' needs the Python package '{library}', which is "
            "not installed (pip install 'tuneforge[tracking]')",
            param=param,
        )
    if metric == "meteor" and not _has_wordnet():
        raise InvalidGrader(
            f"Grader '{grader}': evaluation_metric 'meteor' needs NLTK's WordNet data, which is not "
            "installed here (python -m nltk.downloader wordnet); use bleu, gleu or rouge_*",
            param=param,
        )


def similarity(metric: TextMetric, text: str, reference: str) -> float:
    """The metric in [0, 1]; `check_metric` has refused the ones that cannot run."""
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz

        return float(fuzz.WRatio(text, reference)) / 100.0
    if metric == "bleu":
        import sacrebleu

        return float(sacrebleu.sentence_bleu(text, [reference]).score) / 100.0
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu([reference.split()], text.split()))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        return float(meteor_score([reference.split()], text.split()))
    if metric.startswith("rouge_"):
        return _rouge("rougeL" if metric == "rouge_l" else metric.replace("_", ""), text, reference)
    raise InvalidGrader(
        f"evaluation_metric '{metric}' is not available here", param="grader.evaluation_metric"
    )


def _rouge(kind: str, text: str, reference: str) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=False)
    return float(scorer.score(reference, text)[kind].fmeasure)


def _has_wordnet() -> bool:
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        try:
            nltk.data.find("corpora/wordnet.zip")
        except LookupError:
            return False
    return True

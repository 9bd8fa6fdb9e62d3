"""`tuneforge prepare`'s analysis of prompt/completion data: one streaming pass gathers what the legacy
`prepare_data` checks (and more), then a plan of suggested fixes and a JSON-able report are derived."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from tuneforge.data.affixes import JOINER, Absent, Affixes, LetterCase, Repeats
from tuneforge.data.chats import ChatScan
from tuneforge.data.columns import ColumnMap
from tuneforge.data.preferences import PreferenceScan
from tuneforge.data.readers import PREFERENCE_KEYS
from tuneforge.data.reinforcement import ReinforcementScan
from tuneforge.data.report import Classification, Fix, LineList, Plan, PrepareReport, show
from tuneforge.data.sources import Row, Source, open_source
from tuneforge.data.tokens import LengthTally, TokenCounter
from tuneforge.data.validation import TaskTally
from tuneforge.errors import InvalidFile

# Separators in the legacy tool's order of preference; " ->" only when no prompt holds a newline.
SEPARATORS = [
    " ->",
    "\n\n###\n\n",
    "\n\n===\n\n",
    "\n\n---\n\n",
    "\n\n===>\n\n",
    "\n\n--->\n\n",
    "\n\n### =>\n\n",
    "\n\n#####\n\n",
    "\n\n@@@@@\n\n",
]
# The legacy stops less ".": a period ends sentences, so it cannot mark where a completion ends.
STOPS = ["\n", " END", "***", "+++", "&&&", "$$$", "@@@", "%%%", " [END]", " ###END###"]
MIN_EXAMPLES = 100  # below this the legacy tool recommends more data, and so do we
LONG_PROMPT_PREFIX = 12  # a common prompt prefix longer than this is likely an instruction to drop
LONG_COMPLETION_PREFIX = 5  # a common completion prefix this long is likely boilerplate
FIX_BYTES = 32  # bytes a separator, a stop and a space can add to an example
EPOCHS = 4  # the legacy default n_epochs, used for the time estimate
ASSUMED_TOKENS_PER_SECOND = 4000  # a rough single-GPU LoRA rate; the estimate says it is an assumption
T = TypeVar("T")
MarkerProblem = Literal["punctuation", "repeated"]
NATURAL_ENDINGS = frozenset(" \t.,;:!?'\")]}…’”»")  # how text ends anyway: never a separator or stop
POSITIVE_WORDS = {"yes", "y", "true", "t", "positive", "pos", "1", "good", "correct", "supported"}


@dataclass(frozen=True)
class LongCandidate:
    line: int
    tokens: int
    label: str
    duplicate: bool
    empty_prompt: bool


class PromptCompletionScan:
    """The single analysis pass over prompt/completion rows."""

    def __init__(self, source: Source, counter: TokenCounter) -> None:
        self.source, self.counter = source, counter
        self.columns = ColumnMap(source.name)
        self.n_read = 0
        self.empty_completions, self.empty_prompts, self.duplicates = LineList(), LineList(), LineList()
        self.seen: set[int] = set()
        self.duplicate_lines: list[int] = []  # the writing pass drops these without hashing again
        self.tally = TaskTally()
        self.prompts, self.completions = Affixes(), Affixes()
        self.prompt_repeats, self.completion_repeats = Repeats(), Repeats()
        self.separator_problem: MarkerProblem | None = None
        self.stop_problem: MarkerProblem | None = None
        self.separators = Absent(SEPARATORS, newline_free=frozenset({" ->"}))
        self.stops = Absent(STOPS)
        self.prompt_case, self.completion_case = LetterCase(), LetterCase()
        self.no_space_start = 0
        self.lengths = LengthTally(counter, reserve=FIX_BYTES)
        self.candidate_flags: dict[int, tuple[str, bool, bool]] = {}
        self.long_candidates: list[LongCandidate] = []
        self.label_flags: Counter[tuple[str, bool, bool]] = Counter()

    def feed(self, chunks: Iterator[tuple[list[int], list[Row]]]) -> None:
        for lines, rows in chunks:
            self.n_read += len(rows)
            self.add_chunk(lines, *self.columns.columns(lines, rows))
        self.lengths.finish()
        for line, (tokens, _) in self.lengths.candidates.items():
            label, duplicate, empty_prompt = self.candidate_flags[line]
            self.long_candidates.append(LongCandidate(line, tokens, label, duplicate, empty_prompt))

    def add_chunk(self, lines: list[int], prompts: list[str], completions: list[str]) -> None:
        """Gather a chunk's statistics; list comprehensions and joins keep the per-row work in C."""
        if not all(completions):
            for line, completion in zip(lines, completions, strict=True):
                if not completion:
                    self.empty_completions.add(line)
            keep = [i for i, completion in enumerate(completions) if completion]
            lines, prompts, completions = _pick(keep, lines), _pick(keep, prompts), _pick(keep, completions)
        if not completions:
            return
        if not all(prompts):
            for line, prompt in zip(lines, prompts, strict=True):
                if not prompt:
                    self.empty_prompts.add(line)
        duplicates = self._duplicates(lines, prompts, completions)
        self._text_stats(prompts, completions)
        candidates = self.lengths.add_many(lines, prompts, completions)
        self._label_flags(lines, prompts, completions, duplicates, candidates)

    def _duplicates(self, lines: list[int], prompts: list[str], completions: list[str]) -> set[int]:
        """Indices of rows whose (prompt, completion) came earlier. 64-bit hashes stand for the pairs: a
        false duplicate among 10^7 rows has a probability below 10^-5."""
        keys = list(map(hash, zip(prompts, completions, strict=True)))
        first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))  # key -> first index
        earlier = self.seen.intersection(first)
        self.seen.update(first)
        if len(first) == len(keys) and not earlier:
            return set()
        found = [i for i, key in enumerate(keys) if key in earlier or first[key] != i]
        for index in found:
            self.duplicates.add(lines[index])
            self.duplicate_lines.append(lines[index])
        return set(found)

    def _text_stats(self, prompts: list[str], completions: list[str]) -> None:
        self.tally.add_many(prompts, completions)
        present = prompts if all(prompts) else [p for p in prompts if p]  # empty prompts share no separator
        self.prompts.add_many(present)
        joined = JOINER.join(present)
        self.prompt_repeats.add(joined, len(present), self.prompts.suffix)
        self.separators.add(joined)
        self.prompt_case.add(joined)
        self.completions.add_many(completions)
        joined = JOINER.join(completions)
        self.completion_repeats.add(joined, len(completions), self.completions.suffix)
        self.stops.add(joined)
        self.completion_case.add(joined)
        self.no_space_start += len(completions) - (JOINER + joined).count(JOINER + " ")

    def _label_flags(
        self,
        lines: list[int],
        prompts: list[str],
        completions: list[str],
        duplicates: set[int],
        candidates: list[int],
    ) -> None:
        for index in candidates:
            self.candidate_flags[lines[index]] = (completions[index], index in duplicates, not prompts[index])
        if self.tally.overflow:
            self.label_flags.clear()  # not a classification task: per-label counts are not needed
        elif duplicates or candidates or not all(prompts):
            skip = set(candidates)
            self.label_flags.update(
                (completion, index in duplicates, not prompts[index])
                for index, completion in enumerate(completions)
                if index not in skip
            )
        else:
            self.label_flags.update(zip(completions, repeat(False), repeat(False)))

    def report(self, *, model: str) -> PrepareReport:
        """Turn the gathered statistics into findings, suggested fixes and a plan (after `feed`)."""
        self._require_examples()
        report = PrepareReport(
            file=self.source.name,
            source_format=self.source.format,
            format="prompt_completion",
            context_length=self.counter.context_length,
            n_read=self.n_read,
            n_examples=self.tally.n_examples,
            task=self.tally.task(),
            checks={"model": model},
        )
        plan = report.plan
        self._recount_repeats()
        self.separator_problem = marker_problem(self.prompts.suffix, self.prompt_repeats.found)
        self.stop_problem = marker_problem(self.completions.suffix, self.completion_repeats.found)
        plan.separator = (
            None if self.prompts.suffix and not self.separator_problem else self.separators.first()
        )
        needs_stop = report.task == "conditional generation" and (
            not self.completions.suffix or self.stop_problem is not None
        )
        plan.stop = (self.stops.first() or STOPS[-1]) if needs_stop else None
        for check in (
            _overview,
            _columns,
            _empties,
            _duplicates,
            _long_examples,
            _letter_case,
            _separator,
            _prompt_prefix,
            _completion_prefix,
            _stop,
            _leading_space,
            _classes,
            _tokens,
        ):
            check(self, report)
        return report

    def _recount_repeats(self) -> None:
        """The rare second look: a common suffix shrank after its chunks were checked for the longer one."""
        pending = [
            (repeats, affixes)
            for repeats, affixes in (
                (self.prompt_repeats, self.prompts),
                (self.completion_repeats, self.completions),
            )
            if affixes.suffix and not repeats.found and not repeats.complete
        ]
        if not pending:
            return
        columns = ColumnMap(self.source.name)
        for lines, rows in self.source.chunks():
            prompts, completions = columns.columns(lines, rows)
            kept = [(p, c) for p, c in zip(prompts, completions, strict=True) if c]
            for repeats, affixes in pending:
                values = [c for _, c in kept] if affixes is self.completions else [p for p, _ in kept if p]
                repeats.found = repeats.found or JOINER.join(values).count(affixes.suffix) > len(values)

    def _require_examples(self) -> None:
        name = self.source.name
        for column in ("prompt", "completion"):
            if column not in self.columns.found and self.source.format != "txt":
                raise InvalidFile(
                    f"the `{column}` column/key is missing; name your columns/keys 'prompt' and 'completion'",
                    file=name,
                    field=column,
                )
        if not self.tally.n_examples:
            what = "every completion is empty" if self.n_read else "the file holds no examples"
            raise InvalidFile(what, file=name)


def fix_prompts(prompts: list[str], plan: Plan, accepted: set[str]) -> list[str]:
    """Prompts with the accepted fixes applied, in the legacy tool's order."""
    if "lowercase_prompts" in accepted:
        prompts = list(map(str.lower, prompts))
    if "add_separator" in accepted and plan.separator:
        prompts = [prompt + plan.separator for prompt in prompts]
    if "remove_prompt_prefix" in accepted:
        size = len(plan.prompt_prefix)
        prompts = [prompt[size:] for prompt in prompts]
    return prompts


def fix_completions(completions: list[str], plan: Plan, accepted: set[str]) -> list[str]:
    """Completions with the accepted fixes applied, in the legacy tool's order."""
    if "lowercase_completions" in accepted:
        completions = list(map(str.lower, completions))
    if "remove_completion_prefix" in accepted:
        size = len(plan.completion_prefix)
        # keep the single leading space the tokenizer wants
        space = " " if plan.completion_prefix.startswith(" ") else ""
        completions = [space + completion[size:] for completion in completions]
    if "add_stop" in accepted and plan.stop:
        completions = [completion + plan.stop for completion in completions]
    if "add_leading_space" in accepted:
        completions = [c if c[:1] == " " else " " + c for c in completions]
    return completions


def fix_completion(completion: str, plan: Plan, accepted: set[str]) -> str:
    return fix_completions([completion], plan, accepted)[0]


def kept(flags: tuple[str, bool, bool, bool], accepted: set[str]) -> bool:
    """Whether a row with these (label, duplicate, empty prompt, long) flags survives the accepted fixes."""
    _, duplicate, empty_prompt, long = flags
    return not (
        (duplicate and "remove_duplicates" in accepted)
        or (empty_prompt and "remove_empty_prompts" in accepted)
        or (long and "remove_long_examples" in accepted)
    )


def class_counts(plan: Plan, accepted: set[str]) -> dict[str, int]:
    """Examples per final label among the rows the accepted fixes keep, largest class first."""
    counts: dict[str, int] = {}
    for flags, count in plan.label_flags.items():
        if kept(flags, accepted):
            label = fix_completion(flags[0], plan, accepted)
            counts[label] = counts.get(label, 0) + count
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _optional(report: PrepareReport, fix_id: str, message: str) -> None:
    report.fixes.append(Fix(fix_id, "optional", message))


def _overview(scan: PromptCompletionScan, report: PrepareReport) -> None:
    advice = (
        ""
        if report.n_examples >= MIN_EXAMPLES
        else (
            ". In general, we recommend having at least a few hundred examples: performance tends to "
            "increase linearly with every doubling of the number of examples"
        )
    )
    report.findings.append(f"Your file contains {_example_count(report)} prompt-completion pairs{advice}")
    if scan.source.format != "jsonl":
        report.findings.append(
            f"Based on its extension, your file is formatted as {scan.source.format.upper()}"
            + _dialect(scan.source, report)
        )
        report.fixes.append(
            Fix(
                "convert",
                "necessary",
                f"Your format `{scan.source.format.upper()}` will be converted to `JSONL`",
            )
        )


def _example_count(report: PrepareReport) -> str:
    """The JSON report's `n_read`, and its `n_examples` beside it when they differ, so that the printed and
    the JSON report never disagree on how many rows the file has."""
    unusable = report.n_read - report.n_examples
    if not unusable:
        return str(report.n_examples)
    return f"{report.n_read} rows ({report.n_examples} usable; {unusable} with an empty completion) of"


def _dialect(source: Source, report: PrepareReport) -> str:
    """How the values were separated, as detected (the JSON report has it under `checks.dialect`)."""
    if source.dialect is None:
        return ""
    names = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
    report.checks["dialect"] = asdict(source.dialect)
    quote = "double" if source.dialect.quotechar == '"' else "single"
    return f" with values separated by {names[source.dialect.delimiter]} (quoted with {quote} quotes)"


def _columns(scan: PromptCompletionScan, report: PrepareReport) -> None:
    columns = scan.columns
    report.checks["columns"] = {"renamed": dict(columns.renamed), "unknown": list(columns.unknown)}
    if columns.renamed:
        names = ", ".join(f"`{key}`" for key in columns.renamed)
        report.findings.append(f"The column/key names {names} should be lower case")
        report.fixes.append(Fix("lowercase_columns", "necessary", f"Lower case the column names {names}"))
    if columns.unknown:
        names = ", ".join(f"`{key}`" for key in columns.unknown)
        report.findings.append(
            f"The file should contain only `prompt` and `completion`; also present: {names}"
        )
        report.fixes.append(Fix("remove_columns", "necessary", f"Remove the additional columns/keys {names}"))


def _empties(scan: PromptCompletionScan, report: PrepareReport) -> None:
    empty = scan.empty_completions
    report.checks["empty_completions"] = asdict(empty)
    report.checks["empty_prompts"] = asdict(scan.empty_prompts)
    if empty.count:
        report.findings.append(f"{empty.count} completions are empty ({empty.describe()})")
        report.fixes.append(
            Fix("remove_empty_completions", "necessary", f"Remove {empty.count} rows with empty completions")
        )
    if report.task == "classification":
        report.findings.append(
            "Based on your data it seems like you're fine-tuning a model for classification. For "
            "classification, keep a held-out validation set to estimate the model's accuracy"
        )
    prompts = scan.empty_prompts
    if prompts.count and report.task != "open-ended generation":
        report.findings.append(f"{prompts.count} prompts are empty but others are not ({prompts.describe()})")
        _optional(report, "remove_empty_prompts", f"Remove {prompts.count} rows with empty prompts")


def _duplicates(scan: PromptCompletionScan, report: PrepareReport) -> None:
    dups = scan.duplicates
    report.checks["duplicates"] = asdict(dups)
    report.plan.duplicate_lines = frozenset(scan.duplicate_lines)
    if dups.count:
        report.findings.append(
            f"There are {dups.count} duplicated prompt-completion sets ({dups.describe()})"
        )
        _optional(report, "remove_duplicates", f"Remove {dups.count} duplicate rows")


def _long_examples(scan: PromptCompletionScan, report: PrepareReport) -> None:
    plan, counter = report.plan, scan.counter
    extra = sum(counter.count([text for text in (plan.separator, plan.stop) if text])) + 1  # + a space
    long = LineList()
    flags = {} if scan.tally.overflow else scan.label_flags
    plan.label_flags = {(label, dup, empty, False): n for (label, dup, empty), n in flags.items()}
    for candidate in scan.long_candidates:
        is_long = candidate.tokens + extra > counter.context_length
        if is_long:
            long.add(candidate.line)
        if not scan.tally.overflow:
            key = (candidate.label, candidate.duplicate, candidate.empty_prompt, is_long)
            plan.label_flags[key] = plan.label_flags.get(key, 0) + 1
    plan.long_lines = frozenset(
        c.line for c in scan.long_candidates if c.tokens + extra > counter.context_length
    )
    report.checks["long_examples"] = {**asdict(long), "context_length": counter.context_length}
    if long.count:
        report.findings.append(
            f"{long.count} examples are longer than the base model's context of {counter.context_length} "
            f"tokens with the suggested separator and stop ({long.describe()}); training would truncate them"
        )
        _optional(report, "remove_long_examples", f"Remove {long.count} long examples")


def _letter_case(scan: PromptCompletionScan, report: PrepareReport) -> None:
    for column, case in (("prompt", scan.prompt_case), ("completion", scan.completion_case)):
        letters = case.upper + case.lower
        report.checks[f"{column}_upper_case_share"] = round(case.upper / letters, 4) if letters else 0.0
        if case.mostly_upper:
            report.findings.append(
                f"More than a third of the letters in your {column}s are upper case; "
                "mostly upper-case text tends to train worse than ordinary text"
            )
            _optional(report, f"lowercase_{column}s", f"Lower case all your {column}s")


def marker_problem(suffix: str, repeated: bool) -> MarkerProblem | None:
    """Why a common suffix cannot serve as a separator (or stop sequence), as the guide has it: one that
    also occurs inside the values marks nothing, and punctuation or spaces are how text ends anyway."""
    if not suffix:
        return None
    if all(char in NATURAL_ENDINGS for char in suffix):
        return "punctuation"
    return "repeated" if repeated else None


def _not_a_marker(column: str, suffix: str, problem: MarkerProblem, role: str) -> str:
    if problem == "punctuation":
        why = "that is ordinary punctuation or white space, which text ends with anyway"
    else:
        why = f"some {column}s also hold it before their end"
    return f"All {column}s end with `{show(suffix)}`, but {why}: it is not a {role}"


def _separator(scan: PromptCompletionScan, report: PrepareReport) -> None:
    suffix, suggested, problem = scan.prompts.suffix or "", report.plan.separator, scan.separator_problem
    report.checks["separator"] = {
        "common": suffix,
        "valid": bool(suffix) and problem is None,
        "problem": problem,
        "suggested": suggested,
    }
    if report.task == "open-ended generation":
        return
    if scan.prompts.all_equal:
        raise InvalidFile(
            f"all prompts are identical (`{show(suffix)}`); leave them empty for open-ended "
            "generation, otherwise make them differ",
            file=scan.source.name,
            field="prompt",
        )
    if suffix and problem is None:
        long = (
            f"; it is long, consider a shorter one such as `{show(SEPARATORS[1])}`"
            if len(suffix) > 10
            else ""
        )
        report.findings.append(f"All prompts end with the separator `{show(suffix)}`{long}")
        return
    report.findings.append(
        _not_a_marker("prompt", suffix, problem, "separator")
        if suffix and problem
        else "Your prompts do not end with a common separator"
    )
    report.findings[-1] += (
        "; a separator that occurs only at the end of every prompt shows the model where the prompt stops "
        "and the completion begins"
    )
    if suggested is None:
        report.findings.append("Every separator we would suggest occurs inside some prompt: add your own")
        return
    _optional(
        report,
        "add_separator",
        f"Add the separator `{show(suggested)}` to all prompts (it occurs in none of them)",
    )


def _prompt_prefix(scan: PromptCompletionScan, report: PrepareReport) -> None:
    prefix = scan.prompts.prefix or ""
    report.checks["prompt_prefix"] = prefix
    if not prefix or scan.prompts.all_equal:
        return
    report.findings.append(f"All prompts start with the prefix `{show(prefix)}`")
    if len(prefix) > LONG_PROMPT_PREFIX:
        report.plan.prompt_prefix = prefix
        report.findings.append(
            "Fine-tuning doesn't need an instruction or few-shot examples in every prompt: "
            "the prompt should hold only the input"
        )
        _optional(report, "remove_prompt_prefix", f"Remove the prefix `{show(prefix)}` from all prompts")


def _completion_prefix(scan: PromptCompletionScan, report: PrepareReport) -> None:
    prefix = scan.completions.prefix or ""
    report.checks["completion_prefix"] = prefix
    if len(prefix) < LONG_COMPLETION_PREFIX or scan.completions.all_equal:
        return
    report.plan.completion_prefix = prefix
    report.findings.append(
        f"All completions start with the prefix `{show(prefix)}`; a completion should hold only the output"
    )
    _optional(report, "remove_completion_prefix", f"Remove the prefix `{show(prefix)}` from all completions")


def _stop(scan: PromptCompletionScan, report: PrepareReport) -> None:
    suffix, stop, problem = scan.completions.suffix or "", report.plan.stop, scan.stop_problem
    report.checks["stop"] = {
        "common": suffix,
        "valid": bool(suffix) and problem is None,
        "problem": problem,
        "suggested": stop,
    }
    if report.task != "conditional generation":
        return  # a classifier answers in max_tokens tokens; open-ended text has no natural end
    if scan.completions.all_equal:
        raise InvalidFile(
            f"all completions are identical (`{show(suffix)}`); the model would only learn to repeat it",
            file=scan.source.name,
            field="completion",
        )
    if suffix and problem is None:
        report.findings.append(f"All completions end with the stop sequence `{show(suffix)}`")
        return
    report.findings.append(
        (
            _not_a_marker("completion", suffix, problem, "stop sequence")
            if suffix and problem
            else "Your completions do not end with a common stop sequence"
        )
        + "; one that occurs only at the end of every completion tells the model (and the stop "
        "parameter) where a completion ends"
    )
    if stop:
        _optional(
            report,
            "add_stop",
            f"Add the stop sequence `{show(stop)}` to all completions (it occurs in none of them)",
        )


def _leading_space(scan: PromptCompletionScan, report: PrepareReport) -> None:
    report.checks["completions_without_leading_space"] = scan.no_space_start
    if scan.no_space_start:
        report.findings.append(
            f"{scan.no_space_start} completions do not start with a space; the tokenizer "
            "joins a space and the next word into one token, so they should"
        )
        _optional(report, "add_leading_space", "Add a space to the beginning of each completion")


def _classes(scan: PromptCompletionScan, report: PrepareReport) -> None:
    if report.task != "classification":
        return
    accepted = set(report.optional_fix_ids())
    classes = class_counts(report.plan, accepted)
    labels = list(classes)
    counts = scan.counter.count(labels)
    firsts = [(scan.counter.tokens(label) or [""])[0] for label in labels]
    info = Classification(
        classes=classes,
        balance=round(min(classes.values()) / max(classes.values()), 4),
        positive_class=positive_class(classes),
        label_tokens=dict(zip(labels, counts, strict=True)),
        single_token=all(n == 1 for n in counts),
        first_tokens_distinct=len(set(firsts)) == len(firsts),
        max_tokens=max(counts),
    )
    report.classification = info
    report.findings.extend(_class_findings(info))
    if any(n >= 2 for n in classes.values()):  # else a stratified split would hold out nothing
        _optional(
            report,
            "split",
            "Split into training and validation sets, stratified so that every class is in both",
        )


def _class_findings(info: Classification) -> list[str]:
    shown = ", ".join(f"`{show(label)}` ({n})" for label, n in list(info.classes.items())[:10])
    more = f" and {len(info.classes) - 10} more" if len(info.classes) > 10 else ""
    found = [f"{len(info.classes)} classes: {shown}{more}"]
    if info.balance < 0.1:
        found.append(f"The classes are unbalanced (the smallest is {info.balance:.0%} of the largest)")
    singles = [label for label, n in info.classes.items() if n < 2]
    if singles:
        found.append(
            f"{len(singles)} classes have a single example and cannot be in both training and validation sets"
        )
    if not info.single_token:
        found.append(
            f"Some labels are several tokens long (up to {info.max_tokens}) for this base model; "
            "single-token labels let the model answer with max_tokens=1"
        )
    return found


def positive_class(classes: dict[str, int]) -> str | None:
    """For a binary task, the label that reads as positive ("yes", "true", "1", …); else the most frequent
    one, as the legacy tool picks."""
    if len(classes) != 2:
        return None
    for label in classes:
        if label.strip().lower() in POSITIVE_WORDS:
            return label
    return next(iter(classes))


def _tokens(scan: PromptCompletionScan, report: PrepareReport) -> None:
    estimate, longest = scan.lengths.total_estimate, scan.lengths.max_tokens
    seconds = estimate * EPOCHS / ASSUMED_TOKENS_PER_SECOND
    report.tokens = {
        "total_estimate": estimate,
        "mean_per_example": round(estimate / max(report.n_examples, 1), 1),
        "max_counted": longest,
        "epochs": EPOCHS,
        "assumed_tokens_per_second": ASSUMED_TOKENS_PER_SECOND,
        "estimated_training_seconds": round(seconds, 1),
    }
    report.findings.append(
        f"About {estimate:,} tokens ({report.tokens['mean_per_example']} per example, the longest "
        f"{longest}); {EPOCHS} epochs take roughly {_duration(seconds)} at an assumed "
        f"{ASSUMED_TOKENS_PER_SECOND:,} tokens/s (time a short run on your hardware to know)"
    )


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} seconds"


def analyse(path: Path, counter: TokenCounter, *, model: str = "tiny") -> PrepareReport:
    """Analyse a raw data file (one streaming pass) and suggest fixes. `model` names the base model whose
    tokenizer `counter` is. Raises `InvalidFile` for input that cannot be used."""
    source = open_source(path)
    rest = (chunk for chunk in source.chunks() if chunk[1])  # a chunk of blank lines holds no rows
    first = next(rest, None)
    if first is None:
        raise InvalidFile("the file holds no examples", file=source.name)
    chunks = chain([first], rest)
    json_scan = _json_scan(first[1][0], source, counter)
    if json_scan is not None:
        json_scan.feed(chain.from_iterable(zip(lines, rows, strict=True) for lines, rows in chunks))
        return json_scan.report(model=model)
    scan = PromptCompletionScan(source, counter)
    scan.feed(chunks)
    return scan.report(model=model)


class JsonScan(Protocol):
    """The analysis pass of a JSON-line format other than prompt/completion."""

    def feed(self, rows: Iterator[tuple[int, Row]]) -> None: ...

    def report(self, *, model: str) -> PrepareReport: ...


def _json_scan(first: Row, source: Source, counter: TokenCounter) -> JsonScan | None:
    """The scan for the format of the file's first row, as the readers tell formats apart (chat messages
    that end in a user turn are reinforcement items); None for prompt/completion rows."""
    if "messages" in first:
        messages = first["messages"]
        last = messages[-1] if isinstance(messages, list) and messages else None
        if isinstance(last, dict) and last.get("role") == "user":
            return ReinforcementScan(source, counter)
        return ChatScan(source, counter)
    if first.keys() & PREFERENCE_KEYS:
        return PreferenceScan(source, counter)
    return None


def _pick(indices: list[int], values: list[T]) -> list[T]:
    return [values[i] for i in indices]
